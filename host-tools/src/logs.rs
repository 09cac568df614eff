//! Per-VM logs kept after the VM ends: `<state dir>/logs/<start time>-<cid>/` holds the guest
//! console (`console.log`, capped at [`CONSOLE_CAP`] bytes: a guest cannot fill the host's
//! disk) and the death-reason port's bytes (`death-reason`), until the user removes them. The
//! newest [`KEEP`] VMs' logs are kept; `last` links to the newest. `vmctl logs CID|last` prints
//! them; `vmctl list` shows the path while the VM runs.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The most console bytes kept per VM; past it, one line says how much was dropped.
pub const CONSOLE_CAP: u64 = 16 << 20;
/// VMs whose logs are kept.
pub const KEEP: usize = 50;
pub const CONSOLE_FILE: &str = "console.log";
pub const DEATH_REASON_FILE: &str = "death-reason";
const LAST: &str = "last";

/// `<state dir>/logs`.
pub fn default_logs_dir() -> PathBuf {
    crate::identity::default_state_dir().join("logs")
}

/// Creates the log directory of a VM starting now with `cid`, prunes the oldest beyond
/// [`KEEP`], and points `last` at it.
pub fn new_vm_dir(logs: &Path, cid: u32) -> std::io::Result<PathBuf> {
    fs::create_dir_all(logs)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let stem = format!("{}.{:03}-{cid}", now.as_secs(), now.subsec_millis());
    // Several registries (and so the same CID) can share one logs directory: create the
    // directory itself, not a check then a create, and take the next suffix while it exists.
    let mut n = 0u32;
    let dir = loop {
        let dir = match n {
            0 => logs.join(&stem),
            n => logs.join(format!("{stem}-{n}")),
        };
        match fs::create_dir(&dir) {
            Ok(()) => break dir,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => n += 1,
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("creating {}: {e}", dir.display()),
                ))
            }
        }
    };
    // Pruning is housekeeping: a VM starts whatever it finds (another vmctl may be pruning the
    // same directories right now).
    let _ = prune(logs, KEEP);
    let link = logs.join(LAST);
    // Unique per VM (a virtmgr starts several at once in one process).
    let tmp = logs.join(format!(
        ".{LAST}.{}.{}",
        std::process::id(),
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    ));
    let _ = fs::remove_file(&tmp);
    let step = |what: &str, e: std::io::Error| {
        std::io::Error::new(e.kind(), format!("{what} {}: {e}", link.display()))
    };
    if let Some(name) = dir.file_name() {
        std::os::unix::fs::symlink(name, &tmp).map_err(|e| step("linking", e))?;
        fs::rename(&tmp, &link).map_err(|e| step("renaming the link to", e))?;
    }
    Ok(dir)
}

/// The VM log directories, oldest first.
pub fn vm_dirs(logs: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir(logs)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .filter(|p| {
                    p.is_dir()
                        && !p.is_symlink()
                        && p.file_name()
                            .is_some_and(|n| n.to_string_lossy().as_bytes()[0].is_ascii_digit())
                })
                .collect()
        })
        .unwrap_or_default();
    dirs.sort_by_key(|p| sort_key(p));
    dirs
}

/// Start time (seconds, milliseconds) from a directory name `<secs>.<ms>-<cid>[-n]`.
fn sort_key(dir: &Path) -> (u64, u64, String) {
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stamp = name.split('-').next().unwrap_or("");
    let (secs, ms) = stamp.split_once('.').unwrap_or((stamp, "0"));
    (secs.parse().unwrap_or(0), ms.parse().unwrap_or(0), name)
}

fn prune(logs: &Path, keep: usize) -> std::io::Result<()> {
    let dirs = vm_dirs(logs);
    if dirs.len() > keep {
        for old in &dirs[..dirs.len() - keep] {
            match fs::remove_dir_all(old) {
                // Pruned by another VM starting at the same time.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                other => other?,
            }
        }
    }
    Ok(())
}

/// The log directory for `which`: `last`, or the newest VM with that CID.
pub fn find(logs: &Path, which: &str) -> Option<PathBuf> {
    if which == LAST {
        return vm_dirs(logs).pop();
    }
    let cid: u32 = which.parse().ok()?;
    vm_dirs(logs).into_iter().rev().find(|d| {
        d.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .and_then(|n| n.split('-').nth(1).map(str::to_owned))
            .and_then(|c| c.parse::<u32>().ok())
            == Some(cid)
    })
}

/// A writer that keeps the first `cap` bytes and counts the rest.
pub struct CappedWriter<W: Write> {
    inner: W,
    written: u64,
    dropped: u64,
    cap: u64,
    /// What the last line calls it ("console log").
    what: &'static str,
}

impl<W: Write> CappedWriter<W> {
    pub fn new(inner: W, cap: u64) -> Self {
        Self::named(inner, cap, "console log")
    }

    pub fn named(inner: W, cap: u64, what: &'static str) -> Self {
        CappedWriter {
            inner,
            written: 0,
            dropped: 0,
            cap,
            what,
        }
    }

    /// Bytes past the cap that were not kept.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Writes `data`, or as much of it as the cap allows.
    pub fn write_capped(&mut self, data: &[u8]) -> std::io::Result<()> {
        let room = usize::try_from(self.cap.saturating_sub(self.written)).unwrap_or(usize::MAX);
        let kept = data.len().min(room);
        self.inner.write_all(&data[..kept])?;
        self.written += kept as u64;
        self.dropped += (data.len() - kept) as u64;
        Ok(())
    }

    /// Ends the log with a line saying what was dropped, if anything was.
    pub fn finish(mut self) -> std::io::Result<()> {
        if self.dropped > 0 {
            writeln!(
                self.inner,
                "\n[vmctl: {} capped at {} bytes; {} more bytes were dropped]",
                self.what, self.cap, self.dropped
            )?;
        }
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_are_kept_pruned_and_found() {
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let a = new_vm_dir(&logs, 2048).unwrap();
        let b = new_vm_dir(&logs, 2049).unwrap();
        assert_ne!(a, b);
        assert_eq!(find(&logs, "last"), Some(b.clone()));
        assert_eq!(find(&logs, "2048"), Some(a.clone()));
        assert_eq!(find(&logs, "2050"), None);
        assert_eq!(
            fs::read_link(logs.join("last")).unwrap(),
            b.file_name().unwrap()
        );
        for i in 0..KEEP {
            new_vm_dir(&logs, 3000 + i as u32).unwrap();
        }
        assert_eq!(vm_dirs(&logs).len(), KEEP);
        assert!(!a.exists() && !b.exists(), "the oldest go first");
    }

    #[test]
    fn vms_with_one_cid_starting_at_once_get_their_own_dirs() {
        // Two registries share a logs directory: the same CID can start in the same millisecond,
        // and one virtmgr starts several VMs at once.
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let logs = logs.clone();
                std::thread::spawn(move || new_vm_dir(&logs, 2048).unwrap())
            })
            .collect();
        let mut dirs: Vec<PathBuf> = threads.into_iter().map(|t| t.join().unwrap()).collect();
        dirs.sort();
        dirs.dedup();
        assert_eq!(dirs.len(), 8);
        assert!(dirs.iter().all(|d| d.is_dir()));
    }

    #[test]
    fn vms_starting_together_past_the_keep_limit_all_start() {
        // A full logs directory: every start prunes, several at once (make bench's load test
        // found this: one VM failed with ENOENT from a directory another had just pruned).
        let tmp = tempfile::tempdir().unwrap();
        let logs = tmp.path().join("logs");
        for i in 0..KEEP {
            fs::create_dir_all(logs.join(format!("1000.{i:03}-2048"))).unwrap();
            fs::write(logs.join(format!("1000.{i:03}-2048/console.log")), b"x").unwrap();
        }
        for _ in 0..5 {
            let threads: Vec<_> = (0..8u32)
                .map(|cid| {
                    let logs = logs.clone();
                    std::thread::spawn(move || new_vm_dir(&logs, 3000 + cid))
                })
                .collect();
            for t in threads {
                assert!(t.join().unwrap().is_ok());
            }
        }
        assert!(vm_dirs(&logs).len() <= KEEP + 8);
    }

    #[test]
    fn console_is_capped_with_a_note() {
        let mut out = Vec::new();
        let mut w = CappedWriter::new(&mut out, 10);
        w.write_capped(b"0123456").unwrap();
        w.write_capped(b"789abcdef").unwrap();
        assert_eq!(w.dropped(), 6);
        w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("0123456789\n[vmctl: console log capped at 10 bytes; 6 more"));
    }
}

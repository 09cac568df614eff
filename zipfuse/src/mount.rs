//! Opening, validating, mounting, signalling readiness and serving.
//!
//! # Readiness contract
//!
//! zipfuse signals "ready" once mount(2) has succeeded and the FUSE `INIT` handshake is done,
//! and before it serves the first request (requests made in between simply wait). It never
//! signals on failure; it exits non-zero instead, with the reason on stderr.
//!
//! * `--ready-fd FD` (recommended for a parent process): zipfuse writes the 6 bytes `ready\n` to
//!   the inherited descriptor `FD` and closes it. The parent reads the pipe: `ready\n` means
//!   mounted; end-of-file without it means zipfuse failed (then reap it for the exit status).
//! * `-p PATH`: if `PATH` is an existing FIFO, zipfuse opens it for writing from a background
//!   thread (so serving never waits for the reader, and the reader may open it before or after)
//!   and writes `ready\n`. Otherwise it atomically creates the regular
//!   file `PATH` (written to `PATH.tmp.<pid>`, then renamed) containing its pid and a newline;
//!   a waiter can use inotify on the parent directory (`IN_MOVED_TO`).

use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom, Write};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::thread;

use fuser::{Config, MountOption, Session, SessionACL};
use nix::sys::signal::{SigSet, Signal};

use crate::archive;
use crate::error::ZipError;
use crate::fs::{run_feeder, FsOptions, ZipFs, MAX_READ};
use crate::inode::{InodeTable, ModePolicy};

/// How to tell the caller that the mount is ready.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Ready {
    /// Nothing.
    #[default]
    None,
    /// A FIFO to write to, or a file to create (`-p`).
    Path(PathBuf),
    /// An inherited descriptor to write to and close (`--ready-fd`).
    Fd(RawFd),
}

/// Everything the binary passes in.
#[derive(Clone, Debug)]
pub struct MountConfig {
    /// The archive (a file or a block device, possibly zero-padded).
    pub zip: PathBuf,
    /// Where to mount.
    pub mountpoint: PathBuf,
    /// Extra mount options (`-o a,b,c`), e.g. SELinux contexts.
    pub extra_options: Vec<String>,
    /// Mount with `MS_NOEXEC`.
    pub noexec: bool,
    /// Readiness signal.
    pub ready: Ready,
    /// FUSE worker threads.
    pub threads: usize,
    /// Set the FUSE bdi's `read_ahead_kb` after mounting (None: leave the kernel default).
    pub readahead_kb: Option<u32>,
    /// Filesystem options.
    pub fs: FsOptions,
    /// Print the FUSE requests served, by operation, to stderr when the session ends.
    pub stats: bool,
}

/// Why mounting failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    /// The archive could not be opened.
    #[error("cannot open {path}: {source}")]
    Open {
        /// The archive path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The archive was refused.
    #[error("refusing {path}: {source}")]
    Zip {
        /// The archive path.
        path: PathBuf,
        /// Why.
        source: ZipError,
    },
    /// mount(2) or the FUSE handshake failed.
    #[error("cannot mount on {path}: {source}")]
    Mount {
        /// The mount point.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The readiness signal could not be delivered.
    #[error("cannot signal readiness: {0}")]
    Ready(io::Error),
    /// The FUSE session ended with an error.
    #[error("FUSE session failed: {0}")]
    Session(io::Error),
}

/// Opens and validates the archive and builds the filesystem (everything short of mounting).
pub fn load(zip: &Path, fs: FsOptions) -> Result<ZipFs, MountError> {
    let mut file = File::options()
        .read(true)
        .custom_flags(libc::O_CLOEXEC)
        .open(zip)
        .map_err(|source| MountError::Open {
            path: zip.to_path_buf(),
            source,
        })?;
    // Works for regular files and block devices alike.
    let len = file
        .seek(SeekFrom::End(0))
        .map_err(|source| MountError::Open {
            path: zip.to_path_buf(),
            source,
        })?;
    let refuse = |source| MountError::Zip {
        path: zip.to_path_buf(),
        source,
    };
    let archive = archive::parse(&file, len).map_err(refuse)?;
    let table = InodeTable::build(&archive.entries, ModePolicy::default()).map_err(refuse)?;
    Ok(ZipFs::new(file, archive.entries, table, fs))
}

/// Mount options for `cfg` (AOSP zipfuse's set: ro, nosuid, nodev, optional noexec, allow_other,
/// default_permissions, max_read=1 MiB, plus `-o` extras).
pub fn mount_options(cfg: &MountConfig) -> Config {
    let mut opts = vec![
        MountOption::FSName(cfg.zip.to_string_lossy().into_owned()),
        MountOption::Subtype("zipfuse".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
        MountOption::DefaultPermissions,
        MountOption::CUSTOM(format!("max_read={MAX_READ}")),
    ];
    if cfg.noexec {
        opts.push(MountOption::NoExec);
    }
    for o in cfg
        .extra_options
        .iter()
        .flat_map(|s| s.split(','))
        .filter(|s| !s.is_empty())
    {
        let o = match o {
            "ro" => MountOption::RO,
            "noexec" => MountOption::NoExec,
            "nosuid" => MountOption::NoSuid,
            "nodev" => MountOption::NoDev,
            "noatime" => MountOption::NoAtime,
            "default_permissions" => MountOption::DefaultPermissions,
            "allow_other" => continue,
            other => MountOption::CUSTOM(other.to_string()),
        };
        if !opts.contains(&o) {
            opts.push(o);
        }
    }
    let mut config = Config::default();
    config.mount_options = opts;
    config.acl = SessionACL::All;
    config.n_threads = Some(cfg.threads.max(1));
    config.clone_fd = cfg.threads > 1;
    config
}

/// Signals readiness as described in the module documentation.
pub fn signal_ready(ready: &Ready) -> io::Result<()> {
    match ready {
        Ready::None => Ok(()),
        Ready::Fd(fd) => {
            // SAFETY: the caller handed us this descriptor (`--ready-fd`) for exactly this use;
            // we take ownership of it here and close it once written.
            let owned = unsafe { OwnedFd::from_raw_fd(*fd) };
            let mut f = File::from(owned);
            f.write_all(b"ready\n")
        }
        Ready::Path(path) => {
            let is_fifo = std::fs::metadata(path)
                .map(|m| m.file_type().is_fifo())
                .unwrap_or(false);
            if is_fifo {
                // Blocking open in a background thread: the waiter may open its end before or
                // after this point, and serving never waits for it.
                let path = path.clone();
                thread::Builder::new()
                    .name("zipfuse-ready".into())
                    .spawn(move || {
                        let r = OpenOptions::new()
                            .write(true)
                            .custom_flags(libc::O_CLOEXEC)
                            .open(&path)
                            .and_then(|mut f| f.write_all(b"ready\n"));
                        if let Err(e) = r {
                            log::warn!("cannot write to ready FIFO {}: {e}", path.display());
                        }
                    })?;
                return Ok(());
            }
            let mut tmp = path.as_os_str().to_owned();
            tmp.push(format!(".tmp.{}", std::process::id()));
            let tmp = PathBuf::from(tmp);
            std::fs::write(&tmp, format!("{}\n", std::process::id()))?;
            std::fs::rename(&tmp, path)
        }
    }
}

/// Sets `read_ahead_kb` of the FUSE mount at `mountpoint` (found in /proc/self/mountinfo, so no
/// FUSE request is needed).
pub fn set_readahead(mountpoint: &Path, kb: u32) -> io::Result<()> {
    let mp = mountpoint.canonicalize()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    let dev = mount_device(&info, &mp)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "mount not in mountinfo"))?;
    std::fs::write(
        format!("/sys/class/bdi/{dev}/read_ahead_kb"),
        format!("{kb}\n"),
    )
}

/// The device ("major:minor", which is also the FUSE bdi's name) of the newest mount at
/// `mountpoint` in a /proc/self/mountinfo table. Fields: id parent major:minor root mountpoint
/// ...; a later line is a newer mount, so the last match is the one on top.
fn mount_device(mountinfo: &str, mountpoint: &Path) -> Option<String> {
    mountinfo
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (f.len() > 4 && Path::new(&unescape_mountinfo(f[4])) == mountpoint)
                .then(|| f[2].to_string())
        })
        .next_back()
}

fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 3 < b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            out.push((b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0'));
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Loads, mounts, signals readiness and serves until unmounted (or SIGINT/SIGTERM/SIGHUP, which
/// unmount cleanly).
pub fn run(cfg: &MountConfig) -> Result<(), MountError> {
    let fs = load(&cfg.zip, cfg.fs.clone())?;
    let feed = fs.take_feed_receiver();
    let requests = fs.requests();
    // Block the termination signals in every thread; one thread waits for them.
    let mut sigs = SigSet::empty();
    sigs.add(Signal::SIGINT);
    sigs.add(Signal::SIGTERM);
    sigs.add(Signal::SIGHUP);
    let _ = sigs.thread_block();

    let options = mount_options(cfg);
    let mut session =
        Session::new(fs, &cfg.mountpoint, &options).map_err(|source| MountError::Mount {
            path: cfg.mountpoint.clone(),
            source,
        })?;
    if let Some(kb) = cfg.readahead_kb {
        if let Err(e) = set_readahead(&cfg.mountpoint, kb) {
            log::warn!(
                "cannot set read_ahead_kb on {}: {e}",
                cfg.mountpoint.display()
            );
        }
    }
    if let Some(rx) = feed {
        let notifier = session.notifier();
        let _ = thread::Builder::new()
            .name("zipfuse-feed".into())
            .spawn(move || run_feeder(rx, notifier));
    }
    let mut unmounter = session.unmount_callable();
    let _ = thread::Builder::new()
        .name("zipfuse-signals".into())
        .spawn(move || {
            if sigs.wait().is_ok() {
                let _ = unmounter.unmount();
            }
        });
    signal_ready(&cfg.ready).map_err(MountError::Ready)?;
    let result = session.run().map_err(MountError::Session);
    if cfg.stats {
        eprintln!("zipfuse: requests: {}", requests.summary());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        // The kernel escapes space, tab, newline and backslash as three octal digits.
        assert_eq!(
            unescape_mountinfo(r"/mnt/a\040b\011c\012d\134e"),
            "/mnt/a b\tc\nd\\e"
        );
        // Every digit position counts: \101 is 'A', \142 'b', \167 'w'; one at the very end.
        assert_eq!(unescape_mountinfo(r"\101\142x\167"), "Abxw");
        // Not an escape: too short at the end, or not octal digits.
        assert_eq!(unescape_mountinfo(r"a\04"), r"a\04");
        assert_eq!(unescape_mountinfo(r"a\08x\9"), r"a\08x\9");
        assert_eq!(unescape_mountinfo(""), "");
    }

    #[test]
    fn the_newest_mount_at_the_path_gives_the_device() {
        let info = "\
22 1 0:21 / /proc rw,nosuid - proc proc rw
40 22 0:50 / /mnt/a\\040b rw - fuse /dev/fuse rw
41 22 0:51 / /mnt/apk rw - fuse /dev/fuse rw
42 22 0:52 / /mnt/apkx rw - fuse /dev/fuse rw
43 41 0:53 / /mnt/apk rw - fuse /dev/fuse rw
44 22 0:54 / /mnt/other rw - tmpfs tmpfs rw
45 22 0:55 /
46 22
";
        // Two mounts stacked at /mnt/apk: the later line is on top.
        assert_eq!(
            mount_device(info, Path::new("/mnt/apk")).as_deref(),
            Some("0:53")
        );
        // The path is compared whole, after unescaping.
        assert_eq!(
            mount_device(info, Path::new("/mnt/a b")).as_deref(),
            Some("0:50")
        );
        assert_eq!(
            mount_device(info, Path::new("/mnt/apkx")).as_deref(),
            Some("0:52")
        );
        // Lines too short to have a mount point field are skipped (never indexed past their
        // end), and a path that is not mounted has no device.
        assert_eq!(mount_device(info, Path::new("/")), None);
        assert_eq!(mount_device(info, Path::new("/mnt")), None);
        assert_eq!(mount_device("", Path::new("/mnt/apk")), None);
    }

    fn config(extra: &[&str], threads: usize) -> MountConfig {
        MountConfig {
            zip: PathBuf::from("/data/app.apk"),
            mountpoint: PathBuf::from("/mnt/apk"),
            extra_options: extra.iter().map(|s| s.to_string()).collect(),
            noexec: false,
            ready: Ready::None,
            threads,
            readahead_kb: None,
            fs: FsOptions::default(),
            stats: false,
        }
    }

    #[test]
    fn mount_options_add_extras_once_and_never_allow_other() {
        let c = mount_options(&config(
            &["noatime,ro,,allow_other", "context=u:r:x,noatime"],
            1,
        ));
        assert_eq!(
            c.mount_options,
            vec![
                MountOption::FSName("/data/app.apk".into()),
                MountOption::Subtype("zipfuse".into()),
                MountOption::RO,
                MountOption::NoSuid,
                MountOption::NoDev,
                MountOption::DefaultPermissions,
                MountOption::CUSTOM(format!("max_read={MAX_READ}")),
                MountOption::NoAtime,
                MountOption::CUSTOM("context=u:r:x".into()),
            ]
        );
        assert_eq!((c.n_threads, c.clone_fd), (Some(1), false));
        let c = mount_options(&config(&[], 0));
        assert_eq!((c.n_threads, c.clone_fd), (Some(1), false));
        let c = mount_options(&config(&[], 2));
        assert_eq!((c.n_threads, c.clone_fd), (Some(2), true));
    }
}

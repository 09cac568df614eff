//! The host's table of running VMs, shared by every `vmctl` process: a runtime directory
//! (`/run/vmctl` for root) with, per guest CID, a lock file and a record.
//!
//! - `<cid>.lock` is held with `flock(LOCK_EX)` by the `vmctl` process that owns the VM, for as
//!   long as the VM runs. The kernel drops the lock when that process ends, however it ends, so a
//!   CID is free again (recycled) as soon as its VM's owner is gone; nothing has to clean up.
//!   Lock files are never removed: removing one could let two processes lock different inodes
//!   for the same CID.
//! - `<cid>.json` is the owner's record of the VM (pid, state, console log, start time, payload
//!   state), replaced atomically (write + rename) on each change. Readers trust a record only
//!   while its lock is held.
//!
//! CIDs come from AOSP's guest range, 2048..=65535 (ports and CIDs below 2048 are reserved), the
//! lowest free one first.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};

/// AOSP's first guest CID (virtualizationservice `GUEST_CID_MIN`).
pub const GUEST_CID_MIN: u32 = 2048;
/// AOSP's last guest CID (`GUEST_CID_MAX`).
pub const GUEST_CID_MAX: u32 = 65535;
/// Overrides the runtime directory (tests use private ones).
pub const RUNTIME_DIR_ENV: &str = "VMCTL_RUNTIME_DIR";

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("cannot use the runtime directory {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    #[error("CID {0} is in use by another VM")]
    CidInUse(u32),
    #[error("CID {0} is outside the guest range {GUEST_CID_MIN}..={GUEST_CID_MAX}")]
    CidOutOfRange(u32),
    #[error("every CID in {GUEST_CID_MIN}..={GUEST_CID_MAX} is in use")]
    Exhausted,
    #[error("cannot write the VM record {path}: {source}")]
    Record { path: PathBuf, source: io::Error },
}

/// The runtime directory: `$VMCTL_RUNTIME_DIR`, else `/run/vmctl` for root, else
/// `$XDG_RUNTIME_DIR/vmctl`, else `/tmp/vmctl-<uid>`.
pub fn default_runtime_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(RUNTIME_DIR_ENV) {
        return PathBuf::from(dir);
    }
    let uid = nix::unistd::getuid();
    if uid.is_root() {
        return PathBuf::from("/run/vmctl");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) => PathBuf::from(dir).join("vmctl"),
        None => PathBuf::from(format!("/tmp/vmctl-{uid}")),
    }
}

/// What `vmctl list` shows about a VM, kept current by its owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmRecord {
    pub cid: u32,
    /// The owning vmctl process (`vmctl stop` signals it).
    pub pid: u32,
    /// `starting` (disks, backend), `running` (the VMM runs), `stopping`.
    pub state: String,
    /// The host's payload state machine: starting, started, ready, finished, hangup.
    pub payload_state: String,
    pub vmm: String,
    pub debug: String,
    pub console_log: PathBuf,
    pub run_dir: PathBuf,
    /// Seconds since the Unix epoch.
    pub started_at: f64,
    /// The VM's name (AOSP's config `name`, `vmctl --name`); empty when it has none.
    #[serde(default)]
    pub name: String,
}

impl VmRecord {
    pub fn uptime_secs(&self) -> f64 {
        (unix_now() - self.started_at).max(0.0)
    }
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn ensure_dir(dir: &Path) -> Result<(), RegistryError> {
    fs::create_dir_all(dir).map_err(|source| RegistryError::Dir {
        path: dir.to_owned(),
        source,
    })
}

fn lock_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("{cid}.lock"))
}

fn record_path(dir: &Path, cid: u32) -> PathBuf {
    dir.join(format!("{cid}.json"))
}

fn open_lock_file(path: &Path) -> Result<File, RegistryError> {
    OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(path)
        .map_err(|source| RegistryError::Lock {
            path: path.to_owned(),
            source,
        })
}

/// Tries to lock `cid`; `Ok(None)` when another process holds it.
fn try_lock(dir: &Path, cid: u32, arg: FlockArg) -> Result<Option<Flock<File>>, RegistryError> {
    let path = lock_path(dir, cid);
    match Flock::lock(open_lock_file(&path)?, arg) {
        Ok(lock) => Ok(Some(lock)),
        Err((_, Errno::EWOULDBLOCK)) => Ok(None),
        Err((_, errno)) => Err(RegistryError::Lock {
            path,
            source: errno.into(),
        }),
    }
}

/// A CID held for one VM. Dropping it removes the record and frees the CID.
#[derive(Debug)]
pub struct CidLease {
    cid: u32,
    dir: PathBuf,
    _lock: Flock<File>,
}

impl CidLease {
    /// Takes the lowest free CID of the guest range.
    pub fn allocate(dir: &Path) -> Result<CidLease, RegistryError> {
        ensure_dir(dir)?;
        for cid in GUEST_CID_MIN..=GUEST_CID_MAX {
            if let Some(lock) = try_lock(dir, cid, FlockArg::LockExclusiveNonblock)? {
                return Ok(CidLease {
                    cid,
                    dir: dir.to_owned(),
                    _lock: lock,
                });
            }
        }
        Err(RegistryError::Exhausted)
    }

    /// Takes `cid`, which must be in the guest range and free.
    pub fn claim(dir: &Path, cid: u32) -> Result<CidLease, RegistryError> {
        if !(GUEST_CID_MIN..=GUEST_CID_MAX).contains(&cid) {
            return Err(RegistryError::CidOutOfRange(cid));
        }
        ensure_dir(dir)?;
        match try_lock(dir, cid, FlockArg::LockExclusiveNonblock)? {
            Some(lock) => Ok(CidLease {
                cid,
                dir: dir.to_owned(),
                _lock: lock,
            }),
            None => Err(RegistryError::CidInUse(cid)),
        }
    }

    pub fn cid(&self) -> u32 {
        self.cid
    }

    /// Replaces the VM's record (atomically: readers never see half of it).
    pub fn publish(&self, record: &VmRecord) -> Result<(), RegistryError> {
        let path = record_path(&self.dir, self.cid);
        let tmp = self
            .dir
            .join(format!(".{}.json.{}", self.cid, std::process::id()));
        let write = || -> io::Result<()> {
            let mut file = File::create(&tmp)?;
            file.write_all(&serde_json::to_vec_pretty(record).map_err(io::Error::other)?)?;
            fs::rename(&tmp, &path)
        };
        write().map_err(|source| RegistryError::Record { path, source })
    }
}

impl Drop for CidLease {
    fn drop(&mut self) {
        // The record goes first, while the lock is still held; the lock goes with the file.
        let _ = fs::remove_file(record_path(&self.dir, self.cid));
    }
}

/// Whether a VM holds `cid` now.
pub fn is_running(dir: &Path, cid: u32) -> bool {
    lock_path(dir, cid).exists()
        && matches!(try_lock(dir, cid, FlockArg::LockSharedNonblock), Ok(None))
}

/// The records of the running VMs, by CID.
pub fn list(dir: &Path) -> Vec<VmRecord> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut cids: Vec<u32> = entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".lock")?.parse().ok())
        .collect();
    cids.sort_unstable();
    cids.into_iter()
        .filter(|&cid| is_running(dir, cid))
        // A VM between locking its CID and its first record is not listed yet.
        .filter_map(|cid| read_record(dir, cid))
        .collect()
}

/// The record of the VM holding `cid`, if one runs.
pub fn find(dir: &Path, cid: u32) -> Option<VmRecord> {
    if is_running(dir, cid) {
        read_record(dir, cid)
    } else {
        None
    }
}

fn read_record(dir: &Path, cid: u32) -> Option<VmRecord> {
    serde_json::from_slice(&fs::read(record_path(dir, cid)).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(cid: u32) -> VmRecord {
        VmRecord {
            cid,
            pid: std::process::id(),
            state: "running".into(),
            payload_state: "starting".into(),
            vmm: "qemu".into(),
            debug: "full".into(),
            console_log: "/tmp/c.log".into(),
            run_dir: "/tmp/r".into(),
            started_at: unix_now(),
            name: String::new(),
        }
    }

    /// serde_json's default float parser can be one ULP off; records must read back exactly.
    #[test]
    fn start_time_survives_the_json_round_trip() {
        let original = VmRecord {
            started_at: 1795245365.6830459,
            name: "n".into(),
            ..record(2048)
        };
        let text = serde_json::to_string(&original).unwrap();
        assert_eq!(serde_json::from_str::<VmRecord>(&text).unwrap(), original);
    }

    #[test]
    fn cids_are_unique_while_held_and_recycled_after() {
        let dir = tempfile::tempdir().unwrap();
        let a = CidLease::allocate(dir.path()).unwrap();
        let b = CidLease::allocate(dir.path()).unwrap();
        assert_eq!((a.cid(), b.cid()), (GUEST_CID_MIN, GUEST_CID_MIN + 1));
        assert!(matches!(
            CidLease::claim(dir.path(), a.cid()),
            Err(RegistryError::CidInUse(2048))
        ));
        assert!(matches!(
            CidLease::claim(dir.path(), 3),
            Err(RegistryError::CidOutOfRange(3))
        ));
        let published = record(a.cid());
        a.publish(&published).unwrap();
        assert_eq!(list(dir.path()), std::slice::from_ref(&published));
        assert_eq!(find(dir.path(), a.cid()), Some(published));
        assert!(is_running(dir.path(), 2048));
        drop(a);
        assert!(!is_running(dir.path(), 2048));
        assert!(
            list(dir.path()).is_empty(),
            "an unpublished VM is not listed"
        );
        // The freed CID is the lowest, so it comes back first.
        assert_eq!(CidLease::allocate(dir.path()).unwrap().cid(), GUEST_CID_MIN);
    }

    #[test]
    fn a_dead_owner_frees_its_cid() {
        let dir = tempfile::tempdir().unwrap();
        // flock(1) takes the lock on 2048 and becomes its command (-F: no fork, so no other
        // process ever holds a copy of the lock), which is killed.
        let path = lock_path(dir.path(), GUEST_CID_MIN);
        File::create(&path).unwrap();
        let mut child = std::process::Command::new("flock")
            .arg("-F")
            .arg(&path)
            .args(["sleep", "5"])
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !is_running(dir.path(), GUEST_CID_MIN) {
            assert!(
                std::time::Instant::now() < deadline,
                "flock(1) did not take the lock"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        assert_eq!(
            CidLease::allocate(dir.path()).unwrap().cid(),
            GUEST_CID_MIN + 1
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(CidLease::allocate(dir.path()).unwrap().cid(), GUEST_CID_MIN);
    }
}

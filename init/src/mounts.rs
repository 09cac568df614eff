//! The filesystems PID 1 mounts, and unmounts at shutdown.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};
use nix::mount::{mount, umount2, MntFlags, MsFlags};

struct EarlyMount {
    source: &'static str,
    target: &'static str,
    fstype: &'static str,
    flags: MsFlags,
    data: Option<&'static str>,
}

const EARLY_MOUNTS: &[EarlyMount] = &[
    EarlyMount {
        source: "proc",
        target: "/proc",
        fstype: "proc",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
    },
    EarlyMount {
        source: "sysfs",
        target: "/sys",
        fstype: "sysfs",
        flags: MsFlags::MS_NOSUID
            .union(MsFlags::MS_NODEV)
            .union(MsFlags::MS_NOEXEC),
        data: None,
    },
    // An initramfs gets no automatic devtmpfs mount.
    EarlyMount {
        source: "devtmpfs",
        target: "/dev",
        fstype: "devtmpfs",
        flags: MsFlags::MS_NOSUID,
        data: Some("mode=0755"),
    },
    EarlyMount {
        source: "tmpfs",
        target: "/run",
        fstype: "tmpfs",
        flags: MsFlags::MS_NOSUID.union(MsFlags::MS_NODEV),
        data: Some("mode=0755,size=16M"),
    },
];

/// Mount points unmounted at shutdown, most recent first.
pub const SHUTDOWN_UNMOUNTS: &[&str] = &["/vendor", "/system", "/run"];

pub fn mount_early_filesystems() -> Result<()> {
    for m in EARLY_MOUNTS {
        fs::create_dir_all(m.target).with_context(|| format!("creating {}", m.target))?;
        match mount(Some(m.source), m.target, Some(m.fstype), m.flags, m.data) {
            // The kernel may have mounted devtmpfs already (CONFIG_DEVTMPFS_MOUNT with a root fs).
            Err(nix::errno::Errno::EBUSY) => {}
            other => other.with_context(|| format!("mounting {} on {}", m.fstype, m.target))?,
        }
    }
    Ok(())
}

/// Mounts an erofs partition read-only (nodev, nosuid) at `target`.
pub fn mount_readonly(device: &Path, target: &str) -> Result<()> {
    fs::create_dir_all(target).with_context(|| format!("creating {target}"))?;
    mount(
        Some(device),
        target,
        Some("erofs"),
        MsFlags::MS_RDONLY | MsFlags::MS_NODEV | MsFlags::MS_NOSUID,
        None::<&str>,
    )
    .with_context(|| format!("mounting {} (erofs) on {target}", device.display()))
}

/// Unmounts what init mounted for services. Busy mounts are detached instead: the VM is about to
/// power off and the data is synced, so nothing is lost.
pub fn unmount_all() {
    for target in SHUTDOWN_UNMOUNTS {
        if umount2(*target, MntFlags::empty()).is_err() {
            let _ = umount2(*target, MntFlags::MNT_DETACH);
        }
    }
}

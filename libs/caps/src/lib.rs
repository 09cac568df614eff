//! Linux capabilities as init.rc names them (`capabilities SYS_ADMIN SETUID`, AOSP's syntax:
//! no `CAP_` prefix) and the bounding-set drop applied between fork and exec. A root process
//! whose bounding set holds only some capabilities gets only those on exec, and can never gain
//! others (docs/security.md has the table of who keeps what).

/// Capability names in number order (linux/capability.h, 0..=40).
pub const NAMES: &[&str] = &[
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
];

/// A set of capabilities, one bit per number.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CapSet(pub u64);

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CapError {
    #[error(
        "unknown capability {0:?} (names as in linux/capability.h without CAP_, e.g. SYS_ADMIN)"
    )]
    Unknown(String),
}

impl CapSet {
    pub const EMPTY: CapSet = CapSet(0);

    /// Parses names (`SYS_ADMIN`, or `CAP_SYS_ADMIN`, any case).
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<CapSet, CapError> {
        let mut set = 0u64;
        for name in names {
            let name = name.as_ref();
            let upper = name.to_ascii_uppercase();
            let bare = upper.strip_prefix("CAP_").unwrap_or(&upper);
            let number = NAMES
                .iter()
                .position(|n| *n == bare)
                .ok_or_else(|| CapError::Unknown(name.to_owned()))?;
            set |= 1 << number;
        }
        Ok(CapSet(set))
    }

    pub fn contains(self, number: u32) -> bool {
        number < 64 && self.0 & (1 << number) != 0
    }

    /// The names in the set, in number order.
    pub fn names(self) -> Vec<&'static str> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.contains(*i as u32))
            .map(|(_, n)| *n)
            .collect()
    }
}

/// The highest capability this kernel knows (`/proc/sys/kernel/cap_last_cap`). Read it before
/// fork: the drop below runs between fork and exec.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// Drops every capability not in `keep` from the calling thread's bounding set (needs
/// CAP_SETPCAP). Async-signal-safe: prctl only, no allocation.
pub fn limit_bounding_set(keep: CapSet, last_cap: u32) -> std::io::Result<()> {
    for cap in 0..=last_cap {
        if keep.contains(cap) {
            continue;
        }
        // SAFETY: prctl(PR_CAPBSET_DROP) takes integer arguments only.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) } != 0 {
            let err = std::io::Error::last_os_error();
            // Capabilities this kernel does not know are not in the set.
            if err.raw_os_error() != Some(libc::EINVAL) {
                return Err(err);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn names_parse_to_their_numbers() {
        let set = CapSet::parse(&["SYS_ADMIN", "cap_setuid", "CHOWN"]).unwrap();
        assert_eq!(set.0, (1 << 21) | (1 << 7) | 1);
        assert_eq!(set.names(), ["CHOWN", "SETUID", "SYS_ADMIN"]);
        assert_eq!(
            CapSet::parse(&["SYS_WIZARD"]),
            Err(CapError::Unknown("SYS_WIZARD".into()))
        );
        assert_eq!(CapSet::parse::<&str>(&[]).unwrap(), CapSet::EMPTY);
        assert_eq!(NAMES.len(), 41);
        assert_eq!(NAMES[40], "CHECKPOINT_RESTORE");
    }

    #[test]
    fn a_child_keeps_only_what_it_was_given() {
        if unsafe_free_is_root() {
            let keep = CapSet::parse(&["SYS_ADMIN", "KILL"]).unwrap();
            let last = last_cap();
            let mut command = std::process::Command::new("/bin/grep");
            command.args(["^CapBnd", "/proc/self/status"]);
            // SAFETY: the closure only calls prctl and allocates nothing.
            unsafe {
                std::os::unix::process::CommandExt::pre_exec(&mut command, move || {
                    limit_bounding_set(keep, last)
                });
            }
            let out = command.output().unwrap();
            let text = String::from_utf8_lossy(&out.stdout);
            assert_eq!(text.trim(), format!("CapBnd:\t{:016x}", keep.0));
        }
    }

    fn unsafe_free_is_root() -> bool {
        std::fs::read_to_string("/proc/self/status")
            .map(|s| s.lines().any(|l| l.starts_with("Uid:\t0\t")))
            .unwrap_or(false)
    }
}

//! The capabilities microdroid_manager's helpers keep (docs/security.md): each starts as root
//! with a bounding set of only what it needs, so it cannot gain anything else.

use std::os::unix::process::CommandExt;
use std::process::Command;

use caps::CapSet;

/// zipfuse mounts FUSE.
pub const ZIPFUSE: CapSet = CapSet(1 << 21); // SYS_ADMIN
/// apexd attaches loop devices, makes dm-verity devices, mounts.
pub const APEXD: CapSet = CapSet(1 << 21); // SYS_ADMIN

/// Makes `command` start with only `keep` in its bounding set.
pub fn limit(command: &mut Command, keep: CapSet) {
    let last_cap = caps::last_cap();
    // SAFETY: the closure only calls prctl and allocates nothing.
    unsafe {
        command.pre_exec(move || caps::limit_bounding_set(keep, last_cap));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_constants_name_what_the_docs_say() {
        assert_eq!(ZIPFUSE.names(), ["SYS_ADMIN"]);
        assert_eq!(APEXD.names(), ["SYS_ADMIN"]);
    }
}

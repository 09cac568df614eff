//! Init's SELinux step (docs/security.md): once the system partition is mounted (the policy is
//! on it, under dm-verity), load the policy, move PID 1 from the kernel's domain into `init`,
//! label the device nodes the policy singles out, and turn enforcing on. Every service starts
//! after this, so each one enters its own domain on exec.

use anyhow::{Context, Result};

use crate::console::log;

/// GPT partition names whose device nodes get a label of their own, and the label.
pub const LABELLED_PARTITIONS: &[(&str, &str)] =
    &[("vm-instance", selinux::contexts::VM_INSTANCE_DEVICE)];

/// Enforcing, unless the command line of a debuggable VM asks for permissive mode
/// (`androidboot.selinux=permissive`, as AOSP honours it on debuggable builds only).
pub fn enforcing_wanted(cmdline: &str) -> bool {
    let debuggable = cmdline
        .split_whitespace()
        .any(|w| w == "androidboot.microdroid.debuggable=1");
    !(debuggable && selinux::cmdline_asks_permissive(cmdline))
}

/// Device nodes everyone may use (the payload too): they get `payload_device`. (`vsock` answers
/// one ioctl, the VM's own CID.)
pub const PUBLIC_DEVICES: &[&str] = &["null", "zero", "full", "random", "urandom", "vsock"];

/// Labels the public device nodes in /dev. A failure is logged: those nodes then keep the
/// generic `device` label, which only the system domains may use.
pub fn label_public_devices() {
    for name in PUBLIC_DEVICES {
        let node = std::path::Path::new("/dev").join(name);
        if let Err(e) = selinux::set_file_context(&node, selinux::contexts::PAYLOAD_DEVICE) {
            log(&format!("cannot label {}: {e}", node.display()));
        }
    }
}

/// Loads the policy and enforces it (permissive only if a debuggable VM's command line asks).
/// Returns whether the policy is enforced.
pub fn enable(cmdline: &str) -> Result<bool> {
    let policy = std::fs::read(selinux::POLICY_PATH)
        .with_context(|| format!("reading the SELinux policy {}", selinux::POLICY_PATH))?;
    // The kernel takes ~0.1 s under TCG to load even this small policy (a bare busybox
    // initramfs loading it measures the same): logged, since it is a fixed part of every boot.
    let start = std::time::Instant::now();
    selinux::load_policy(&policy)?;
    let load_time = start.elapsed();
    selinux::set_current_context(selinux::contexts::INIT)?;
    let enforcing = enforcing_wanted(cmdline);
    label_public_devices();
    selinux::set_enforcing(enforcing)?;
    log(&format!(
        "SELinux: policy loaded ({} bytes, {:.3} s), {}",
        policy.len(),
        load_time.as_secs_f64(),
        if enforcing {
            "enforcing"
        } else {
            "permissive (androidboot.selinux=permissive)"
        }
    ));
    Ok(enforcing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_debuggable_vm_may_be_permissive() {
        assert!(enforcing_wanted(
            "console=tty0 androidboot.microdroid.debuggable=0"
        ));
        assert!(enforcing_wanted(
            "androidboot.microdroid.debuggable=0 androidboot.selinux=permissive"
        ));
        assert!(enforcing_wanted("androidboot.microdroid.debuggable=1"));
        assert!(!enforcing_wanted(
            "androidboot.microdroid.debuggable=1 androidboot.selinux=permissive"
        ));
    }
}

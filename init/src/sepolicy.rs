//! Init's SELinux step (docs/security.md): once the system partition is mounted (the policy is
//! on it, under dm-verity), load the policy, move PID 1 from the kernel's domain into `init`,
//! label the device nodes the policy singles out, and turn enforcing on. Every service starts
//! after this, so each one enters its own domain on exec.

use anyhow::{Context, Result};

use crate::console::log;

/// GPT partition names whose device nodes get a label of their own, and the label.
pub const LABELLED_PARTITIONS: &[(&str, &str)] =
    &[("vm-instance", selinux::contexts::VM_INSTANCE_DEVICE)];

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
    selinux::load_policy(&policy)?;
    selinux::set_current_context(selinux::contexts::INIT)?;
    let debuggable = cmdline
        .split_whitespace()
        .any(|w| w == "androidboot.microdroid.debuggable=1");
    let enforcing = !(debuggable && selinux::cmdline_asks_permissive(cmdline));
    label_public_devices();
    selinux::set_enforcing(enforcing)?;
    log(&format!(
        "SELinux: policy loaded ({} bytes), {}",
        policy.len(),
        if enforcing {
            "enforcing"
        } else {
            "permissive (androidboot.selinux=permissive)"
        }
    ));
    Ok(enforcing)
}

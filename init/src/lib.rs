//! Microdroid's PID 1.
//!
//! Boot, in order (docs/architecture.md):
//! 1. mount /proc, /sys, /dev (devtmpfs), /run;
//! 2. load the kernel modules listed in `/lib/modules/modules.load` with `finit_module`;
//! 3. wait for the block devices and link `/dev/block/by-name/<GPT partition name>`;
//! 4. first stage (`first_stage`): verify `vbmeta_a` against the initramfs's trust anchor, map
//!    the logical partitions of `super` through dm-linear and dm-verity, mount system and vendor
//!    read-only at /system and /vendor;
//! 5. SELinux (`sepolicy`): load the policy from /system, move into the `init` domain, label the
//!    instance disk's node, enforce;
//! 6. bring up the loopback interface; read `/system/etc/init/init.rc` and start its services
//!    (those marked `only_if_cmdline` only when the kernel command line says so: logd and
//!    adbd in debuggable VMs);
//! 7. supervise: reap every child, forward tagged service output to the console, restart or
//!    shut down as each service's policy says, keep naming new block devices;
//! 8. when a `poweroff_on_exit` service (microdroid_manager) exits: stop everything, sync,
//!    unmount, power off.
//!
//! Any error before the services run is fatal: a clear line on the console and the death-reason
//! port, then the VM ends through the exit device so the host sees a failure. PID 1 never
//! unwraps runtime data; a panic (a bug) takes the same fatal path.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
pub mod console;
pub mod devices;
pub mod first_stage;
pub mod kernel_probe;
pub mod modules;
pub mod mounts;
pub mod network;
pub mod sepolicy;
pub mod shutdown;
pub mod supervisor;

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};

use crate::console::log;

/// Where the init configuration lives on the system partition.
pub const INIT_CONFIG_PATH: &str = "/system/etc/init/init.rc";
/// GPT names of the OS disk's partitions.
pub const VBMETA_PARTITION: &str = "vbmeta_a";
pub const SUPER_PARTITION: &str = "super";
/// Logical partitions mounted by the first stage, and where.
pub const VERIFIED_MOUNTS: &[(&str, &str)] = &[("system", "/system"), ("vendor", "/vendor")];
/// How long the boot devices may take to appear.
pub const DEVICE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs PID 1. Never returns: the VM powers off or fails.
pub fn run() -> ! {
    std::panic::set_hook(Box::new(|info| {
        shutdown::fatal(&format!("init panicked (a bug): {info}"));
    }));
    match boot() {
        Ok(mut supervisor) => {
            let outcome = supervisor.run();
            shutdown::power_off(&mut supervisor, outcome)
        }
        Err(err) => shutdown::fatal(&format!("{err:#}")),
    }
}

fn boot() -> Result<supervisor::Supervisor> {
    mounts::mount_early_filesystems().context("mounting early filesystems")?;
    log(&format!(
        "Microdroid init starting (kernel {})",
        kernel_release()
    ));
    // Listen for uevents before loading drivers so that no block device goes unnoticed.
    let mut devices = devices::DeviceManager::new().context("opening the uevent socket")?;
    let loaded =
        modules::load_modules(Path::new(modules::MODULES_DIR)).context("loading kernel modules")?;
    log(&loaded.summary(8));
    kernel_probe::check(Path::new("/")).context("checking the kernel")?;
    devices::apply_device_modes(Path::new("/dev"));
    devices.coldplug().context("scanning block devices")?;
    let vbmeta_device = devices
        .wait_for_partition(VBMETA_PARTITION, DEVICE_TIMEOUT)
        .context("waiting for the OS disk")?;
    let super_device = devices
        .wait_for_partition(SUPER_PARTITION, DEVICE_TIMEOUT)
        .context("waiting for the OS disk")?;
    first_stage_mount(&vbmeta_device, &super_device).context("verified boot")?;
    let cmdline = std::fs::read_to_string("/proc/cmdline").unwrap_or_default();
    sepolicy::enable(&cmdline).context("SELinux")?;
    devices.label_nodes();
    let config_bytes =
        std::fs::read(INIT_CONFIG_PATH).with_context(|| format!("reading {INIT_CONFIG_PATH}"))?;
    let config = init_config::InitConfig::parse(&config_bytes)
        .with_context(|| format!("bad init configuration {INIT_CONFIG_PATH}"))?;
    let mut supervisor =
        supervisor::Supervisor::new(config, devices).context("setting up the supervisor")?;
    if let Err(e) = network::loopback_up() {
        log(&format!("bringing up lo: {e}"));
    }
    supervisor
        .start_enabled_services(&cmdline)
        .context("starting services")?;
    Ok(supervisor)
}

fn first_stage_mount(vbmeta_device: &Path, super_device: &Path) -> Result<()> {
    let anchor = first_stage::load_anchor(Path::new("/")).context("loading the trust anchor")?;
    let vbmeta = first_stage::verify_vbmeta(vbmeta_device, &anchor)?;
    log(&format!(
        "vbmeta_a verified: digest {} matches the bootconfig",
        verity::to_hex(&vbmeta.digest())
    ));
    let partitions = first_stage::SuperPartitions::open(super_device)?;
    for (name, mount_point) in VERIFIED_MOUNTS {
        let device = partitions.map_verified(&vbmeta, name, &anchor.slot_suffix)?;
        mounts::mount_readonly(&device, mount_point).with_context(|| format!("mounting {name}"))?;
        log(&format!(
            "mounted {name}{} read-only at {mount_point}",
            anchor.slot_suffix
        ));
    }
    Ok(())
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into())
}

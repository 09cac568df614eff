//! The two ways PID 1 ends the VM: an orderly power-off, and a fatal error that the host must
//! see as a failure.

use std::io::Write;
use std::time::Duration;

use nix::sys::reboot::{reboot, RebootMode};
use vm_status::{FailureClass, DEATH_REASON_DEVICE, DEBUG_EXIT_PORT, INIT_FATAL_EXIT_VALUE};

use crate::console::log;
use crate::mounts;
use crate::supervisor::{Outcome, Supervisor};

/// How long services get to stop after SIGTERM.
pub const STOP_GRACE: Duration = Duration::from_secs(3);

/// Stops the services, syncs, unmounts and powers off.
pub fn power_off(supervisor: &mut Supervisor, outcome: Outcome) -> ! {
    match &outcome {
        Outcome::ServiceRequestedPowerOff { service, status } => {
            log(&format!("service {service:?} {status}: powering off"))
        }
        Outcome::Signalled(sig) => log(&format!("received {sig}: powering off")),
    }
    supervisor.stop_all(STOP_GRACE);
    nix::unistd::sync();
    mounts::unmount_all();
    log("power off");
    let _ = reboot(RebootMode::RB_POWER_OFF);
    // reboot(2) does not return on success.
    fatal("reboot(RB_POWER_OFF) failed")
}

/// Reports a fatal error and ends the VM as a failure: a console line, the death reason on
/// ttyS1, then QEMU's exit device. Where that device does not exist (crosvm), PID 1 exits, the
/// kernel panics and pvpanic reports the crash.
pub fn fatal(message: &str) -> ! {
    log(&format!("FATAL: {message}"));
    report_death_reason(
        &FailureClass::UnknownRuntimeError.death_reason_line(&format!("init: {message}")),
    );
    nix::unistd::sync();
    exit_device_write(INIT_FATAL_EXIT_VALUE);
    std::process::exit(1)
}

fn report_death_reason(line: &str) {
    if let Ok(mut tty) = std::fs::OpenOptions::new()
        .write(true)
        .open(DEATH_REASON_DEVICE)
    {
        let _ = tty.write_all(format!("{line}\n").as_bytes());
        let _ = tty.flush();
        let _ = nix::sys::termios::tcdrain(&tty);
    }
}

/// Writes `value` to QEMU's `isa-debug-exit` port, which ends QEMU with status `value*2+1`.
fn exit_device_write(value: u32) {
    // SAFETY: ioperm only changes this process's I/O permission bitmap; the port range is the
    // four bytes of the exit device.
    let granted = unsafe { libc::ioperm(libc::c_ulong::from(DEBUG_EXIT_PORT), 4, 1) } == 0;
    if granted {
        // SAFETY: an `out` to the exit device's port, which ioperm has just granted. On a machine
        // without the device the write goes nowhere.
        unsafe {
            std::arch::asm!("out dx, eax", in("dx") DEBUG_EXIT_PORT, in("eax") value, options(nomem, nostack, preserves_flags));
        }
    }
}

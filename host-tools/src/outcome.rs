//! How a VM ended, decided in one place from what the host can see: the VMM's exit status, the
//! death-reason port (ttyS1), the guest's IVirtualMachineService calls (notifyPayloadFinished,
//! notifyError), the console, and whether vmctl stopped the VM itself. Each outcome has its own
//! vmctl exit status and AOSP DeathReason.

use std::fmt;
use std::process::ExitStatus;

use vm_service::VmEventKind;
use vm_status::{
    parse_death_reason, qemu_status_for_exit_value, DeathReason, ErrorCode, ReportedDeath,
    INIT_FATAL_EXIT_VALUE,
};

/// vmctl's exit statuses for outcomes other than a finished payload (whose own code is used).
/// The values follow `timeout(1)` and shell conventions.
pub mod exit_status {
    /// The VM ran past `--timeout`, or its payload did not start within `--boot-timeout`.
    pub const TIMEOUT: u8 = 124;
    /// The guest reported an error (death reason), or stopped without a payload result.
    pub const GUEST_ERROR: u8 = 125;
    /// The guest kernel panicked.
    pub const KERNEL_PANIC: u8 = 126;
    /// vmctl could not run the VM (QEMU or the vsock backend failed, bad arguments, ...).
    pub const INFRASTRUCTURE: u8 = 127;
    /// vmctl was interrupted (Ctrl-C, SIGTERM) and stopped the VM.
    pub const INTERRUPTED: u8 = 130;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmOutcome {
    /// The payload ran and exited with this code.
    PayloadFinished(i32),
    /// The guest reported why it failed on the death-reason port.
    GuestError(ReportedDeath),
    /// PID 1 hit a fatal error (it ends the VM through the exit device).
    InitFailed(Option<ReportedDeath>),
    /// The guest kernel panicked.
    KernelPanic,
    /// The VM powered off without a payload result or a death reason.
    NoResult,
    /// The VM ran past the timeout and was killed.
    Timeout { seconds: u64 },
    /// The payload did not start within the boot timeout; the VM was killed (AOSP's HANGUP).
    Hangup { seconds: u64 },
    /// vmctl was interrupted and stopped the VM.
    Interrupted,
    /// The guest broke a host limit (docs/security.md: a flood on the death-reason port, the
    /// RPC protocol broken, connections or refused calls past their caps); the VM was stopped.
    Misbehaving { reason: String },
    /// The VMM failed on its own (bad arguments, missing files, ...).
    QemuFailed(String),
}

/// Which VMM ran the VM: their exit statuses mean different things.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum Vmm {
    #[default]
    Qemu,
    Crosvm,
}

impl Vmm {
    pub fn name(self) -> &'static str {
        match self {
            Vmm::Qemu => "qemu",
            Vmm::Crosvm => "crosvm",
        }
    }
}

/// crosvm's exit statuses (`crosvm.rs`: 32 reboot, 33 crash, 36 watchdog reboot).
mod crosvm_status {
    pub const REBOOT: i32 = 32;
    pub const CRASH: i32 = 33;
    pub const WATCHDOG_REBOOT: i32 = 36;
}

/// What the host observed when QEMU ended.
#[derive(Debug, Clone, Default)]
pub struct Observation<'a> {
    pub qemu_status: Option<i32>,
    pub qemu_stderr: &'a str,
    pub death_reason: &'a [u8],
    /// The guest's IVirtualMachineService notifications, in order.
    pub events: &'a [VmEventKind],
    pub console: &'a [u8],
    pub vmm: Vmm,
}

impl VmOutcome {
    pub fn from_observation(obs: &Observation<'_>) -> VmOutcome {
        // The ttyS1 line wins over notifyError, as in AOSP's crosvm.rs.
        let death = parse_death_reason(obs.death_reason).or_else(|| {
            obs.events.iter().find_map(|e| match e {
                VmEventKind::Error { code, message } => Some(ReportedDeath {
                    reason: ErrorCode::from_i32(code.0).map_or(
                        DeathReason::MicrodroidUnknownRuntimeError,
                        ErrorCode::death_reason,
                    ),
                    detail: Some(message.clone()),
                }),
                _ => None,
            })
        });
        let finished = obs.events.iter().find_map(|e| match e {
            VmEventKind::PayloadFinished(code) => Some(*code),
            _ => None,
        });
        let panicked = String::from_utf8_lossy(obs.console).contains("Kernel panic - not syncing");
        let clean_exit = |death: Option<ReportedDeath>| match (death, finished) {
            (Some(death), _) => VmOutcome::GuestError(death),
            (None, Some(code)) => VmOutcome::PayloadFinished(code),
            // panic=-1 reboots, and -no-reboot turns that into a clean exit when pvpanic
            // was not loaded yet.
            (None, None) if panicked => VmOutcome::KernelPanic,
            (None, None) => VmOutcome::NoResult,
        };
        if obs.vmm == Vmm::Crosvm {
            return match obs.qemu_status {
                Some(0) => clean_exit(death),
                Some(
                    crosvm_status::CRASH | crosvm_status::REBOOT | crosvm_status::WATCHDOG_REBOOT,
                ) => death.map_or(VmOutcome::KernelPanic, VmOutcome::GuestError),
                _ => VmOutcome::QemuFailed(format!(
                    "crosvm exited with {}: {}",
                    obs.qemu_status
                        .map_or("a signal".to_owned(), |s| format!("status {s}")),
                    obs.qemu_stderr.trim()
                )),
            };
        }
        match obs.qemu_status {
            Some(s) if s == qemu_status_for_exit_value(INIT_FATAL_EXIT_VALUE) => {
                VmOutcome::InitFailed(death)
            }
            Some(0) => clean_exit(death),
            // pvpanic with `-action panic=exit-failure`, unless QEMU itself complained.
            Some(1) if !qemu_reported_error(obs.qemu_stderr) => VmOutcome::KernelPanic,
            _ => VmOutcome::QemuFailed(format!(
                "QEMU exited with {}: {}",
                obs.qemu_status
                    .map_or("a signal".to_owned(), |s| format!("status {s}")),
                obs.qemu_stderr.trim()
            )),
        }
    }

    pub fn exit_status(&self) -> u8 {
        match self {
            // Exit codes are 0..=255 to the parent; keep the low byte as a shell does.
            VmOutcome::PayloadFinished(code) => (*code & 0xff) as u8,
            VmOutcome::GuestError(_)
            | VmOutcome::InitFailed(_)
            | VmOutcome::NoResult
            | VmOutcome::Misbehaving { .. } => exit_status::GUEST_ERROR,
            VmOutcome::KernelPanic => exit_status::KERNEL_PANIC,
            VmOutcome::Timeout { .. } | VmOutcome::Hangup { .. } => exit_status::TIMEOUT,
            VmOutcome::Interrupted => exit_status::INTERRUPTED,
            VmOutcome::QemuFailed(_) => exit_status::INFRASTRUCTURE,
        }
    }

    /// AOSP's verdict for this outcome.
    pub fn death_reason(&self) -> DeathReason {
        match self {
            VmOutcome::PayloadFinished(_) | VmOutcome::NoResult => DeathReason::Shutdown,
            VmOutcome::GuestError(d) => d.reason,
            VmOutcome::InitFailed(_) | VmOutcome::KernelPanic => DeathReason::Crash,
            VmOutcome::Timeout { .. } | VmOutcome::Hangup { .. } => DeathReason::Hangup,
            VmOutcome::Interrupted | VmOutcome::Misbehaving { .. } => DeathReason::Killed,
            VmOutcome::QemuFailed(_) => DeathReason::StartFailed,
        }
    }
}

fn qemu_reported_error(stderr: &str) -> bool {
    stderr
        .lines()
        .any(|l| l.starts_with("qemu-system") || l.contains("qemu-system-x86_64:"))
}

impl VmOutcome {
    /// The guest's death reason, with the tombstone a crash left (AOSP's host logs where it
    /// wrote it; here the reason's detail names it).
    pub fn with_tombstone(self, tombstone: Option<&std::path::Path>) -> VmOutcome {
        match (self, tombstone) {
            (VmOutcome::GuestError(mut d), Some(path)) => {
                let note = format!("tombstone: {}", path.display());
                d.detail = Some(match d.detail.take() {
                    Some(text) => format!("{text}; {note}"),
                    None => note,
                });
                VmOutcome::GuestError(d)
            }
            (outcome, _) => outcome,
        }
    }
}

impl fmt::Display for VmOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let detail = |d: &ReportedDeath| match &d.detail {
            Some(text) => format!("{} ({text})", d.reason),
            None => d.reason.to_string(),
        };
        match self {
            VmOutcome::PayloadFinished(code) => write!(f, "payload exited with status {code}"),
            VmOutcome::GuestError(d) => write!(f, "guest error: {}", detail(d)),
            VmOutcome::InitFailed(Some(d)) => write!(f, "guest init failed: {}", detail(d)),
            VmOutcome::InitFailed(None) => {
                write!(f, "guest init failed (no reason reported; see the console)")
            }
            VmOutcome::KernelPanic => write!(f, "guest kernel panic"),
            VmOutcome::NoResult => write!(f, "the VM powered off without a payload result"),
            VmOutcome::Timeout { seconds } => {
                write!(f, "timed out after {seconds} s; the VM was killed")
            }
            VmOutcome::Hangup { seconds } => {
                write!(
                    f,
                    "the payload did not start within {seconds} s; the VM was killed"
                )
            }
            VmOutcome::Interrupted => write!(f, "interrupted; the VM was stopped"),
            VmOutcome::Misbehaving { reason } => {
                write!(f, "the guest misbehaved: it {reason}; the VM was stopped")
            }
            VmOutcome::QemuFailed(msg) => write!(f, "{msg}"),
        }
    }
}

/// Exit status of a QEMU process as an integer, `None` if a signal ended it.
pub fn status_code(status: ExitStatus) -> Option<i32> {
    status.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crash_death_reason_names_its_tombstone() {
        let crash = VmOutcome::GuestError(ReportedDeath {
            reason: DeathReason::MicrodroidUnknownRuntimeError,
            detail: Some("Payload exited due to signal: 11 (SIGSEGV)".into()),
        });
        let with = crash
            .clone()
            .with_tombstone(Some(std::path::Path::new("/logs/tombstone_00")));
        assert_eq!(
            with.to_string(),
            "guest error: MICRODROID_UNKNOWN_RUNTIME_ERROR (Payload exited due to signal: 11 \
             (SIGSEGV); tombstone: /logs/tombstone_00)"
        );
        assert_eq!(crash.clone().with_tombstone(None), crash);
        let fine = VmOutcome::PayloadFinished(0);
        assert_eq!(
            fine.clone()
                .with_tombstone(Some(std::path::Path::new("/t"))),
            fine
        );
    }

    use vm_service::ErrorCode as WireErrorCode;

    fn outcome(
        status: i32,
        death: &[u8],
        events: &[VmEventKind],
        console: &[u8],
        stderr: &str,
    ) -> VmOutcome {
        VmOutcome::from_observation(&Observation {
            qemu_status: Some(status),
            qemu_stderr: stderr,
            death_reason: death,
            events,
            console,
            vmm: Vmm::Qemu,
        })
    }

    const STARTED: VmEventKind = VmEventKind::PayloadStarted;

    #[test]
    fn tells_outcomes_apart() {
        let ok = outcome(0, b"", &[STARTED, VmEventKind::PayloadFinished(0)], b"", "");
        assert_eq!(
            (ok.clone(), ok.exit_status()),
            (VmOutcome::PayloadFinished(0), 0)
        );
        assert_eq!(
            outcome(0, b"", &[VmEventKind::PayloadFinished(3)], b"", "").exit_status(),
            3
        );
        let err = outcome(0, b"MICRODROID_INVALID_PAYLOAD_CONFIG\r\n", &[], b"", "");
        assert_eq!(
            err.death_reason(),
            DeathReason::MicrodroidInvalidPayloadConfig
        );
        assert_eq!(err.exit_status(), exit_status::GUEST_ERROR);
        let init = outcome(
            3,
            b"MICRODROID_UNKNOWN_RUNTIME_ERROR|init: bad\n",
            &[],
            b"",
            "",
        );
        assert!(
            matches!(&init, VmOutcome::InitFailed(Some(d)) if d.detail.as_deref() == Some("init: bad"))
        );
        assert_eq!(
            outcome(1, b"", &[], b"", "").exit_status(),
            exit_status::KERNEL_PANIC
        );
        assert_eq!(
            outcome(0, b"", &[], b"Kernel panic - not syncing: x", ""),
            VmOutcome::KernelPanic
        );
        assert_eq!(outcome(0, b"", &[], b"", ""), VmOutcome::NoResult);
        let qemu = outcome(
            1,
            b"",
            &[],
            b"",
            "qemu-system-x86_64: -drive x: No such file",
        );
        assert_eq!(qemu.exit_status(), exit_status::INFRASTRUCTURE);
        assert_eq!(
            VmOutcome::Timeout { seconds: 5 }.exit_status(),
            exit_status::TIMEOUT
        );
        assert_eq!(VmOutcome::PayloadFinished(256 + 7).exit_status(), 7);
        let hang = VmOutcome::Hangup { seconds: 30 };
        assert_eq!(
            (hang.exit_status(), hang.death_reason()),
            (exit_status::TIMEOUT, DeathReason::Hangup)
        );
        // A guest stopped for breaking a host limit: a guest error to the shell, KILLED to
        // virtmgr's clients, and the reason in words.
        let misbehaving = VmOutcome::Misbehaving {
            reason: "wrote more than 64 KiB to its death-reason port (ttyS1)".into(),
        };
        assert_eq!(
            (misbehaving.exit_status(), misbehaving.death_reason()),
            (exit_status::GUEST_ERROR, DeathReason::Killed)
        );
        assert_eq!(
            misbehaving.to_string(),
            "the guest misbehaved: it wrote more than 64 KiB to its death-reason port (ttyS1); \
             the VM was stopped"
        );
    }

    #[test]
    fn rpc_errors_and_the_serial_line() {
        let error = VmEventKind::Error {
            code: WireErrorCode::PAYLOAD_INVALID_CONFIG,
            message: "No task".into(),
        };
        // notifyError alone decides when ttyS1 is empty...
        let alone = outcome(0, b"", std::slice::from_ref(&error), b"", "");
        assert_eq!(
            alone.death_reason(),
            DeathReason::MicrodroidInvalidPayloadConfig
        );
        assert!(
            matches!(&alone, VmOutcome::GuestError(d) if d.detail.as_deref() == Some("No task"))
        );
        // ...and ttyS1 wins when both arrive.
        let both = outcome(
            0,
            b"MICRODROID_UNKNOWN_RUNTIME_ERROR|x\n",
            &[error],
            b"",
            "",
        );
        assert_eq!(
            both.death_reason(),
            DeathReason::MicrodroidUnknownRuntimeError
        );
        let unknown = VmEventKind::Error {
            code: WireErrorCode(42),
            message: "?".into(),
        };
        assert_eq!(
            outcome(0, b"", &[unknown], b"", "").death_reason(),
            DeathReason::MicrodroidUnknownRuntimeError
        );
        // A guest that never reached the host service reports it on ttyS1 only.
        let no_link = outcome(
            0,
            b"MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE\n",
            &[],
            b"",
            "",
        );
        assert_eq!(
            no_link.death_reason(),
            DeathReason::MicrodroidFailedToConnectToVirtualizationService
        );
        assert_eq!(no_link.exit_status(), exit_status::GUEST_ERROR);
    }

    #[test]
    fn crosvm_statuses() {
        let crosvm = |status, events: &[VmEventKind]| {
            VmOutcome::from_observation(&Observation {
                qemu_status: Some(status),
                events,
                vmm: Vmm::Crosvm,
                ..Default::default()
            })
        };
        assert_eq!(
            crosvm(0, &[VmEventKind::PayloadFinished(5)]),
            VmOutcome::PayloadFinished(5)
        );
        assert_eq!(crosvm(33, &[]), VmOutcome::KernelPanic);
        assert_eq!(crosvm(1, &[]).death_reason(), DeathReason::StartFailed);
    }
}

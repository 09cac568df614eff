//! How a Microdroid VM ends, as both sides of the VM boundary see it.
//!
//! The guest has three ways to tell the host why it stopped, all of which survive a guest that
//! dies early:
//! - the **death-reason serial port** (`/dev/ttyS1`, AOSP's `FAILURE_SERIAL_DEVICE`): one line,
//!   AOSP's strings (reference/aosp-guest.md §5.7), `PREFIX|detail`;
//! - the **payload status port** (`/dev/ttyS2`): one line per payload event. This carries what
//!   AOSP sends over binder RPC (`notifyPayloadStarted`, `notifyPayloadFinished(code)`) until the
//!   RPC link exists;
//! - the **exit device**: PID 1 ends the VM through QEMU's `isa-debug-exit` when it cannot go on,
//!   so QEMU's own exit status says "init failed" even when nothing else could be written.

use std::fmt;

/// The death-reason serial device in the guest.
pub const DEATH_REASON_DEVICE: &str = "/dev/ttyS1";
/// The payload status serial device in the guest.
pub const PAYLOAD_STATUS_DEVICE: &str = "/dev/ttyS2";

/// I/O port of QEMU's `isa-debug-exit` device (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`).
pub const DEBUG_EXIT_PORT: u16 = 0xf4;
/// Value PID 1 writes to the exit device on a fatal error.
pub const INIT_FATAL_EXIT_VALUE: u32 = 1;
/// QEMU exits with `(value << 1) | 1` after a write to the exit device.
pub const fn qemu_status_for_exit_value(value: u32) -> i32 {
    ((value << 1) | 1) as i32
}

/// AOSP's `ErrorCode` (IVirtualMachineService `notifyError`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum ErrorCode {
    Unknown = 0,
    PayloadVerificationFailed = 1,
    PayloadChanged = 2,
    PayloadInvalidConfig = 3,
}

/// The classes of guest failure the host must tell apart, with their AOSP death-reason strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureClass {
    FailedToConnectToVirtualizationService,
    PayloadChanged,
    PayloadVerificationFailed,
    PayloadInvalidConfig,
    /// Anything else; the detail after `|` says what.
    UnknownRuntimeError,
}

impl FailureClass {
    /// The exact string AOSP's microdroid_manager writes to ttyS1.
    pub const fn death_reason_prefix(self) -> &'static str {
        match self {
            Self::FailedToConnectToVirtualizationService => {
                "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE"
            }
            Self::PayloadChanged => "MICRODROID_PAYLOAD_HAS_CHANGED",
            Self::PayloadVerificationFailed => "MICRODROID_PAYLOAD_VERIFICATION_FAILED",
            Self::PayloadInvalidConfig => "MICRODROID_INVALID_PAYLOAD_CONFIG",
            Self::UnknownRuntimeError => "MICRODROID_UNKNOWN_RUNTIME_ERROR",
        }
    }

    /// The `ErrorCode` AOSP sends with `notifyError` for this class.
    pub const fn error_code(self) -> ErrorCode {
        match self {
            Self::PayloadChanged => ErrorCode::PayloadChanged,
            Self::PayloadVerificationFailed => ErrorCode::PayloadVerificationFailed,
            Self::PayloadInvalidConfig => ErrorCode::PayloadInvalidConfig,
            Self::FailedToConnectToVirtualizationService | Self::UnknownRuntimeError => {
                ErrorCode::Unknown
            }
        }
    }

    /// The line written to ttyS1. Only the catch-all class carries a detail, as in AOSP.
    pub fn death_reason_line(self, detail: &str) -> String {
        match self {
            Self::UnknownRuntimeError => format!("{}|{}", self.death_reason_prefix(), one_line(detail)),
            _ => self.death_reason_prefix().to_owned(),
        }
    }
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// AOSP's `DeathReason` (DeathReason.aidl), the host's verdict on how a VM ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum DeathReason {
    InfrastructureError = 0,
    Killed = 1,
    Unknown = 2,
    Shutdown = 3,
    StartFailed = 4,
    Reboot = 5,
    Crash = 6,
    PvmFirmwarePublicKeyMismatch = 7,
    PvmFirmwareInstanceImageChanged = 8,
    MicrodroidFailedToConnectToVirtualizationService = 11,
    MicrodroidPayloadHasChanged = 12,
    MicrodroidPayloadVerificationFailed = 13,
    MicrodroidInvalidPayloadConfig = 14,
    MicrodroidUnknownRuntimeError = 15,
    Hangup = 16,
    WatchdogReboot = 17,
}

impl DeathReason {
    pub const fn name(self) -> &'static str {
        match self {
            Self::InfrastructureError => "INFRASTRUCTURE_ERROR",
            Self::Killed => "KILLED",
            Self::Unknown => "UNKNOWN",
            Self::Shutdown => "SHUTDOWN",
            Self::StartFailed => "START_FAILED",
            Self::Reboot => "REBOOT",
            Self::Crash => "CRASH",
            Self::PvmFirmwarePublicKeyMismatch => "PVM_FIRMWARE_PUBLIC_KEY_MISMATCH",
            Self::PvmFirmwareInstanceImageChanged => "PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED",
            Self::MicrodroidFailedToConnectToVirtualizationService => {
                "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE"
            }
            Self::MicrodroidPayloadHasChanged => "MICRODROID_PAYLOAD_HAS_CHANGED",
            Self::MicrodroidPayloadVerificationFailed => "MICRODROID_PAYLOAD_VERIFICATION_FAILED",
            Self::MicrodroidInvalidPayloadConfig => "MICRODROID_INVALID_PAYLOAD_CONFIG",
            Self::MicrodroidUnknownRuntimeError => "MICRODROID_UNKNOWN_RUNTIME_ERROR",
            Self::Hangup => "HANGUP",
            Self::WatchdogReboot => "WATCHDOG_REBOOT",
        }
    }
}

impl fmt::Display for DeathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A death reason as read back from ttyS1: the matched reason and the detail after `|`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportedDeath {
    pub reason: DeathReason,
    pub detail: Option<String>,
}

/// Parses what the guest wrote to ttyS1 the way AOSP's `crosvm.rs::death_reason` does: split on
/// the first `|`, match the prefix. `None` when nothing was written; an unrecognised prefix maps
/// to `UNKNOWN` with the whole text kept as the detail.
pub fn parse_death_reason(raw: &[u8]) -> Option<ReportedDeath> {
    let text = String::from_utf8_lossy(raw);
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if text.is_empty() {
        return None;
    }
    let (prefix, detail) = match text.split_once('|') {
        Some((p, d)) => (p, Some(d.trim().to_owned())),
        None => (text, None),
    };
    let reason = match prefix {
        "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE" => {
            DeathReason::MicrodroidFailedToConnectToVirtualizationService
        }
        "MICRODROID_PAYLOAD_HAS_CHANGED" => DeathReason::MicrodroidPayloadHasChanged,
        "MICRODROID_PAYLOAD_VERIFICATION_FAILED" => DeathReason::MicrodroidPayloadVerificationFailed,
        "MICRODROID_INVALID_PAYLOAD_CONFIG" => DeathReason::MicrodroidInvalidPayloadConfig,
        "MICRODROID_UNKNOWN_RUNTIME_ERROR" => DeathReason::MicrodroidUnknownRuntimeError,
        "PVM_FIRMWARE_PUBLIC_KEY_MISMATCH" => DeathReason::PvmFirmwarePublicKeyMismatch,
        "PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED" => DeathReason::PvmFirmwareInstanceImageChanged,
        "HANGUP" => DeathReason::Hangup,
        _ => return Some(ReportedDeath { reason: DeathReason::Unknown, detail: Some(text.to_owned()) }),
    };
    Some(ReportedDeath { reason, detail })
}

/// One event on the payload status port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadEvent {
    Started,
    Ready,
    /// The payload exited on its own with this code.
    Finished(i32),
}

impl PayloadEvent {
    pub fn to_line(self) -> String {
        match self {
            Self::Started => "payload-started\n".to_owned(),
            Self::Ready => "payload-ready\n".to_owned(),
            Self::Finished(code) => format!("payload-finished {code}\n"),
        }
    }

    pub fn parse_line(line: &str) -> Option<Self> {
        match line.trim().split_once(' ').unwrap_or((line.trim(), "")) {
            ("payload-started", "") => Some(Self::Started),
            ("payload-ready", "") => Some(Self::Ready),
            ("payload-finished", code) => code.parse().ok().map(Self::Finished),
            _ => None,
        }
    }
}

/// All events in what the guest wrote to the status port; lines that do not parse are skipped
/// (the port is a raw serial line and may hold noise after a crash).
pub fn parse_payload_events(raw: &[u8]) -> Vec<PayloadEvent> {
    String::from_utf8_lossy(raw).lines().filter_map(PayloadEvent::parse_line).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn death_reason_lines_match_aosp() {
        assert_eq!(
            FailureClass::PayloadInvalidConfig.death_reason_line("ignored"),
            "MICRODROID_INVALID_PAYLOAD_CONFIG"
        );
        assert_eq!(
            FailureClass::UnknownRuntimeError.death_reason_line("a\nb"),
            "MICRODROID_UNKNOWN_RUNTIME_ERROR|a b"
        );
        assert_eq!(FailureClass::PayloadChanged.error_code(), ErrorCode::PayloadChanged);
    }

    #[test]
    fn parses_death_reasons() {
        assert_eq!(parse_death_reason(b""), None);
        assert_eq!(parse_death_reason(b"\r\n\0"), None);
        let r = parse_death_reason(b"MICRODROID_UNKNOWN_RUNTIME_ERROR|boom: x|y\r\n").unwrap();
        assert_eq!(r.reason, DeathReason::MicrodroidUnknownRuntimeError);
        assert_eq!(r.detail.as_deref(), Some("boom: x|y"));
        let r = parse_death_reason(b"MICRODROID_PAYLOAD_VERIFICATION_FAILED").unwrap();
        assert_eq!((r.reason, r.detail), (DeathReason::MicrodroidPayloadVerificationFailed, None));
        let r = parse_death_reason(b"garbage").unwrap();
        assert_eq!(r.reason, DeathReason::Unknown);
        assert_eq!(r.reason as i32, 2);
    }

    #[test]
    fn payload_events_round_trip() {
        for ev in [PayloadEvent::Started, PayloadEvent::Ready, PayloadEvent::Finished(-3)] {
            assert_eq!(PayloadEvent::parse_line(&ev.to_line()), Some(ev));
        }
        let raw = b"payload-started\r\nnoise\npayload-finished 7\r\n";
        assert_eq!(parse_payload_events(raw), [PayloadEvent::Started, PayloadEvent::Finished(7)]);
        assert_eq!(PayloadEvent::parse_line("payload-finished x"), None);
    }

    #[test]
    fn exit_device_status() {
        assert_eq!(qemu_status_for_exit_value(INIT_FATAL_EXIT_VALUE), 3);
    }
}

//! How a Microdroid VM ends, as both sides of the VM boundary see it.
//!
//! Payload events (started, ready, finished, error) travel over binder RPC (`libs/vm_service`).
//! Besides that link, the guest has two ways to tell the host why it stopped, both of which
//! survive a guest that dies early or never reaches the host service:
//! - the **death-reason serial port** (`/dev/ttyS1`, AOSP's `FAILURE_SERIAL_DEVICE`): one line,
//!   AOSP's strings (`microdroid_manager/src/main.rs` in AOSP packages/modules/Virtualization),
//!   `PREFIX|detail`;
//! - the **exit device**: PID 1 ends the VM through QEMU's `isa-debug-exit` when it cannot go on,
//!   so QEMU's own exit status says "init failed" even when nothing else could be written.

// Tests may unwrap: a failing assertion is the point there.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
use std::fmt;

/// The death-reason serial device in the guest.
pub const DEATH_REASON_DEVICE: &str = "/dev/ttyS1";

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

impl ErrorCode {
    /// The code for a wire value; `None` for values this build does not know (AIDL enums are open).
    pub const fn from_i32(value: i32) -> Option<Self> {
        match value {
            0 => Some(Self::Unknown),
            1 => Some(Self::PayloadVerificationFailed),
            2 => Some(Self::PayloadChanged),
            3 => Some(Self::PayloadInvalidConfig),
            _ => None,
        }
    }

    /// The death reason the host gives a VM whose guest sent `notifyError(code)` but wrote
    /// nothing to ttyS1 (when both arrive, the ttyS1 line decides, as in AOSP's crosvm.rs).
    pub const fn death_reason(self) -> DeathReason {
        match self {
            Self::PayloadVerificationFailed => DeathReason::MicrodroidPayloadVerificationFailed,
            Self::PayloadChanged => DeathReason::MicrodroidPayloadHasChanged,
            Self::PayloadInvalidConfig => DeathReason::MicrodroidInvalidPayloadConfig,
            Self::Unknown => DeathReason::MicrodroidUnknownRuntimeError,
        }
    }
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
            Self::UnknownRuntimeError => {
                format!("{}|{}", self.death_reason_prefix(), one_line(detail))
            }
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
    /// Every reason this build knows, in wire order.
    pub const ALL: [DeathReason; 16] = [
        Self::InfrastructureError,
        Self::Killed,
        Self::Unknown,
        Self::Shutdown,
        Self::StartFailed,
        Self::Reboot,
        Self::Crash,
        Self::PvmFirmwarePublicKeyMismatch,
        Self::PvmFirmwareInstanceImageChanged,
        Self::MicrodroidFailedToConnectToVirtualizationService,
        Self::MicrodroidPayloadHasChanged,
        Self::MicrodroidPayloadVerificationFailed,
        Self::MicrodroidInvalidPayloadConfig,
        Self::MicrodroidUnknownRuntimeError,
        Self::Hangup,
        Self::WatchdogReboot,
    ];

    /// The reason for a wire value; `None` for values this build does not know.
    pub fn from_i32(value: i32) -> Option<Self> {
        Self::ALL.into_iter().find(|r| *r as i32 == value)
    }

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
        Some((p, d)) => (p, Some(clean_detail(d.trim()))),
        None => (text, None),
    };
    let reason = match prefix {
        "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE" => {
            DeathReason::MicrodroidFailedToConnectToVirtualizationService
        }
        "MICRODROID_PAYLOAD_HAS_CHANGED" => DeathReason::MicrodroidPayloadHasChanged,
        "MICRODROID_PAYLOAD_VERIFICATION_FAILED" => {
            DeathReason::MicrodroidPayloadVerificationFailed
        }
        "MICRODROID_INVALID_PAYLOAD_CONFIG" => DeathReason::MicrodroidInvalidPayloadConfig,
        "MICRODROID_UNKNOWN_RUNTIME_ERROR" => DeathReason::MicrodroidUnknownRuntimeError,
        "PVM_FIRMWARE_PUBLIC_KEY_MISMATCH" => DeathReason::PvmFirmwarePublicKeyMismatch,
        "PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED" => DeathReason::PvmFirmwareInstanceImageChanged,
        "HANGUP" => DeathReason::Hangup,
        _ => {
            return Some(ReportedDeath {
                reason: DeathReason::Unknown,
                detail: Some(clean_detail(text)),
            })
        }
    };
    Some(ReportedDeath { reason, detail })
}

/// The most characters of a death reason's detail kept: the guest writes it, the host prints
/// it and hands it to clients.
pub const MAX_DETAIL_CHARS: usize = 4096;

/// A detail as the host shows it: at most [`MAX_DETAIL_CHARS`], control characters (escape
/// sequences, newlines, C1) written out (`\u{1b}`) rather than passed to a terminal.
pub fn clean_detail(detail: &str) -> String {
    let mut out = String::new();
    for (i, c) in detail.chars().enumerate() {
        if i == MAX_DETAIL_CHARS {
            out.push_str(" [...]");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
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
        assert_eq!(
            FailureClass::PayloadChanged.error_code(),
            ErrorCode::PayloadChanged
        );
        for class in [
            FailureClass::PayloadChanged,
            FailureClass::PayloadVerificationFailed,
            FailureClass::PayloadInvalidConfig,
            FailureClass::UnknownRuntimeError,
        ] {
            // The host's reading of notifyError agrees with the guest's ttyS1 line.
            let code = ErrorCode::from_i32(class.error_code() as i32).unwrap();
            let line = class.death_reason_line("x");
            assert_eq!(
                Some(code.death_reason()),
                parse_death_reason(line.as_bytes()).map(|d| d.reason)
            );
        }
        assert_eq!(ErrorCode::from_i32(9), None);
    }

    #[test]
    fn parses_death_reasons() {
        assert_eq!(parse_death_reason(b""), None);
        assert_eq!(parse_death_reason(b"\r\n\0"), None);
        let r = parse_death_reason(b"MICRODROID_UNKNOWN_RUNTIME_ERROR|boom: x|y\r\n").unwrap();
        assert_eq!(r.reason, DeathReason::MicrodroidUnknownRuntimeError);
        assert_eq!(r.detail.as_deref(), Some("boom: x|y"));
        let r = parse_death_reason(b"MICRODROID_PAYLOAD_VERIFICATION_FAILED").unwrap();
        assert_eq!(
            (r.reason, r.detail),
            (DeathReason::MicrodroidPayloadVerificationFailed, None)
        );
        let r = parse_death_reason(b"garbage").unwrap();
        assert_eq!(r.reason, DeathReason::Unknown);
        assert_eq!(r.reason as i32, 2);
    }

    #[test]
    fn a_hostile_detail_is_shown_not_obeyed_and_bounded() {
        let r =
            parse_death_reason(b"MICRODROID_UNKNOWN_RUNTIME_ERROR|a\x1b]0;pwned\x07b\nc\xc2\x9bd")
                .unwrap();
        assert_eq!(
            r.detail.as_deref(),
            Some("a\\u{1b}]0;pwned\\u{7}b\\nc\\u{9b}d")
        );
        let long = format!("MICRODROID_UNKNOWN_RUNTIME_ERROR|{}", "x".repeat(10_000));
        let detail = parse_death_reason(long.as_bytes()).unwrap().detail.unwrap();
        assert_eq!(detail.len(), MAX_DETAIL_CHARS + " [...]".len());
        let garbage = parse_death_reason(b"\x1b[2Jgarbage").unwrap();
        assert_eq!(garbage.detail.as_deref(), Some("\\u{1b}[2Jgarbage"));
    }

    #[test]
    fn exit_device_status() {
        assert_eq!(qemu_status_for_exit_value(INIT_FATAL_EXIT_VALUE), 3);
        // `v << 1` has a zero low bit, so `| 1`, `^ 1` and `+ 1` agree for every value (the
        // `^` mutant is equivalent); these pin the shift and the set bit.
        assert_eq!(qemu_status_for_exit_value(0), 1);
        assert_eq!(qemu_status_for_exit_value(5), 11);
    }

    /// Every reason: its wire value maps back to it, its name is AOSP's, Display prints the
    /// name, and a ttyS1 line of a reason the guest may write parses back to it.
    #[test]
    fn every_reason_round_trips_by_value_and_name() {
        let guest_written = [
            DeathReason::MicrodroidFailedToConnectToVirtualizationService,
            DeathReason::MicrodroidPayloadHasChanged,
            DeathReason::MicrodroidPayloadVerificationFailed,
            DeathReason::MicrodroidInvalidPayloadConfig,
            DeathReason::MicrodroidUnknownRuntimeError,
            DeathReason::PvmFirmwarePublicKeyMismatch,
            DeathReason::PvmFirmwareInstanceImageChanged,
            DeathReason::Hangup,
        ];
        for reason in DeathReason::ALL {
            assert_eq!(DeathReason::from_i32(reason as i32), Some(reason));
            let name = reason.name();
            assert!(
                !name.is_empty() && name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
                "{name:?}"
            );
            assert_eq!(reason.to_string(), name);
            let parsed = parse_death_reason(format!("{name}|why").as_bytes()).unwrap();
            if guest_written.contains(&reason) {
                assert_eq!(parsed.reason, reason, "{name}");
                assert_eq!(parsed.detail.as_deref(), Some("why"));
            } else {
                assert_eq!(parsed.reason, DeathReason::Unknown, "{name}");
            }
        }
        assert_eq!(DeathReason::from_i32(-1), None);
        assert_eq!(DeathReason::from_i32(10_000), None);
        assert_eq!(DeathReason::Hangup.name(), "HANGUP");
    }
}

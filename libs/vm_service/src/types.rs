//! AIDL types: `ErrorCode`, `DeathReason`, `PayloadState`.

use std::fmt;

/// `android.system.virtualizationcommon.ErrorCode` (`@Backing(type="int")`).
///
/// Like the AIDL Rust backend, this is a newtype over the backing i32 so that values unknown to
/// this build still travel (AIDL enums are open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ErrorCode(pub i32);

impl ErrorCode {
    /// Unknown error.
    pub const UNKNOWN: ErrorCode = ErrorCode(0);
    /// The payload failed verification.
    pub const PAYLOAD_VERIFICATION_FAILED: ErrorCode = ErrorCode(1);
    /// The payload differs from the one recorded at first boot.
    pub const PAYLOAD_CHANGED: ErrorCode = ErrorCode(2);
    /// The payload config is invalid.
    pub const PAYLOAD_INVALID_CONFIG: ErrorCode = ErrorCode(3);

    /// AIDL name, when known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ErrorCode::UNKNOWN => "UNKNOWN",
            ErrorCode::PAYLOAD_VERIFICATION_FAILED => "PAYLOAD_VERIFICATION_FAILED",
            ErrorCode::PAYLOAD_CHANGED => "PAYLOAD_CHANGED",
            ErrorCode::PAYLOAD_INVALID_CONFIG => "PAYLOAD_INVALID_CONFIG",
            _ => return None,
        })
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "ErrorCode({})", self.0),
        }
    }
}

/// `android.system.virtualizationservice.DeathReason`: why a VM ended (host side).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeathReason(pub i32);

impl DeathReason {
    /// INFRASTRUCTURE_ERROR.
    pub const INFRASTRUCTURE_ERROR: DeathReason = DeathReason(0);
    /// KILLED.
    pub const KILLED: DeathReason = DeathReason(1);
    /// UNKNOWN.
    pub const UNKNOWN: DeathReason = DeathReason(2);
    /// SHUTDOWN.
    pub const SHUTDOWN: DeathReason = DeathReason(3);
    /// START_FAILED.
    pub const START_FAILED: DeathReason = DeathReason(4);
    /// REBOOT.
    pub const REBOOT: DeathReason = DeathReason(5);
    /// CRASH.
    pub const CRASH: DeathReason = DeathReason(6);
    /// PVM_FIRMWARE_PUBLIC_KEY_MISMATCH.
    pub const PVM_FIRMWARE_PUBLIC_KEY_MISMATCH: DeathReason = DeathReason(7);
    /// PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED.
    pub const PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED: DeathReason = DeathReason(8);
    /// MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE.
    pub const MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE: DeathReason = DeathReason(11);
    /// MICRODROID_PAYLOAD_HAS_CHANGED.
    pub const MICRODROID_PAYLOAD_HAS_CHANGED: DeathReason = DeathReason(12);
    /// MICRODROID_PAYLOAD_VERIFICATION_FAILED.
    pub const MICRODROID_PAYLOAD_VERIFICATION_FAILED: DeathReason = DeathReason(13);
    /// MICRODROID_INVALID_PAYLOAD_CONFIG.
    pub const MICRODROID_INVALID_PAYLOAD_CONFIG: DeathReason = DeathReason(14);
    /// MICRODROID_UNKNOWN_RUNTIME_ERROR.
    pub const MICRODROID_UNKNOWN_RUNTIME_ERROR: DeathReason = DeathReason(15);
    /// HANGUP: the payload did not become ready in time.
    pub const HANGUP: DeathReason = DeathReason(16);
    /// WATCHDOG_REBOOT.
    pub const WATCHDOG_REBOOT: DeathReason = DeathReason(17);

    const NAMES: [(DeathReason, &'static str); 16] = [
        (DeathReason::INFRASTRUCTURE_ERROR, "INFRASTRUCTURE_ERROR"),
        (DeathReason::KILLED, "KILLED"),
        (DeathReason::UNKNOWN, "UNKNOWN"),
        (DeathReason::SHUTDOWN, "SHUTDOWN"),
        (DeathReason::START_FAILED, "START_FAILED"),
        (DeathReason::REBOOT, "REBOOT"),
        (DeathReason::CRASH, "CRASH"),
        (
            DeathReason::PVM_FIRMWARE_PUBLIC_KEY_MISMATCH,
            "PVM_FIRMWARE_PUBLIC_KEY_MISMATCH",
        ),
        (
            DeathReason::PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED,
            "PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED",
        ),
        (
            DeathReason::MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE,
            "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE",
        ),
        (
            DeathReason::MICRODROID_PAYLOAD_HAS_CHANGED,
            "MICRODROID_PAYLOAD_HAS_CHANGED",
        ),
        (
            DeathReason::MICRODROID_PAYLOAD_VERIFICATION_FAILED,
            "MICRODROID_PAYLOAD_VERIFICATION_FAILED",
        ),
        (
            DeathReason::MICRODROID_INVALID_PAYLOAD_CONFIG,
            "MICRODROID_INVALID_PAYLOAD_CONFIG",
        ),
        (
            DeathReason::MICRODROID_UNKNOWN_RUNTIME_ERROR,
            "MICRODROID_UNKNOWN_RUNTIME_ERROR",
        ),
        (DeathReason::HANGUP, "HANGUP"),
        (DeathReason::WATCHDOG_REBOOT, "WATCHDOG_REBOOT"),
    ];

    /// AIDL name, when known.
    pub fn name(self) -> Option<&'static str> {
        Self::NAMES
            .iter()
            .find(|(d, _)| *d == self)
            .map(|(_, n)| *n)
    }

    /// Maps the failure-reason line the guest writes to ttyS1, as `crosvm.rs::death_reason`
    /// does: the part before the first `|` names the reason (the rest is detail). Only the
    /// guest-reported reasons are recognised; anything else is None.
    pub fn from_failure_reason(line: &str) -> Option<DeathReason> {
        let prefix = line.split('|').next().unwrap_or("").trim();
        [
            DeathReason::PVM_FIRMWARE_PUBLIC_KEY_MISMATCH,
            DeathReason::PVM_FIRMWARE_INSTANCE_IMAGE_CHANGED,
            DeathReason::MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE,
            DeathReason::MICRODROID_PAYLOAD_HAS_CHANGED,
            DeathReason::MICRODROID_PAYLOAD_VERIFICATION_FAILED,
            DeathReason::MICRODROID_INVALID_PAYLOAD_CONFIG,
            DeathReason::MICRODROID_UNKNOWN_RUNTIME_ERROR,
            DeathReason::HANGUP,
        ]
        .into_iter()
        .find(|d| d.name() == Some(prefix))
    }
}

impl fmt::Display for DeathReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => f.write_str(n),
            None => write!(f, "DeathReason({})", self.0),
        }
    }
}

/// Host-side payload state (`crosvm.rs` `PayloadState`), ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PayloadState {
    /// VM started, payload not yet.
    Starting,
    /// `notifyPayloadStarted` received.
    Started,
    /// `notifyPayloadReady` received.
    Ready,
    /// `notifyPayloadFinished` or `notifyError` received.
    Finished,
    /// Not ready before the host's timeout.
    Hangup,
}

impl PayloadState {
    /// Lower-case name for logs and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            PayloadState::Starting => "starting",
            PayloadState::Started => "started",
            PayloadState::Ready => "ready",
            PayloadState::Finished => "finished",
            PayloadState::Hangup => "hangup",
        }
    }
}

impl fmt::Display for PayloadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused payload state transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Invalid payload state transition from {from:?} to {to:?}")]
pub struct InvalidTransition {
    /// Current state.
    pub from: PayloadState,
    /// Requested state.
    pub to: PayloadState,
}

/// The payload state of one VM. Transitions are strictly forward (`update_payload_state`):
/// a repeated or backwards state is refused (the service answers it with EX_ILLEGAL_STATE).
#[derive(Debug)]
pub struct PayloadStateMachine {
    state: std::sync::Mutex<PayloadState>,
}

impl Default for PayloadStateMachine {
    fn default() -> Self {
        Self::new()
    }
}

impl PayloadStateMachine {
    /// Starts in [`PayloadState::Starting`].
    pub fn new() -> Self {
        PayloadStateMachine {
            state: std::sync::Mutex::new(PayloadState::Starting),
        }
    }

    /// Current state.
    pub fn get(&self) -> PayloadState {
        match self.state.lock() {
            Ok(s) => *s,
            Err(p) => *p.into_inner(),
        }
    }

    /// Moves to `to` if it is strictly after the current state.
    pub fn update(&self, to: PayloadState) -> Result<(), InvalidTransition> {
        let mut s = match self.state.lock() {
            Ok(s) => s,
            Err(p) => p.into_inner(),
        };
        if to > *s {
            *s = to;
            Ok(())
        } else {
            Err(InvalidTransition { from: *s, to })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_machine_is_strictly_forward() {
        let m = PayloadStateMachine::new();
        assert_eq!(m.update(PayloadState::Started), Ok(()));
        assert!(m.update(PayloadState::Started).is_err());
        assert_eq!(m.update(PayloadState::Ready), Ok(()));
        assert_eq!(
            m.update(PayloadState::Started),
            Err(InvalidTransition {
                from: PayloadState::Ready,
                to: PayloadState::Started
            })
        );
        assert_eq!(m.update(PayloadState::Finished), Ok(()));
        assert_eq!(m.update(PayloadState::Hangup), Ok(()));
        assert!(m.update(PayloadState::Finished).is_err());
        assert_eq!(m.get(), PayloadState::Hangup);
        // Skipping is allowed (forward), as in AOSP.
        let m = PayloadStateMachine::new();
        assert_eq!(m.update(PayloadState::Finished), Ok(()));
    }

    #[test]
    fn death_reason_from_serial() {
        assert_eq!(
            DeathReason::from_failure_reason(
                "MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE\n"
            ),
            Some(DeathReason::MICRODROID_FAILED_TO_CONNECT_TO_VIRTUALIZATION_SERVICE)
        );
        assert_eq!(
            DeathReason::from_failure_reason("MICRODROID_UNKNOWN_RUNTIME_ERROR|boom: x"),
            Some(DeathReason::MICRODROID_UNKNOWN_RUNTIME_ERROR)
        );
        assert_eq!(DeathReason::from_failure_reason("KILLED"), None);
        assert_eq!(DeathReason::HANGUP.to_string(), "HANGUP");
        assert_eq!(ErrorCode(9).to_string(), "ErrorCode(9)");
    }
}

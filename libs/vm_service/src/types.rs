//! AIDL types on the wire: `ErrorCode` (as received: any i32), `PayloadState`.
//! `DeathReason` and the ttyS1 death-reason strings are `vm_status`'s, the one crate for them.

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
    fn unknown_error_codes_display_their_value() {
        assert_eq!(ErrorCode(9).to_string(), "ErrorCode(9)");
    }
}

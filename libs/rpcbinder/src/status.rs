//! Transport status codes (`status_t`) and AIDL `binder::Status` exceptions.

use std::fmt;

/// A libbinder transport status (`status_t`), carried in `RpcWireReply.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StatusCode(pub i32);

impl StatusCode {
    /// OK.
    pub const OK: StatusCode = StatusCode(0);
    /// UNKNOWN_ERROR.
    pub const UNKNOWN_ERROR: StatusCode = StatusCode(i32::MIN);
    /// NO_MEMORY.
    pub const NO_MEMORY: StatusCode = StatusCode(-12);
    /// INVALID_OPERATION.
    pub const INVALID_OPERATION: StatusCode = StatusCode(-38);
    /// BAD_VALUE.
    pub const BAD_VALUE: StatusCode = StatusCode(-22);
    /// BAD_TYPE (wrong interface token, stability mismatch).
    pub const BAD_TYPE: StatusCode = StatusCode(i32::MIN + 1);
    /// NAME_NOT_FOUND.
    pub const NAME_NOT_FOUND: StatusCode = StatusCode(-2);
    /// PERMISSION_DENIED.
    pub const PERMISSION_DENIED: StatusCode = StatusCode(-1);
    /// NO_INIT.
    pub const NO_INIT: StatusCode = StatusCode(-19);
    /// ALREADY_EXISTS.
    pub const ALREADY_EXISTS: StatusCode = StatusCode(-17);
    /// DEAD_OBJECT.
    pub const DEAD_OBJECT: StatusCode = StatusCode(-32);
    /// FAILED_TRANSACTION.
    pub const FAILED_TRANSACTION: StatusCode = StatusCode(i32::MIN + 2);
    /// BAD_INDEX.
    pub const BAD_INDEX: StatusCode = StatusCode(-75);
    /// NOT_ENOUGH_DATA.
    pub const NOT_ENOUGH_DATA: StatusCode = StatusCode(-61);
    /// WOULD_BLOCK.
    pub const WOULD_BLOCK: StatusCode = StatusCode(-11);
    /// TIMED_OUT.
    pub const TIMED_OUT: StatusCode = StatusCode(-110);
    /// UNKNOWN_TRANSACTION.
    pub const UNKNOWN_TRANSACTION: StatusCode = StatusCode(-74);
    /// FDS_NOT_ALLOWED.
    pub const FDS_NOT_ALLOWED: StatusCode = StatusCode(i32::MIN + 7);
    /// UNEXPECTED_NULL.
    pub const UNEXPECTED_NULL: StatusCode = StatusCode(i32::MIN + 8);

    /// The libbinder name, when known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            StatusCode::OK => "OK",
            StatusCode::UNKNOWN_ERROR => "UNKNOWN_ERROR",
            StatusCode::NO_MEMORY => "NO_MEMORY",
            StatusCode::INVALID_OPERATION => "INVALID_OPERATION",
            StatusCode::BAD_VALUE => "BAD_VALUE",
            StatusCode::BAD_TYPE => "BAD_TYPE",
            StatusCode::NAME_NOT_FOUND => "NAME_NOT_FOUND",
            StatusCode::PERMISSION_DENIED => "PERMISSION_DENIED",
            StatusCode::NO_INIT => "NO_INIT",
            StatusCode::ALREADY_EXISTS => "ALREADY_EXISTS",
            StatusCode::DEAD_OBJECT => "DEAD_OBJECT",
            StatusCode::FAILED_TRANSACTION => "FAILED_TRANSACTION",
            StatusCode::BAD_INDEX => "BAD_INDEX",
            StatusCode::NOT_ENOUGH_DATA => "NOT_ENOUGH_DATA",
            StatusCode::WOULD_BLOCK => "WOULD_BLOCK",
            StatusCode::TIMED_OUT => "TIMED_OUT",
            StatusCode::UNKNOWN_TRANSACTION => "UNKNOWN_TRANSACTION",
            StatusCode::FDS_NOT_ALLOWED => "FDS_NOT_ALLOWED",
            StatusCode::UNEXPECTED_NULL => "UNEXPECTED_NULL",
            _ => return None,
        })
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "{n} ({})", self.0),
            None => write!(f, "status {}", self.0),
        }
    }
}

/// AIDL exception codes (`binder::Status` `EX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ExceptionCode(pub i32);

impl ExceptionCode {
    /// EX_NONE.
    pub const NONE: ExceptionCode = ExceptionCode(0);
    /// EX_SECURITY.
    pub const SECURITY: ExceptionCode = ExceptionCode(-1);
    /// EX_BAD_PARCELABLE.
    pub const BAD_PARCELABLE: ExceptionCode = ExceptionCode(-2);
    /// EX_ILLEGAL_ARGUMENT.
    pub const ILLEGAL_ARGUMENT: ExceptionCode = ExceptionCode(-3);
    /// EX_NULL_POINTER.
    pub const NULL_POINTER: ExceptionCode = ExceptionCode(-4);
    /// EX_ILLEGAL_STATE.
    pub const ILLEGAL_STATE: ExceptionCode = ExceptionCode(-5);
    /// EX_NETWORK_MAIN_THREAD.
    pub const NETWORK_MAIN_THREAD: ExceptionCode = ExceptionCode(-6);
    /// EX_UNSUPPORTED_OPERATION.
    pub const UNSUPPORTED_OPERATION: ExceptionCode = ExceptionCode(-7);
    /// EX_SERVICE_SPECIFIC (followed by an i32 error code).
    pub const SERVICE_SPECIFIC: ExceptionCode = ExceptionCode(-8);
    /// EX_PARCELABLE (followed by a parcelable blob).
    pub const PARCELABLE: ExceptionCode = ExceptionCode(-9);
    /// EX_HAS_REPLY_HEADER (Java fat header; readers skip it).
    pub const HAS_REPLY_HEADER: ExceptionCode = ExceptionCode(-128);
    /// EX_TRANSACTION_FAILED: not written; becomes the transport status.
    pub const TRANSACTION_FAILED: ExceptionCode = ExceptionCode(-129);

    /// The AIDL name, when known.
    pub fn name(self) -> Option<&'static str> {
        Some(match self {
            ExceptionCode::NONE => "NONE",
            ExceptionCode::SECURITY => "SECURITY",
            ExceptionCode::BAD_PARCELABLE => "BAD_PARCELABLE",
            ExceptionCode::ILLEGAL_ARGUMENT => "ILLEGAL_ARGUMENT",
            ExceptionCode::NULL_POINTER => "NULL_POINTER",
            ExceptionCode::ILLEGAL_STATE => "ILLEGAL_STATE",
            ExceptionCode::NETWORK_MAIN_THREAD => "NETWORK_MAIN_THREAD",
            ExceptionCode::UNSUPPORTED_OPERATION => "UNSUPPORTED_OPERATION",
            ExceptionCode::SERVICE_SPECIFIC => "SERVICE_SPECIFIC",
            ExceptionCode::PARCELABLE => "PARCELABLE",
            ExceptionCode::HAS_REPLY_HEADER => "HAS_REPLY_HEADER",
            ExceptionCode::TRANSACTION_FAILED => "TRANSACTION_FAILED",
            _ => return None,
        })
    }
}

impl fmt::Display for ExceptionCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(n) => write!(f, "EX_{n} ({})", self.0),
            None => write!(f, "exception {}", self.0),
        }
    }
}

/// An AIDL `binder::Status`: the header of every AIDL reply parcel.
///
/// A status whose exception is [`ExceptionCode::TRANSACTION_FAILED`] is never written into a
/// parcel; it becomes the transport status of the reply instead (see
/// [`Status::transport_status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    exception: ExceptionCode,
    message: String,
    /// Service-specific error code, or the transport status for TRANSACTION_FAILED.
    error_code: i32,
}

impl Status {
    /// EX_NONE.
    pub fn ok() -> Self {
        Status {
            exception: ExceptionCode::NONE,
            message: String::new(),
            error_code: 0,
        }
    }

    /// An exception with a message (`Status::fromExceptionCode(ex, msg)`).
    pub fn exception(exception: ExceptionCode, message: impl Into<String>) -> Self {
        Status {
            exception,
            message: message.into(),
            error_code: 0,
        }
    }

    /// EX_SERVICE_SPECIFIC with `code` (`Status::fromServiceSpecificError`).
    pub fn service_specific(code: i32, message: impl Into<String>) -> Self {
        Status {
            exception: ExceptionCode::SERVICE_SPECIFIC,
            message: message.into(),
            error_code: code,
        }
    }

    /// A transport failure: the reply carries `code` as its transport status and no parcel.
    pub fn transport(code: StatusCode) -> Self {
        Status {
            exception: ExceptionCode::TRANSACTION_FAILED,
            message: String::new(),
            error_code: code.0,
        }
    }

    /// Builds a status as read from a parcel (no validation beyond the parcel format).
    pub(crate) fn from_parts(exception: ExceptionCode, message: String, error_code: i32) -> Self {
        Status {
            exception,
            message,
            error_code,
        }
    }

    /// True for EX_NONE.
    pub fn is_ok(&self) -> bool {
        self.exception == ExceptionCode::NONE
    }

    /// The exception code.
    pub fn exception_code(&self) -> ExceptionCode {
        self.exception
    }

    /// The message ("" when absent).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The service-specific error code (0 unless EX_SERVICE_SPECIFIC).
    pub fn service_specific_error(&self) -> i32 {
        if self.exception == ExceptionCode::SERVICE_SPECIFIC {
            self.error_code
        } else {
            0
        }
    }

    /// For a transport failure, the status_t to put in the reply header.
    pub fn transport_status(&self) -> Option<StatusCode> {
        if self.exception == ExceptionCode::TRANSACTION_FAILED {
            Some(StatusCode(self.error_code))
        } else {
            None
        }
    }
}

impl From<StatusCode> for Status {
    fn from(code: StatusCode) -> Self {
        Status::transport(code)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(t) = self.transport_status() {
            return write!(f, "transaction failed: {t}");
        }
        write!(f, "{}", self.exception)?;
        if self.exception == ExceptionCode::SERVICE_SPECIFIC {
            write!(f, " code {}", self.error_code)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for Status {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values and names of libbinder's `status_t` (system/core `utils/Errors.h`: negated Linux
    /// errnos, and offsets from INT32_MIN).
    #[test]
    fn status_codes_are_libbinders() {
        let table = [
            (StatusCode::OK, 0, "OK"),
            (StatusCode::UNKNOWN_ERROR, i32::MIN, "UNKNOWN_ERROR"),
            (StatusCode::NO_MEMORY, -12, "NO_MEMORY"),
            (StatusCode::INVALID_OPERATION, -38, "INVALID_OPERATION"),
            (StatusCode::BAD_VALUE, -22, "BAD_VALUE"),
            (StatusCode::BAD_TYPE, i32::MIN + 1, "BAD_TYPE"),
            (StatusCode::NAME_NOT_FOUND, -2, "NAME_NOT_FOUND"),
            (StatusCode::PERMISSION_DENIED, -1, "PERMISSION_DENIED"),
            (StatusCode::NO_INIT, -19, "NO_INIT"),
            (StatusCode::ALREADY_EXISTS, -17, "ALREADY_EXISTS"),
            (StatusCode::DEAD_OBJECT, -32, "DEAD_OBJECT"),
            (
                StatusCode::FAILED_TRANSACTION,
                i32::MIN + 2,
                "FAILED_TRANSACTION",
            ),
            (StatusCode::BAD_INDEX, -75, "BAD_INDEX"),
            (StatusCode::NOT_ENOUGH_DATA, -61, "NOT_ENOUGH_DATA"),
            (StatusCode::WOULD_BLOCK, -11, "WOULD_BLOCK"),
            (StatusCode::TIMED_OUT, -110, "TIMED_OUT"),
            (StatusCode::UNKNOWN_TRANSACTION, -74, "UNKNOWN_TRANSACTION"),
            (StatusCode::FDS_NOT_ALLOWED, i32::MIN + 7, "FDS_NOT_ALLOWED"),
            (StatusCode::UNEXPECTED_NULL, i32::MIN + 8, "UNEXPECTED_NULL"),
        ];
        for (code, value, name) in table {
            assert_eq!(code.0, value, "{name}");
            assert_eq!(code.name(), Some(name));
            assert_eq!(code.to_string(), format!("{name} ({value})"));
        }
        assert_eq!(StatusCode(-3).name(), None);
        assert_eq!(StatusCode(-3).to_string(), "status -3");
    }

    /// Values and names of AIDL's `EX_*` (frameworks/native `binder/Status.h`).
    #[test]
    fn exception_codes_are_aidls() {
        let table = [
            (ExceptionCode::NONE, 0, "NONE"),
            (ExceptionCode::SECURITY, -1, "SECURITY"),
            (ExceptionCode::BAD_PARCELABLE, -2, "BAD_PARCELABLE"),
            (ExceptionCode::ILLEGAL_ARGUMENT, -3, "ILLEGAL_ARGUMENT"),
            (ExceptionCode::NULL_POINTER, -4, "NULL_POINTER"),
            (ExceptionCode::ILLEGAL_STATE, -5, "ILLEGAL_STATE"),
            (
                ExceptionCode::NETWORK_MAIN_THREAD,
                -6,
                "NETWORK_MAIN_THREAD",
            ),
            (
                ExceptionCode::UNSUPPORTED_OPERATION,
                -7,
                "UNSUPPORTED_OPERATION",
            ),
            (ExceptionCode::SERVICE_SPECIFIC, -8, "SERVICE_SPECIFIC"),
            (ExceptionCode::PARCELABLE, -9, "PARCELABLE"),
            (ExceptionCode::HAS_REPLY_HEADER, -128, "HAS_REPLY_HEADER"),
            (
                ExceptionCode::TRANSACTION_FAILED,
                -129,
                "TRANSACTION_FAILED",
            ),
        ];
        for (code, value, name) in table {
            assert_eq!(code.0, value, "{name}");
            assert_eq!(code.name(), Some(name));
            assert_eq!(code.to_string(), format!("EX_{name} ({value})"));
        }
        assert_eq!(ExceptionCode(-10).name(), None);
        assert_eq!(ExceptionCode(-10).to_string(), "exception -10");
    }

    #[test]
    fn statuses_display_what_they_carry() {
        assert_eq!(Status::ok().to_string(), "EX_NONE (0)");
        assert_eq!(Status::ok().transport_status(), None);
        assert_eq!(
            Status::exception(ExceptionCode::ILLEGAL_STATE, "").to_string(),
            "EX_ILLEGAL_STATE (-5)"
        );
        assert_eq!(
            Status::exception(ExceptionCode::SECURITY, "denied").to_string(),
            "EX_SECURITY (-1): denied"
        );
        assert_eq!(
            Status::service_specific(7, "it failed").to_string(),
            "EX_SERVICE_SPECIFIC (-8) code 7: it failed"
        );
        let t = Status::from(StatusCode::DEAD_OBJECT);
        assert_eq!(t.transport_status(), Some(StatusCode::DEAD_OBJECT));
        assert_eq!(t.to_string(), "transaction failed: DEAD_OBJECT (-32)");
    }
}

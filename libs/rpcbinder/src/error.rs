//! Error types.

use crate::status::{Status, StatusCode};
use thiserror::Error;

/// Errors while reading a parcel (untrusted bytes).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ParcelError {
    /// Fewer bytes left than an item needs.
    #[error("parcel underflow at offset {offset}: need {needed} bytes, {available} left")]
    NotEnoughData {
        /// Read position.
        offset: usize,
        /// Bytes the item needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// A length prefix below -1.
    #[error("invalid length {0}")]
    BadLength(i32),
    /// A String16 whose terminator is not 0.
    #[error("String16 is not NUL-terminated")]
    StringNotTerminated,
    /// A String16 that is not valid UTF-16.
    #[error("String16 is not valid UTF-16")]
    InvalidUtf16,
    /// A null where the type is not nullable.
    #[error("unexpected null")]
    UnexpectedNull,
    /// A strong-binder type word other than null (0) or binder (1).
    #[error("unsupported binder object type {0:#x}")]
    BadBinderType(i32),
    /// v2: a binder whose offset is not in the object table.
    #[error("binder at offset {0} is not listed in the object table")]
    BinderNotInObjectTable(usize),
    /// The interface token differs from the expected descriptor.
    #[error("interface token mismatch: expected {expected:?}, got {actual:?}")]
    InterfaceMismatch {
        /// Descriptor expected.
        expected: String,
        /// Token received (None: null string).
        actual: Option<String>,
    },
    /// A Status header size field out of range.
    #[error("bad status header size {0}")]
    BadStatusHeader(i32),
    /// A parcelable size header out of range.
    #[error("bad parcelable size {0}")]
    BadParcelableSize(i32),
    /// A value that does not fit an enum or fixed-size type.
    #[error("bad value {0}")]
    BadValue(i32),
    /// An object type word other than the one the reader expects (e.g. not an fd).
    #[error("unexpected object type {0:#x}")]
    BadObjectType(i32),
    /// A file descriptor whose offset is not in the object table.
    #[error("fd at offset {0} is not listed in the object table")]
    FdNotInObjectTable(usize),
    /// An fd index with no fd received for it (or one taken twice).
    #[error("no file descriptor with index {0} came with the parcel")]
    BadFdIndex(i32),
    /// A binder or fd read from a parcel that did not come on a session.
    #[error("binder objects and fds can only be read from a parcel received on a session")]
    NoSession,
    /// A binder address the session does not know as one of its own.
    #[error("binder address {0:#018x} is unknown")]
    UnknownBinder(u64),
}

impl ParcelError {
    /// The status_t libbinder would report for this failure.
    pub fn status_code(&self) -> StatusCode {
        match self {
            ParcelError::NotEnoughData { .. } => StatusCode::NOT_ENOUGH_DATA,
            ParcelError::UnexpectedNull => StatusCode::UNEXPECTED_NULL,
            ParcelError::InterfaceMismatch { .. } => StatusCode::BAD_TYPE,
            ParcelError::BadStatusHeader(_) => StatusCode::UNKNOWN_ERROR,
            _ => StatusCode::BAD_VALUE,
        }
    }
}

/// Errors of the RPC binder session layer.
#[derive(Debug, Error)]
pub enum Error {
    /// Socket error (including a timeout set by the caller and EOF inside a command).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The peer closed the connection at a command boundary.
    #[error("connection closed by peer")]
    ConnectionClosed,
    /// The peer started a command and stopped sending before its end, for longer than the
    /// stream's read timeout (a server waits for the next command without limit).
    #[error("the peer stalled in the middle of a command ({received} of {expected} bytes)")]
    Stalled {
        /// Bytes of the header or body received.
        received: usize,
        /// Bytes expected.
        expected: usize,
    },
    /// The peer answered a protocol version we did not offer or cannot speak.
    #[error("unsupported protocol version {0}")]
    UnsupportedVersion(u32),
    /// "cci\0" expected.
    #[error("bad connection init message {0:02x?}")]
    BadConnectionInit([u8; 4]),
    /// A session id size other than 0 or 32.
    #[error("bad session id size {0}")]
    BadSessionIdSize(u16),
    /// A new session asked for the INCOMING option (libbinder: "would leak").
    #[error("new session requested with the INCOMING option")]
    IncomingNewSession,
    /// Attach to a session id the server does not know.
    #[error("unknown session id")]
    UnknownSession,
    /// Attach of more outgoing connections than the server's max threads.
    #[error("too many connections for session")]
    TooManyConnections,
    /// A file-descriptor transport mode we do not support (only NONE).
    #[error("unsupported fd transport mode {0}")]
    UnsupportedFdMode(u8),
    /// A command code other than TRANSACT, REPLY, DEC_STRONG.
    #[error("unknown command {0}")]
    UnknownCommand(u32),
    /// A command body above the per-version limit.
    #[error("command body of {size} bytes exceeds the limit of {max}")]
    BodyTooLarge {
        /// Announced size.
        size: u32,
        /// Limit.
        max: u32,
    },
    /// A command body below its fixed header size.
    #[error("{command} body of {size} bytes is smaller than {min}")]
    BodyTooSmall {
        /// Command name.
        command: &'static str,
        /// Body size.
        size: u32,
        /// Minimum.
        min: u32,
    },
    /// parcelDataSize larger than the rest of the body.
    #[error("parcel data size {parcel} exceeds the {available} bytes left in the body")]
    ParcelSizeExceedsBody {
        /// Announced parcel size.
        parcel: u32,
        /// Bytes left.
        available: u32,
    },
    /// Object table not a multiple of 4 bytes.
    #[error("object table of {0} bytes is not a multiple of 4")]
    ObjectTableMisaligned(u32),
    /// An object offset outside the parcel data.
    #[error("object offset {offset} out of range for {data_size} bytes of parcel data")]
    ObjectOffsetOutOfRange {
        /// Offset.
        offset: u32,
        /// Parcel data size.
        data_size: u32,
    },
    /// Objects (fds or, before v2, binders) in a parcel: fds are not supported (vsock).
    #[error("parcel carries {0} objects, which this transport does not allow")]
    ObjectsNotAllowed(usize),
    /// DEC_STRONG body size not 16.
    #[error("DEC_STRONG body size {0} (must be 16)")]
    DecStrongBodySize(u32),
    /// DEC_STRONG for a node we do not have.
    #[error("DEC_STRONG for unknown address {0:#018x}")]
    DecStrongUnknownAddress(u64),
    /// DEC_STRONG releasing more references than were sent.
    #[error("DEC_STRONG releases {amount} references of {address:#018x}, only {held} were sent")]
    DecStrongUnderflow {
        /// Node.
        address: u64,
        /// Amount released.
        amount: u32,
        /// References outstanding.
        held: u32,
    },
    /// An address with unknown option bits.
    #[error("address {0:#018x} has unknown option bits")]
    BadAddress(u64),
    /// An address that claims to be ours but is not in our node table.
    #[error("address {0:#018x} claims to be local but is unknown")]
    UnknownLocalAddress(u64),
    /// A REPLY arrived while no transaction was pending.
    #[error("unexpected REPLY")]
    UnexpectedReply,
    /// A TRANSACT arrived that this side cannot handle (e.g. a callback into a client with no
    /// local binders).
    #[error("unexpected TRANSACT to {0:#018x}")]
    UnexpectedTransaction(u64),
    /// Oneway transaction out of order.
    #[error("oneway transaction number {got}, expected {expected}")]
    AsyncNumberMismatch {
        /// Expected number.
        expected: u64,
        /// Received number.
        got: u64,
    },
    /// Malformed parcel.
    #[error("parcel: {0}")]
    Parcel(#[from] ParcelError),
    /// The peer answered with a transport error status.
    #[error("transaction failed: {0}")]
    TransactionFailed(StatusCode),
    /// The remote AIDL method returned an exception.
    #[error("remote exception: {0}")]
    Remote(Status),
    /// The root object is null.
    #[error("the peer has no root object")]
    NoRootObject,
    /// The remote object's stability does not allow user transactions.
    #[error("binder stability {0:#x} does not allow system transactions")]
    BadStability(i32),
    /// The remote object answered a different interface descriptor.
    #[error("descriptor mismatch: expected {expected:?}, got {actual:?}")]
    DescriptorMismatch {
        /// Expected.
        expected: String,
        /// Received.
        actual: String,
    },
    /// A parcel being sent is larger than the protocol allows.
    #[error("outgoing parcel of {0} bytes is too large")]
    OutgoingTooLarge(usize),
    /// This session has already been shut down after an error or release.
    #[error("session is shut down")]
    Shutdown,
    /// The number of fds received with a command differs from the fd objects in its table.
    #[error("{objects} fd objects in the parcel but {received} fds received")]
    FdCountMismatch {
        /// Fd objects listed.
        objects: usize,
        /// Fds that came as SCM_RIGHTS.
        received: usize,
    },
    /// A proxy of another session written into a parcel (binders cannot be forwarded here).
    #[error("a binder proxy of another session cannot be sent")]
    ForeignBinder,
    /// The session has no connection on which it may send transactions (the peer offered
    /// no incoming connections).
    #[error("no connection to send on: the peer accepts no calls on this session")]
    NoOutgoingConnection,
}

impl Error {
    /// True when the peer broke the protocol (bad or oversized command, unknown session, a
    /// stall mid-command), as opposed to going away or a local I/O failure: a host counts
    /// these against a guest.
    pub fn is_protocol_violation(&self) -> bool {
        !matches!(self, Error::Io(_) | Error::ConnectionClosed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parcel_errors_map_to_libbinder_status_codes() {
        let cases = [
            (
                ParcelError::NotEnoughData {
                    offset: 0,
                    needed: 4,
                    available: 0,
                },
                StatusCode::NOT_ENOUGH_DATA,
            ),
            (ParcelError::UnexpectedNull, StatusCode::UNEXPECTED_NULL),
            (
                ParcelError::InterfaceMismatch {
                    expected: "a".into(),
                    actual: Some("b".into()),
                },
                StatusCode::BAD_TYPE,
            ),
            (ParcelError::BadStatusHeader(8), StatusCode::UNKNOWN_ERROR),
            (ParcelError::BadLength(-2), StatusCode::BAD_VALUE),
        ];
        for (e, code) in cases {
            assert_eq!(e.status_code(), code, "{e:?}");
        }
    }
}

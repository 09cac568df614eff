//! Android RPC binder (binder over sockets), wire-compatible with AOSP libbinder.
//!
//! Scope: what a Microdroid guest and its host need for `IVirtualMachineService` —
//! session setup with protocol version negotiation (v0 Android 13, v1 Android 14/15 (default),
//! v2 Android 16), command framing (TRANSACT, REPLY, DEC_STRONG), the parcel subset AIDL uses,
//! a single-connection [`RpcClient`] and an [`RpcServer`] serving one root object, both generic
//! over any `Read + Write` stream (Unix sockets on the host, [`vsock::VsockStream`] in the
//! guest). See `docs/formats/rpc-binder.md`.
//!
//! Every parser of peer bytes is bounded (command bodies at most 100 KB, or 600 KiB at v2) and
//! returns an [`Error`]; none panics. Timeouts are the caller's (set them on the socket).

pub mod client;
pub mod conn;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod interface;
pub mod parcel;
pub mod server;
pub mod session;
pub mod status;
pub mod transport;
pub mod vsock;
pub mod wire;

pub use client::{
    ClientConfig, RemoteBinder, Reply, RpcClient, FIRST_CALL_TRANSACTION, INTERFACE_TRANSACTION,
    PING_TRANSACTION,
};
pub use error::{Error, ParcelError};
pub use interface::{CallError, InterfaceClient, SessionOutcome, UnixSocketServer};
pub use parcel::{BinderRef, Parcel, ParcelReader};
pub use server::{Binder, RpcServer, SessionEnd};
pub use session::{Proxy, ReceivedParcel, RpcSession, SessionConfig, SessionServer, SpIBinder};
pub use status::{ExceptionCode, Status, StatusCode};

//! `android.system.virtualmachineservice.IVirtualMachineService`: the host service a
//! Microdroid guest reports to, over RPC binder (see the `rpcbinder` crate).
//!
//! * Guest: [`VirtualMachineServiceClient::connect_vsock`] then `notify_*`.
//! * Host: [`HostService`] + [`ServiceListener::bind`] on `<uds>_<cid>` ([`vsock_uds_path`]),
//!   events on a channel; or implement [`VirtualMachineService`] yourself and serve
//!   [`VirtualMachineServiceBinder`] with [`rpcbinder::RpcServer`].
//!
//! Method order and codes are Android 14/15's (identical for codes 1–4 from Android 13 to 16).

pub mod client;
pub mod fuzzing;
pub mod server;
pub mod types;

pub use client::{ClientError, VirtualMachineServiceClient};
pub use server::{
    attestation_unsupported, secretkeeper_absent, vsock_uds_path, wait_for_event, Certificate,
    HostService, ServiceListener, VirtualMachineService, VirtualMachineServiceBinder, VmEvent,
    VmEventKind,
};
pub use types::{ErrorCode, InvalidTransition, PayloadState, PayloadStateMachine};

/// The interface descriptor (interface token).
pub const DESCRIPTOR: &str = "android.system.virtualmachineservice.IVirtualMachineService";

/// `IVirtualMachineService.VM_TOMBSTONES_SERVICE_PORT`: raw vsock stream for tombstones.
pub const VM_TOMBSTONES_SERVICE_PORT: u32 = 2000;

/// Android 13's fixed binder port (Android 14+ use port = guest CID).
pub const VM_BINDER_SERVICE_PORT_A13: u32 = 5000;

/// Wire transaction codes (`FIRST_CALL_TRANSACTION + declaration index`).
pub mod codes {
    /// notifyPayloadStarted().
    pub const NOTIFY_PAYLOAD_STARTED: u32 = 1;
    /// notifyPayloadReady().
    pub const NOTIFY_PAYLOAD_READY: u32 = 2;
    /// notifyPayloadFinished(int exitCode).
    pub const NOTIFY_PAYLOAD_FINISHED: u32 = 3;
    /// notifyError(ErrorCode errorCode, in String message).
    pub const NOTIFY_ERROR: u32 = 4;
    /// requestAttestation(in byte[] csr, in boolean testMode) -> Certificate[] (A15).
    pub const REQUEST_ATTESTATION: u32 = 5;
    /// getSecretkeeper() -> ISecretkeeper (A15).
    pub const GET_SECRETKEEPER: u32 = 6;
}

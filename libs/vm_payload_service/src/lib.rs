//! `android.system.virtualization.payload.IVmPayloadService`: the interface a Microdroid payload
//! uses to talk to microdroid_manager, over RPC binder (the `rpcbinder` crate) on the Unix socket
//! [`VM_PAYLOAD_SERVICE_SOCKET_PATH`] (`/dev/socket/` + AOSP's `VM_PAYLOAD_SERVICE_SOCKET_NAME` in
//! `IVmPayloadService.aidl`, packages/modules/Virtualization).
//!
//! * Payload: [`vm_payload::notify_payload_ready`], [`vm_payload::apk_contents_path`] (AOSP's
//!   `AVmPayload_*` API), or [`VmPayloadServiceClient`] directly.
//! * microdroid_manager: implement [`VmPayloadService`] and serve it with
//!   [`PayloadServiceListener::bind`] (or [`VmPayloadServiceBinder`] on an
//!   [`rpcbinder::RpcServer`]).
//!
//! microdroid_manager serves `notifyPayloadReady` (forwarded to the host), the instance secret
//! and the DICE chain and CDI of the payload's node; `requestAttestation`, and every secret
//! method in a VM without an instance, answer [`unsupported`] (`EX_UNSUPPORTED_OPERATION`).
//! See `docs/formats/vm-payload-service.md`.

pub mod client;
pub mod server;
pub mod vm_payload;

pub use client::{ClientError, VmPayloadServiceClient};
pub use server::{
    restricted, unsupported, PayloadServiceListener, VmPayloadService, VmPayloadServiceBinder,
    MAX_INSTANCE_SECRET_SIZE,
};
pub use vm_service::Certificate;

/// The interface descriptor (interface token).
pub const DESCRIPTOR: &str = "android.system.virtualization.payload.IVmPayloadService";

/// `IVmPayloadService.VM_PAYLOAD_SERVICE_SOCKET_NAME`: the init socket name.
pub const VM_PAYLOAD_SERVICE_SOCKET_NAME: &str = "vm_payload_service";

/// Where the socket is: Android init's `/dev/socket/<name>`.
pub const VM_PAYLOAD_SERVICE_SOCKET_PATH: &str = "/dev/socket/vm_payload_service";

/// Mode of the socket file, as AOSP's `socket vm_payload_service stream 0666 system system`:
/// the payload (uid 6000, no capabilities) must be able to connect.
pub const VM_PAYLOAD_SERVICE_SOCKET_MODE: u32 = 0o666;

/// `IVmPayloadService.VM_APK_CONTENTS_PATH`: where the main APK is mounted.
pub const VM_APK_CONTENTS_PATH: &str = "/mnt/apk";

/// `IVmPayloadService.ENCRYPTEDSTORE_MOUNTPOINT`: where the encrypted storage is mounted.
pub const ENCRYPTEDSTORE_MOUNTPOINT: &str = "/mnt/encryptedstore";

/// `IVmPayloadService.STATUS_FAILED_TO_PREPARE_CSR_AND_KEY`: the service-specific error code of
/// `requestAttestation` when the key pair and CSR cannot be made.
pub const STATUS_FAILED_TO_PREPARE_CSR_AND_KEY: i32 = 1;

/// Wire transaction codes (`FIRST_CALL_TRANSACTION + declaration index`; the constants and the
/// nested `AttestationResult` parcelable take no index; the interface is unstable, so there are no
/// version/hash meta-methods).
pub mod codes {
    /// notifyPayloadReady().
    pub const NOTIFY_PAYLOAD_READY: u32 = 1;
    /// getVmInstanceSecret(in byte[] identifier, int size) -> byte[].
    pub const GET_VM_INSTANCE_SECRET: u32 = 2;
    /// getDiceAttestationChain() -> byte[].
    pub const GET_DICE_ATTESTATION_CHAIN: u32 = 3;
    /// getDiceAttestationCdi() -> byte[].
    pub const GET_DICE_ATTESTATION_CDI: u32 = 4;
    /// requestAttestation(in byte[] challenge, in boolean testMode) -> AttestationResult.
    pub const REQUEST_ATTESTATION: u32 = 5;
}

/// `IVmPayloadService.AttestationResult` parcelable:
/// `{ byte[] privateKey; Certificate[] certificateChain; }`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AttestationResult {
    /// DER-encoded ECPrivateKey of the attested key.
    pub private_key: Vec<u8>,
    /// The certificate chain, leaf first.
    pub certificate_chain: Vec<Certificate>,
}

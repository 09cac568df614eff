//! The payload's API, after AOSP's `libvm_payload` (`AVmPayload_*`): one process-wide
//! connection to microdroid_manager's service, made on first use.

use std::io;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};

use crate::{
    ClientError, VmPayloadServiceClient, VM_APK_CONTENTS_PATH, VM_PAYLOAD_SERVICE_SOCKET_PATH,
};

/// Errors of the payload API.
#[derive(Debug, thiserror::Error)]
pub enum PayloadApiError {
    /// The service socket could not be reached.
    #[error("cannot connect to {VM_PAYLOAD_SERVICE_SOCKET_PATH}: {0}")]
    Connect(#[source] io::Error),
    /// The session failed or the service refused the call (e.g. a second notifyPayloadReady:
    /// `ClientError::Service` with EX_ILLEGAL_STATE, forwarded from the host).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The connection lock was poisoned by a panic in another thread.
    #[error("payload service connection lock poisoned")]
    Poisoned,
}

impl PayloadApiError {
    /// True when there is no service socket at all: the program is not running as a Microdroid
    /// payload (e.g. run on the host).
    pub fn is_not_in_vm(&self) -> bool {
        matches!(self, PayloadApiError::Connect(e) if e.kind() == io::ErrorKind::NotFound)
    }

    /// True when the service does not offer the call in this VM (EX_UNSUPPORTED_OPERATION):
    /// e.g. instance secrets in a VM that has no instance.
    pub fn is_unsupported(&self) -> bool {
        self.service_status()
            .is_some_and(|s| s.exception_code() == rpcbinder::ExceptionCode::UNSUPPORTED_OPERATION)
    }

    /// The AIDL status the service answered, if it answered with an exception.
    pub fn service_status(&self) -> Option<&rpcbinder::Status> {
        match self {
            PayloadApiError::Client(ClientError::Service(status)) => Some(status),
            _ => None,
        }
    }
}

type Service = Arc<VmPayloadServiceClient<UnixStream>>;

static SERVICE: Mutex<Option<Service>> = Mutex::new(None);

/// The process's connection to the service, connecting on first use (AOSP's
/// `get_vm_payload_service`). Blocking, without timeouts, as AOSP's client.
fn service() -> Result<Service, PayloadApiError> {
    let mut cached = SERVICE.lock().map_err(|_| PayloadApiError::Poisoned)?;
    if let Some(service) = cached.as_ref() {
        return Ok(service.clone());
    }
    let stream =
        UnixStream::connect(VM_PAYLOAD_SERVICE_SOCKET_PATH).map_err(PayloadApiError::Connect)?;
    let service = Arc::new(VmPayloadServiceClient::connect(stream)?);
    *cached = Some(service.clone());
    Ok(service)
}

/// `AVmPayload_notifyPayloadReady`: tells the host, through microdroid_manager, that the payload
/// is ready to serve. Returns once the host has accepted it; a second call is refused by the host
/// with EX_ILLEGAL_STATE (see [`PayloadApiError::service_status`]).
pub fn notify_payload_ready() -> Result<(), PayloadApiError> {
    Ok(service()?.notify_payload_ready()?)
}

/// `AVmPayload_getApkContentsPath`: where the payload's APK is mounted.
pub fn apk_contents_path() -> &'static Path {
    Path::new(VM_APK_CONTENTS_PATH)
}

/// `AVmPayload_getVmInstanceSecret`: `size` (at most 32) bytes of a secret that is the same on
/// every boot of this VM instance with the same signers and debug level, and different for
/// every other instance, identifier or signer.
pub fn vm_instance_secret(identifier: &[u8], size: usize) -> Result<Vec<u8>, PayloadApiError> {
    let size = i32::try_from(size).unwrap_or(i32::MAX);
    Ok(service()?.get_vm_instance_secret(identifier, size)?)
}

/// `AVmPayload_getDiceAttestationChain`: the VM's DICE chain, CBOR, ending with the payload's
/// own certificate.
pub fn dice_attestation_chain() -> Result<Vec<u8>, PayloadApiError> {
    Ok(service()?.get_dice_attestation_chain()?)
}

/// `AVmPayload_getDiceAttestationCdi`: the payload node's CDI_Attest.
pub fn dice_attestation_cdi() -> Result<Vec<u8>, PayloadApiError> {
    Ok(service()?.get_dice_attestation_cdi()?)
}

/// `AVmPayload_requestAttestation`: microdroid_manager's answer (EX_UNSUPPORTED_OPERATION on
/// this host, which has no RKP VM: see [`PayloadApiError::is_unsupported`]).
pub fn request_attestation(
    challenge: &[u8],
    test_mode: bool,
) -> Result<crate::AttestationResult, PayloadApiError> {
    Ok(service()?.request_attestation(challenge, test_mode)?)
}

/// `AVmPayload_getEncryptedStoragePath`: where the VM's encrypted storage is mounted, or
/// `None` when the VM has none (AOSP checks that the mount point exists).
pub fn encrypted_storage_path() -> Option<&'static Path> {
    let path = Path::new(crate::ENCRYPTEDSTORE_MOUNTPOINT);
    path.is_dir().then_some(path)
}

/// The lowest port a payload may serve on (AOSP: ports below are privileged).
pub const MIN_VSOCK_PORT: u32 = 1024;

/// Errors of [`run_vsock_rpc_server`].
#[derive(Debug, thiserror::Error)]
pub enum VsockServerError {
    #[error("vsock port {0} is privileged: a payload serves on ports >= {MIN_VSOCK_PORT}")]
    PrivilegedPort(u32),
    #[error("cannot listen on vsock port {port}: {source}")]
    Bind {
        port: u32,
        #[source]
        source: io::Error,
    },
    #[error("accepting a vsock connection: {0}")]
    Accept(#[source] io::Error),
}

/// `AVmPayload_runVsockRpcServer`: serves `service` as the root object of an RPC binder server
/// on vsock `port` of this VM, to the host only (connections from any other CID are closed at
/// once), a thread per connection. Calls `on_ready` once the port listens (AOSP's usual
/// pattern: tell the host with [`notify_payload_ready`]); then serves until an error.
pub fn run_vsock_rpc_server(
    service: std::sync::Arc<dyn rpcbinder::Binder>,
    port: u32,
    on_ready: impl FnOnce(),
) -> Result<std::convert::Infallible, VsockServerError> {
    use rpcbinder::vsock::{VsockListener, VMADDR_CID_ANY, VMADDR_CID_HOST};
    if port < MIN_VSOCK_PORT {
        return Err(VsockServerError::PrivilegedPort(port));
    }
    let listener = VsockListener::bind(VMADDR_CID_ANY, port)
        .map_err(|source| VsockServerError::Bind { port, source })?;
    let server = std::sync::Arc::new(rpcbinder::RpcServer::new(service));
    on_ready();
    loop {
        let (stream, peer) = listener.accept().map_err(VsockServerError::Accept)?;
        if peer != VMADDR_CID_HOST {
            // AOSP's connection filter: only the host.
            drop(stream);
            continue;
        }
        let server = server.clone();
        std::thread::spawn(move || {
            let _ = server.serve_connection(stream);
        });
    }
}

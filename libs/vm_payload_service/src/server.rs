//! microdroid_manager's side: the `IVmPayloadService` server trait, its binder adapter (the
//! generated "Bn" stub), and a Unix-socket listener.

use std::io;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rpcbinder::{
    Binder, ExceptionCode, Parcel, ParcelReader, RpcServer, SessionOutcome, Status, StatusCode,
    UnixSocketServer,
};

use crate::{codes, AttestationResult, DESCRIPTOR};

/// `getVmInstanceSecret` sizes outside `0..=MAX_INSTANCE_SECRET_SIZE` are refused with
/// `EX_ILLEGAL_ARGUMENT`, as AOSP does.
pub const MAX_INSTANCE_SECRET_SIZE: i32 = 32;

/// The status of a method this VM cannot serve (no instance, hence no DICE node or secrets; no
/// remote attestation service): `EX_UNSUPPORTED_OPERATION`, the code AOSP uses for a feature
/// the device lacks (virtualizationservice's `requestAttestation` without a remotely
/// provisioned component).
pub fn unsupported(method: &str) -> Status {
    Status::exception(
        ExceptionCode::UNSUPPORTED_OPERATION,
        format!("{method} is not supported in this VM"),
    )
}

/// AOSP's answer to a restricted method (the DICE chain and CDI) in a VM whose payload was not
/// started from a config file: `EX_SECURITY`.
pub fn restricted(method: &str) -> Status {
    Status::exception(
        ExceptionCode::SECURITY,
        format!("Use of restricted APIs is not allowed ({method})"),
    )
}

/// `IVmPayloadService` as microdroid_manager implements it (wire codes 1–5). Return
/// `Err(status)` for AIDL exceptions; a status built with [`Status::transport`] becomes a
/// transport error instead. Only `notify_payload_ready` must be implemented; the others default to
/// AOSP's argument checks followed by [`unsupported`].
pub trait VmPayloadService: Send + Sync {
    /// Code 1: the payload is ready to serve; forwarded to the host.
    fn notify_payload_ready(&self) -> Result<(), Status>;

    /// Code 2. Default: `EX_ILLEGAL_ARGUMENT` for a size outside 0..=32 (checked first, as
    /// AOSP), otherwise [`unsupported`].
    fn get_vm_instance_secret(&self, _identifier: &[u8], size: i32) -> Result<Vec<u8>, Status> {
        if !(0..=MAX_INSTANCE_SECRET_SIZE).contains(&size) {
            return Err(Status::exception(
                ExceptionCode::ILLEGAL_ARGUMENT,
                format!("size {size} not in range (0..=32)"),
            ));
        }
        Err(unsupported("getVmInstanceSecret"))
    }

    /// Code 3. Default: [`unsupported`].
    fn get_dice_attestation_chain(&self) -> Result<Vec<u8>, Status> {
        Err(unsupported("getDiceAttestationChain"))
    }

    /// Code 4. Default: [`unsupported`].
    fn get_dice_attestation_cdi(&self) -> Result<Vec<u8>, Status> {
        Err(unsupported("getDiceAttestationCdi"))
    }

    /// Code 5. Default: [`unsupported`].
    fn request_attestation(
        &self,
        _challenge: &[u8],
        _test_mode: bool,
    ) -> Result<AttestationResult, Status> {
        Err(unsupported("requestAttestation"))
    }
}

impl<T: VmPayloadService + ?Sized> VmPayloadService for Arc<T> {
    fn notify_payload_ready(&self) -> Result<(), Status> {
        (**self).notify_payload_ready()
    }
    fn get_vm_instance_secret(&self, identifier: &[u8], size: i32) -> Result<Vec<u8>, Status> {
        (**self).get_vm_instance_secret(identifier, size)
    }
    fn get_dice_attestation_chain(&self) -> Result<Vec<u8>, Status> {
        (**self).get_dice_attestation_chain()
    }
    fn get_dice_attestation_cdi(&self) -> Result<Vec<u8>, Status> {
        (**self).get_dice_attestation_cdi()
    }
    fn request_attestation(
        &self,
        challenge: &[u8],
        test_mode: bool,
    ) -> Result<AttestationResult, Status> {
        (**self).request_attestation(challenge, test_mode)
    }
}

/// Adapts a [`VmPayloadService`] to an RPC binder root object (the generated "Bn" stub).
pub struct VmPayloadServiceBinder<T: VmPayloadService>(pub T);

/// Writes an AIDL result: `Status` then, on success, the return value. A transport status
/// becomes the reply's transport status (nothing written), as the Rust AIDL backend does.
fn write_result<R>(
    reply: &mut Parcel,
    result: Result<R, Status>,
    write_value: impl FnOnce(&mut Parcel, R),
) -> Result<(), StatusCode> {
    match result {
        Ok(value) => {
            reply.write_status(&Status::ok());
            write_value(reply, value);
            Ok(())
        }
        Err(status) => match status.transport_status() {
            Some(code) => Err(code),
            None => {
                reply.write_status(&status);
                Ok(())
            }
        },
    }
}

fn read_non_null_bytes(data: &mut ParcelReader<'_>) -> Result<Vec<u8>, StatusCode> {
    data.read_byte_array()
        .map_err(|e| e.status_code())?
        .ok_or(StatusCode::UNEXPECTED_NULL)
}

impl<T: VmPayloadService> Binder for VmPayloadServiceBinder<T> {
    fn descriptor(&self) -> &str {
        DESCRIPTOR
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        let svc = &self.0;
        let write_bytes = |p: &mut Parcel, b: Vec<u8>| p.write_byte_array(Some(&b));
        match code {
            codes::NOTIFY_PAYLOAD_READY => {
                write_result(reply, svc.notify_payload_ready(), |_, ()| {})
            }
            codes::GET_VM_INSTANCE_SECRET => {
                let identifier = read_non_null_bytes(data)?;
                let size = data.read_i32().map_err(|e| e.status_code())?;
                write_result(
                    reply,
                    svc.get_vm_instance_secret(&identifier, size),
                    write_bytes,
                )
            }
            codes::GET_DICE_ATTESTATION_CHAIN => {
                write_result(reply, svc.get_dice_attestation_chain(), write_bytes)
            }
            codes::GET_DICE_ATTESTATION_CDI => {
                write_result(reply, svc.get_dice_attestation_cdi(), write_bytes)
            }
            codes::REQUEST_ATTESTATION => {
                let challenge = read_non_null_bytes(data)?;
                let test_mode = data.read_bool().map_err(|e| e.status_code())?;
                let result = svc.request_attestation(&challenge, test_mode);
                if let Ok(r) = &result {
                    // Checked before anything is written: a chain too long for the wire.
                    i32::try_from(r.certificate_chain.len()).map_err(|_| StatusCode::NO_MEMORY)?;
                }
                write_result(reply, result, write_attestation_result)
            }
            _ => Err(StatusCode::UNKNOWN_TRANSACTION),
        }
    }
}

fn write_attestation_result(p: &mut Parcel, r: AttestationResult) {
    p.write_parcelable(|p| {
        p.write_byte_array(Some(&r.private_key));
        p.write_i32(i32::try_from(r.certificate_chain.len()).unwrap_or(i32::MAX));
        for c in &r.certificate_chain {
            p.write_parcelable(|p| p.write_byte_array(Some(&c.encoded_certificate)));
        }
    });
}

/// Serves a [`VmPayloadService`] on a Unix socket, one thread per connection, until
/// [`PayloadServiceListener::stop`] or drop.
#[derive(Debug)]
pub struct PayloadServiceListener {
    server: UnixSocketServer,
}

impl PayloadServiceListener {
    /// Binds `path` (removing a stale socket file first), sets its mode to `mode` (e.g.
    /// [`crate::VM_PAYLOAD_SERVICE_SOCKET_MODE`]) and starts serving `service` on a background
    /// thread. The socket accepts connections as soon as this returns.
    pub fn bind(path: &Path, mode: u32, service: Arc<dyn VmPayloadService>) -> io::Result<Self> {
        let server = UnixSocketServer::bind(path, Self::rpc_server(service), Self::on_session_end)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        Ok(PayloadServiceListener { server })
    }

    /// Serves on an already bound listener whose path is `path` (used to wake it on stop).
    pub fn serve(
        listener: UnixListener,
        path: PathBuf,
        service: Arc<dyn VmPayloadService>,
    ) -> Self {
        PayloadServiceListener {
            server: UnixSocketServer::serve(
                listener,
                path,
                Self::rpc_server(service),
                Self::on_session_end,
            ),
        }
    }

    fn rpc_server(service: Arc<dyn VmPayloadService>) -> RpcServer {
        RpcServer::new(Arc::new(VmPayloadServiceBinder(service)))
    }

    /// A payload session's end (or its protocol error) concerns only that payload connection:
    /// nothing to report.
    fn on_session_end(_outcome: SessionOutcome) {}

    /// The socket path.
    pub fn path(&self) -> &Path {
        self.server.path()
    }

    /// Stops accepting and removes the socket file. Sessions already running end when their
    /// peer goes away.
    pub fn stop(&mut self) {
        self.server.stop();
    }
}

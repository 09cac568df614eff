//! Guest side: a typed `IVirtualMachineService` client (the generated "Bp" proxy).

use std::io::{Read, Write};
use std::time::Duration;

use rpcbinder::vsock::{get_local_cid, VsockStream, VMADDR_CID_HOST};
use rpcbinder::{CallError, ClientConfig, InterfaceClient, Parcel, Reply, Status};

use crate::server::Certificate;
use crate::types::ErrorCode;
use crate::{codes, DESCRIPTOR};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Could not read this VM's CID from `/dev/vsock`.
    #[error("cannot determine the local CID: {0}")]
    LocalCid(#[source] std::io::Error),
    /// Could not connect the vsock stream.
    #[error("cannot connect to vsock {cid}:{port}: {source}")]
    Connect {
        /// Host CID.
        cid: u32,
        /// Port.
        port: u32,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Session or transport failure (including transport error statuses).
    #[error(transparent)]
    Rpc(#[from] rpcbinder::Error),
    /// The service answered with an AIDL exception (e.g. EX_ILLEGAL_STATE).
    #[error("service error: {0}")]
    Service(Status),
    /// The client's lock was poisoned by a panic in another thread.
    #[error("client lock poisoned")]
    Poisoned,
}

impl From<rpcbinder::ParcelError> for ClientError {
    fn from(e: rpcbinder::ParcelError) -> Self {
        ClientError::Rpc(rpcbinder::Error::Parcel(e))
    }
}

impl From<CallError> for ClientError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Rpc(e) => ClientError::Rpc(e),
            CallError::Service(status) => ClientError::Service(status),
            CallError::Poisoned => ClientError::Poisoned,
        }
    }
}

/// A connected `IVirtualMachineService` proxy. Thread-safe: calls are serialized on the one
/// connection. Dropping it releases the root reference (DEC_STRONG), as libbinder does.
pub struct VirtualMachineServiceClient<S: Read + Write> {
    proxy: InterfaceClient<S>,
}

impl<S: Read + Write> std::fmt::Debug for VirtualMachineServiceClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VirtualMachineServiceClient")
            .finish_non_exhaustive()
    }
}

impl VirtualMachineServiceClient<VsockStream> {
    /// What microdroid_manager does on Android 14/15: connect to the host (CID 2) on
    /// port = this VM's CID, protocol v1. `timeout` bounds the connect and every later read
    /// and write (None: block).
    pub fn connect_vsock(timeout: Option<Duration>) -> Result<Self, ClientError> {
        let port = get_local_cid().map_err(ClientError::LocalCid)?;
        Self::connect_vsock_port(VMADDR_CID_HOST, port, timeout)
    }

    /// Connects to an explicit vsock address (e.g. port 5000 for Android 13 hosts).
    pub fn connect_vsock_port(
        cid: u32,
        port: u32,
        timeout: Option<Duration>,
    ) -> Result<Self, ClientError> {
        let s = VsockStream::connect(cid, port, timeout)
            .map_err(|source| ClientError::Connect { cid, port, source })?;
        let set = s
            .set_read_timeout(timeout)
            .and_then(|()| s.set_write_timeout(timeout));
        set.map_err(|source| ClientError::Connect { cid, port, source })?;
        Self::connect(s)
    }
}

impl<S: Read + Write> VirtualMachineServiceClient<S> {
    /// Runs the session setup on `stream` as libbinder + NDK do: handshake (v1),
    /// GET_MAX_THREADS, GET_SESSION_ID, GET_ROOT, then INTERFACE_TRANSACTION, checking the
    /// descriptor.
    pub fn connect(stream: S) -> Result<Self, ClientError> {
        Self::connect_with(stream, ClientConfig::default())
    }

    /// As [`Self::connect`] with an explicit protocol configuration.
    pub fn connect_with(stream: S, config: ClientConfig) -> Result<Self, ClientError> {
        Ok(VirtualMachineServiceClient {
            proxy: InterfaceClient::connect(stream, config, DESCRIPTOR)?,
        })
    }

    fn call(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<Reply, ClientError> {
        Ok(self.proxy.call(code, args)?)
    }

    fn call_void(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<(), ClientError> {
        Ok(self.proxy.call_void(code, args)?)
    }

    /// `notifyPayloadStarted()` (code 1).
    pub fn notify_payload_started(&self) -> Result<(), ClientError> {
        self.call_void(codes::NOTIFY_PAYLOAD_STARTED, |_| {})
    }

    /// `notifyPayloadReady()` (code 2).
    pub fn notify_payload_ready(&self) -> Result<(), ClientError> {
        self.call_void(codes::NOTIFY_PAYLOAD_READY, |_| {})
    }

    /// `notifyPayloadFinished(int exitCode)` (code 3).
    pub fn notify_payload_finished(&self, exit_code: i32) -> Result<(), ClientError> {
        self.call_void(codes::NOTIFY_PAYLOAD_FINISHED, |p| p.write_i32(exit_code))
    }

    /// `notifyError(ErrorCode, String)` (code 4).
    pub fn notify_error(&self, code: ErrorCode, message: &str) -> Result<(), ClientError> {
        self.call_void(codes::NOTIFY_ERROR, |p| {
            p.write_i32(code.0);
            p.write_str(message);
        })
    }

    /// `requestAttestation(byte[] csr, boolean testMode) -> Certificate[]` (code 5).
    pub fn request_attestation(
        &self,
        csr: &[u8],
        test_mode: bool,
    ) -> Result<Vec<Certificate>, ClientError> {
        let reply = self.call(codes::REQUEST_ATTESTATION, |p| {
            p.write_byte_array(Some(csr));
            p.write_bool(test_mode);
        })?;
        let mut r = reply.reader();
        let _status = r.read_status()?;
        let n = r.read_i32()?;
        let n = usize::try_from(n).map_err(|_| rpcbinder::ParcelError::BadLength(n))?;
        // Each element takes at least 8 bytes: bound the allocation by what is there.
        if n > r.remaining() / 8 {
            return Err(
                rpcbinder::ParcelError::BadLength(i32::try_from(n).unwrap_or(i32::MAX)).into(),
            );
        }
        let mut certs = Vec::with_capacity(n);
        for _ in 0..n {
            let der = r.read_parcelable(|r| r.read_byte_array())?;
            certs.push(Certificate {
                encoded_certificate: der.unwrap_or_default(),
            });
        }
        Ok(certs)
    }

    /// Releases the root reference (DEC_STRONG) and ends the session (dropping does it too).
    /// Calls after it fail with a shutdown error. Takes `&self` so that a proxy shared between
    /// threads (an `Arc`) can be closed while other holders let go of it in their own time.
    pub fn close(&self) -> Result<(), ClientError> {
        Ok(self.proxy.close()?)
    }
}

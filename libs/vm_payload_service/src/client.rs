//! The payload's side: a typed `IVmPayloadService` client (the generated "Bp" proxy).

use std::io::{Read, Write};

use rpcbinder::{
    CallError, ClientConfig, InterfaceClient, Parcel, ParcelError, ParcelReader, Reply, Status,
};

use crate::{codes, AttestationResult, Certificate, DESCRIPTOR};

/// Client errors.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Session or transport failure (including transport error statuses).
    #[error(transparent)]
    Rpc(#[from] rpcbinder::Error),
    /// The service answered with an AIDL exception (e.g. EX_ILLEGAL_STATE forwarded from the
    /// host, EX_UNSUPPORTED_OPERATION).
    #[error("service error: {0}")]
    Service(Status),
    /// The client's lock was poisoned by a panic in another thread.
    #[error("client lock poisoned")]
    Poisoned,
}

impl From<ParcelError> for ClientError {
    fn from(e: ParcelError) -> Self {
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

/// A connected `IVmPayloadService` proxy. Thread-safe: calls are serialized on the one
/// connection. Dropping it releases the root reference (DEC_STRONG), as libbinder does.
pub struct VmPayloadServiceClient<S: Read + Write> {
    proxy: InterfaceClient<S>,
}

impl<S: Read + Write> std::fmt::Debug for VmPayloadServiceClient<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VmPayloadServiceClient")
            .finish_non_exhaustive()
    }
}

impl<S: Read + Write> VmPayloadServiceClient<S> {
    /// Runs the session setup on `stream` as libbinder + the Rust backend do: handshake (v1),
    /// GET_MAX_THREADS, GET_SESSION_ID, GET_ROOT, then INTERFACE_TRANSACTION, checking the
    /// descriptor.
    pub fn connect(stream: S) -> Result<Self, ClientError> {
        Self::connect_with(stream, ClientConfig::default())
    }

    /// As [`Self::connect`] with an explicit protocol configuration.
    pub fn connect_with(stream: S, config: ClientConfig) -> Result<Self, ClientError> {
        Ok(VmPayloadServiceClient {
            proxy: InterfaceClient::connect(stream, config, DESCRIPTOR)?,
        })
    }

    /// Sends one call; returns the reply when its status is EX_NONE, positioned by the caller
    /// after the status.
    fn call(&self, code: u32, args: impl FnOnce(&mut Parcel)) -> Result<Reply, ClientError> {
        Ok(self.proxy.call(code, args)?)
    }

    /// Reads a non-null `byte[]` result after the status.
    fn call_bytes(
        &self,
        code: u32,
        args: impl FnOnce(&mut Parcel),
    ) -> Result<Vec<u8>, ClientError> {
        let reply = self.call(code, args)?;
        let mut r = reply.reader();
        r.read_status()?;
        Ok(r.read_byte_array()?.ok_or(ParcelError::UnexpectedNull)?)
    }

    /// `notifyPayloadReady()` (code 1).
    pub fn notify_payload_ready(&self) -> Result<(), ClientError> {
        self.call(codes::NOTIFY_PAYLOAD_READY, |_| {}).map(|_| ())
    }

    /// `getVmInstanceSecret(byte[] identifier, int size) -> byte[]` (code 2).
    pub fn get_vm_instance_secret(
        &self,
        identifier: &[u8],
        size: i32,
    ) -> Result<Vec<u8>, ClientError> {
        self.call_bytes(codes::GET_VM_INSTANCE_SECRET, |p| {
            p.write_byte_array(Some(identifier));
            p.write_i32(size);
        })
    }

    /// `getDiceAttestationChain() -> byte[]` (code 3).
    pub fn get_dice_attestation_chain(&self) -> Result<Vec<u8>, ClientError> {
        self.call_bytes(codes::GET_DICE_ATTESTATION_CHAIN, |_| {})
    }

    /// `getDiceAttestationCdi() -> byte[]` (code 4).
    pub fn get_dice_attestation_cdi(&self) -> Result<Vec<u8>, ClientError> {
        self.call_bytes(codes::GET_DICE_ATTESTATION_CDI, |_| {})
    }

    /// `requestAttestation(byte[] challenge, boolean testMode) -> AttestationResult` (code 5).
    pub fn request_attestation(
        &self,
        challenge: &[u8],
        test_mode: bool,
    ) -> Result<AttestationResult, ClientError> {
        let reply = self.call(codes::REQUEST_ATTESTATION, |p| {
            p.write_byte_array(Some(challenge));
            p.write_bool(test_mode);
        })?;
        let mut r = reply.reader();
        r.read_status()?;
        Ok(r.read_parcelable(read_attestation_result)?)
    }

    /// Releases the root reference (DEC_STRONG) and ends the session.
    /// Calls after it fail with a shutdown error. Takes `&self` so that a proxy shared between
    /// threads (an `Arc`) can be closed while other holders let go of it in their own time.
    pub fn close(&self) -> Result<(), ClientError> {
        Ok(self.proxy.close()?)
    }
}

fn read_attestation_result(r: &mut ParcelReader<'_>) -> Result<AttestationResult, ParcelError> {
    let private_key = r.read_byte_array()?.ok_or(ParcelError::UnexpectedNull)?;
    let n = r.read_i32()?;
    let n = usize::try_from(n).map_err(|_| ParcelError::BadLength(n))?;
    // Each element takes at least 8 bytes: bound the allocation by what is there.
    if n > r.remaining() / 8 {
        return Err(ParcelError::BadLength(i32::try_from(n).unwrap_or(i32::MAX)));
    }
    let mut certificate_chain = Vec::with_capacity(n);
    for _ in 0..n {
        let der = r.read_parcelable(|r| r.read_byte_array())?;
        certificate_chain.push(Certificate {
            encoded_certificate: der.ok_or(ParcelError::UnexpectedNull)?,
        });
    }
    Ok(AttestationResult {
        private_key,
        certificate_chain,
    })
}

//! `libvm_payload.so`: AOSP's payload C ABI (`include/vm_payload.h`), with AOSP's names,
//! signatures and semantics. Payloads (an `AVmPayload_main` library loaded by
//! `microdroid_launcher`, or any program in the VM) link it; it talks to microdroid_manager's
//! `IVmPayloadService` on `/dev/socket/vm_payload_service` and serves a payload's binder on
//! vsock for `AVmPayload_runVsockRpcServer`.
//!
//! As in AOSP, a call that cannot do what it promises (microdroid_manager unreachable, a secret
//! larger than 32 bytes, a restricted call in a VM that may not make it) prints why on stderr
//! and aborts the payload: the VM then reports how the payload ended.

#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void};
use std::sync::Arc;

use ndk_abi::{AIBinder, AParcel, BinderStatus, ParcelOps, STATUS_OK, STATUS_UNKNOWN_TRANSACTION};
use rpcbinder::{Binder, ExceptionCode, Parcel, ParcelReader, Status, StatusCode};
use vm_payload_service::vm_payload;

/// `AVmAttestationStatus` values.
pub const ATTESTATION_OK: i32 = 0;
pub const ATTESTATION_ERROR_INVALID_CHALLENGE: i32 = -10001;
pub const ATTESTATION_ERROR_ATTESTATION_FAILED: i32 = -10002;
pub const ATTESTATION_ERROR_UNSUPPORTED: i32 = -10003;
/// The largest challenge `requestAttestation` takes.
const MAX_CHALLENGE_SIZE: usize = 64;

fn abort_with(what: &str, err: impl std::fmt::Display) -> ! {
    eprintln!("vm_payload: {what}: {err}");
    std::process::abort()
}

/// `AVmPayload_notifyPayloadReady`.
#[no_mangle]
pub extern "C" fn AVmPayload_notifyPayloadReady() {
    if let Err(e) = vm_payload::notify_payload_ready() {
        abort_with("notifyPayloadReady", e);
    }
}

/// A payload's `AIBinder` as this library serves it: transactions go to its class's
/// `onTransact` with parcels made here.
struct NdkBinder {
    binder: *mut AIBinder,
    descriptor: String,
}

// SAFETY: an NDK binder object is used from any binder thread; its class's callbacks must be
// thread-safe (the NDK's contract), and the pointer stays valid: the server holds a strong
// reference for the rest of the process.
unsafe impl Send for NdkBinder {}
// SAFETY: as Send.
unsafe impl Sync for NdkBinder {}

/// The reader or the writer behind an `AParcel` made here, with the bytes last read.
struct Ctx<'a, 'b> {
    reader: Option<&'a mut ParcelReader<'b>>,
    writer: Option<&'a mut Parcel>,
    scratch: Vec<u8>,
}

unsafe fn ctx<'x>(c: *mut c_void) -> &'x mut Ctx<'x, 'x> {
    // SAFETY: every AParcel made here points at a live Ctx for the duration of onTransact.
    unsafe { &mut *c.cast::<Ctx<'x, 'x>>() }
}

/// Reads one value with the maker's reader into `out`.
unsafe fn read_value<T>(
    c: *mut c_void,
    out: *mut T,
    read: fn(&mut ParcelReader<'_>) -> Result<T, rpcbinder::ParcelError>,
) -> BinderStatus {
    // SAFETY: see ctx; `out` checked non-null by libbinder_ndk.
    let ctx = unsafe { ctx(c) };
    match ctx.reader.as_mut().map(|r| read(r)) {
        Some(Ok(v)) => {
            // SAFETY: non-null, the caller's.
            unsafe { *out = v };
            STATUS_OK
        }
        Some(Err(e)) => e.status_code().0,
        None => ndk_abi::STATUS_INVALID_OPERATION,
    }
}

unsafe extern "C" fn op_read_i32(c: *mut c_void, out: *mut i32) -> BinderStatus {
    // SAFETY: see read_value.
    unsafe { read_value(c, out, |r| r.read_i32()) }
}

unsafe extern "C" fn op_read_i64(c: *mut c_void, out: *mut i64) -> BinderStatus {
    // SAFETY: see read_value.
    unsafe { read_value(c, out, |r| r.read_i64()) }
}

/// Reads a string or byte array with the maker's reader and hands out its bytes (kept in the
/// context's scratch buffer until the next read); `*len` -1 for null.
unsafe fn read_blob(
    c: *mut c_void,
    data: *mut *const u8,
    len: *mut i32,
    read: fn(&mut ParcelReader<'_>) -> Result<Option<Vec<u8>>, rpcbinder::ParcelError>,
) -> BinderStatus {
    // SAFETY: see ctx.
    let ctx = unsafe { ctx(c) };
    let Some(reader) = ctx.reader.as_mut() else {
        return ndk_abi::STATUS_INVALID_OPERATION;
    };
    let bytes = match read(reader) {
        Ok(b) => b,
        Err(e) => return e.status_code().0,
    };
    match bytes {
        None => {
            // SAFETY: the caller's locals (libbinder_ndk).
            unsafe {
                *data = std::ptr::null();
                *len = -1;
            }
        }
        Some(b) => {
            ctx.scratch = b;
            // SAFETY: as above; the scratch buffer lives until the next read.
            unsafe {
                *data = ctx.scratch.as_ptr();
                *len = i32::try_from(ctx.scratch.len()).unwrap_or(i32::MAX);
            }
        }
    }
    STATUS_OK
}

unsafe extern "C" fn op_read_string(
    c: *mut c_void,
    data: *mut *const u8,
    len: *mut i32,
) -> BinderStatus {
    // SAFETY: see read_blob.
    unsafe {
        read_blob(c, data, len, |r| {
            Ok(r.read_string16()?.map(String::into_bytes))
        })
    }
}

unsafe extern "C" fn op_read_bytes(
    c: *mut c_void,
    data: *mut *const u8,
    len: *mut i32,
) -> BinderStatus {
    // SAFETY: see read_blob.
    unsafe { read_blob(c, data, len, |r| r.read_byte_array()) }
}

fn with_writer(c: *mut c_void, f: impl FnOnce(&mut Parcel)) -> BinderStatus {
    // SAFETY: as op_read_i32.
    let ctx = unsafe { ctx(c) };
    match ctx.writer.as_mut() {
        Some(w) => {
            f(w);
            STATUS_OK
        }
        None => ndk_abi::STATUS_INVALID_OPERATION,
    }
}

unsafe extern "C" fn op_write_i32(c: *mut c_void, v: i32) -> BinderStatus {
    with_writer(c, |w| w.write_i32(v))
}

unsafe extern "C" fn op_write_i64(c: *mut c_void, v: i64) -> BinderStatus {
    with_writer(c, |w| w.write_i64(v))
}

/// Bytes the C caller passed: `len` bytes at `data`, or `None` for -1.
unsafe fn c_bytes<'x>(data: *const u8, len: i32) -> Option<&'x [u8]> {
    let len = usize::try_from(len).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    // SAFETY: libbinder_ndk checked `data` non-null for len > 0; the caller's contract says
    // it has `len` bytes.
    Some(unsafe { std::slice::from_raw_parts(data, len) })
}

unsafe extern "C" fn op_write_string(c: *mut c_void, data: *const u8, len: i32) -> BinderStatus {
    // SAFETY: see c_bytes.
    let bytes = unsafe { c_bytes(data, len) };
    let text = match bytes.map(std::str::from_utf8) {
        Some(Err(_)) => return ndk_abi::STATUS_BAD_VALUE,
        Some(Ok(s)) => Some(s),
        None => None,
    };
    with_writer(c, |w| w.write_string16(text))
}

unsafe extern "C" fn op_write_bytes(c: *mut c_void, data: *const u8, len: i32) -> BinderStatus {
    // SAFETY: see c_bytes.
    let bytes = unsafe { c_bytes(data, len) };
    with_writer(c, |w| w.write_byte_array(bytes))
}

unsafe extern "C" fn op_write_status(
    c: *mut c_void,
    exception: i32,
    message: *const u8,
    message_len: i32,
    service_specific: i32,
) -> BinderStatus {
    // SAFETY: see c_bytes.
    let message = unsafe { c_bytes(message, message_len) }
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    let status = if exception == 0 {
        Status::ok()
    } else if exception == ExceptionCode::SERVICE_SPECIFIC.0 {
        Status::service_specific(service_specific, message)
    } else {
        Status::exception(ExceptionCode(exception), message)
    };
    with_writer(c, |w| w.write_status(&status))
}

static OPS: ParcelOps = ParcelOps {
    read_i32: op_read_i32,
    read_i64: op_read_i64,
    read_string: op_read_string,
    read_bytes: op_read_bytes,
    write_i32: op_write_i32,
    write_i64: op_write_i64,
    write_string: op_write_string,
    write_bytes: op_write_bytes,
    write_status: op_write_status,
};

impl Binder for NdkBinder {
    fn descriptor(&self) -> &str {
        &self.descriptor
    }

    fn on_transact(
        &self,
        code: u32,
        data: &mut ParcelReader<'_>,
        reply: &mut Parcel,
    ) -> Result<(), StatusCode> {
        // SAFETY: the binder and its class are valid for the rest of the process.
        let Some(on_transact) = (unsafe { (*(*self.binder).class).on_transact }) else {
            return Err(StatusCode::UNKNOWN_TRANSACTION);
        };
        let mut input = Ctx {
            reader: Some(data),
            writer: None,
            scratch: Vec::new(),
        };
        let mut output = Ctx {
            reader: None,
            writer: Some(reply),
            scratch: Vec::new(),
        };
        let in_parcel = AParcel {
            ctx: (&mut input as *mut Ctx<'_, '_>).cast(),
            ops: &OPS,
        };
        let mut out_parcel = AParcel {
            ctx: (&mut output as *mut Ctx<'_, '_>).cast(),
            ops: &OPS,
        };
        // SAFETY: the class's callback, with parcels that live for the call.
        let status = unsafe { on_transact(self.binder, code, &in_parcel, &mut out_parcel) };
        match status {
            STATUS_OK => Ok(()),
            STATUS_UNKNOWN_TRANSACTION => Err(StatusCode::UNKNOWN_TRANSACTION),
            other => Err(StatusCode(other)),
        }
    }
}

/// `AVmPayload_runVsockRpcServer`: serves `service` on vsock `port` to the host only, calls
/// `on_ready(param)` once listening, and never returns (errors abort).
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_runVsockRpcServer(
    service: *mut AIBinder,
    port: u32,
    on_ready: Option<unsafe extern "C" fn(param: *mut c_void)>,
    param: *mut c_void,
) -> ! {
    if service.is_null() {
        abort_with("runVsockRpcServer", "the service is null");
    }
    // SAFETY: a binder from AIBinder_new; the server keeps one strong reference forever.
    let descriptor = unsafe {
        (*service)
            .strong
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        let class = (*service).class;
        if class.is_null() || (*class).descriptor.is_null() {
            abort_with("runVsockRpcServer", "the service has no class");
        }
        std::ffi::CStr::from_ptr((*class).descriptor)
            .to_string_lossy()
            .into_owned()
    };
    let binder = Arc::new(NdkBinder {
        binder: service,
        descriptor,
    });
    let ready = move || {
        if let Some(f) = on_ready {
            // SAFETY: the caller's callback with the caller's parameter.
            unsafe { f(param) };
        }
    };
    match vm_payload::run_vsock_rpc_server(binder, port, ready) {
        Ok(never) => match never {},
        Err(e) => abort_with("runVsockRpcServer", e),
    }
}

/// `AVmPayload_getVmInstanceSecret`: `size` (≤ 32) bytes for `identifier`.
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_getVmInstanceSecret(
    identifier: *const c_void,
    identifier_size: usize,
    secret: *mut c_void,
    size: usize,
) {
    if (identifier.is_null() && identifier_size > 0) || (secret.is_null() && size > 0) {
        abort_with("getVmInstanceSecret", "null buffer");
    }
    let id = if identifier_size == 0 {
        &[][..]
    } else {
        // SAFETY: non-null with `identifier_size` bytes, by the caller's contract.
        unsafe { std::slice::from_raw_parts(identifier.cast::<u8>(), identifier_size) }
    };
    match vm_payload::vm_instance_secret(id, size) {
        Ok(bytes) if bytes.len() == size => {
            if size > 0 {
                // SAFETY: `secret` has `size` bytes, by the caller's contract.
                unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), secret.cast::<u8>(), size) };
            }
        }
        Ok(bytes) => abort_with(
            "getVmInstanceSecret",
            format!("{} bytes returned for {size}", bytes.len()),
        ),
        Err(e) => abort_with("getVmInstanceSecret", e),
    }
}

/// Copies up to `size` bytes into `data` and returns the full size.
unsafe fn copy_out(bytes: &[u8], data: *mut c_void, size: usize) -> usize {
    let n = bytes.len().min(size);
    if n > 0 && !data.is_null() {
        // SAFETY: `data` has `size` bytes, by the caller's contract; n <= size.
        unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), data.cast::<u8>(), n) };
    }
    bytes.len()
}

/// `AVmPayload_getDiceAttestationChain`: the chain's full size; copies up to `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_getDiceAttestationChain(
    data: *mut c_void,
    size: usize,
) -> usize {
    match vm_payload::dice_attestation_chain() {
        // SAFETY: see copy_out.
        Ok(chain) => unsafe { copy_out(&chain, data, size) },
        Err(e) => abort_with("getDiceAttestationChain", e),
    }
}

/// `AVmPayload_getDiceAttestationCdi`: the CDI's full size; copies up to `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_getDiceAttestationCdi(data: *mut c_void, size: usize) -> usize {
    match vm_payload::dice_attestation_cdi() {
        // SAFETY: see copy_out.
        Ok(cdi) => unsafe { copy_out(&cdi, data, size) },
        Err(e) => abort_with("getDiceAttestationCdi", e),
    }
}

/// `AVmPayload_getApkContentsPath`: `/mnt/apk`.
#[no_mangle]
pub extern "C" fn AVmPayload_getApkContentsPath() -> *const c_char {
    c"/mnt/apk".as_ptr()
}

/// `AVmPayload_getEncryptedStoragePath`: `/mnt/encryptedstore`, or null when the VM has none.
#[no_mangle]
pub extern "C" fn AVmPayload_getEncryptedStoragePath() -> *const c_char {
    match vm_payload::encrypted_storage_path() {
        Some(_) => c"/mnt/encryptedstore".as_ptr(),
        None => std::ptr::null(),
    }
}

/// `AVmAttestationResult`: the attested key and its certificate chain.
pub struct AVmAttestationResult {
    private_key: Vec<u8>,
    certificates: Vec<Vec<u8>>,
}

unsafe fn request(
    challenge: *const c_void,
    challenge_size: usize,
    result: *mut *mut AVmAttestationResult,
    test_mode: bool,
) -> i32 {
    if challenge_size > MAX_CHALLENGE_SIZE || (challenge.is_null() && challenge_size > 0) {
        return ATTESTATION_ERROR_INVALID_CHALLENGE;
    }
    if result.is_null() {
        abort_with("requestAttestation", "null result pointer");
    }
    let challenge = if challenge_size == 0 {
        &[][..]
    } else {
        // SAFETY: non-null with `challenge_size` bytes, by the caller's contract.
        unsafe { std::slice::from_raw_parts(challenge.cast::<u8>(), challenge_size) }
    };
    match vm_payload::request_attestation(challenge, test_mode) {
        Ok(r) => {
            let boxed = Box::new(AVmAttestationResult {
                private_key: r.private_key,
                certificates: r
                    .certificate_chain
                    .into_iter()
                    .map(|c| c.encoded_certificate)
                    .collect(),
            });
            // SAFETY: non-null, the caller's.
            unsafe { *result = Box::into_raw(boxed) };
            ATTESTATION_OK
        }
        Err(e) if e.is_unsupported() => ATTESTATION_ERROR_UNSUPPORTED,
        Err(_) => ATTESTATION_ERROR_ATTESTATION_FAILED,
    }
}

/// `AVmPayload_requestAttestation`.
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_requestAttestation(
    challenge: *const c_void,
    challenge_size: usize,
    result: *mut *mut AVmAttestationResult,
) -> i32 {
    // SAFETY: the caller's contract, checked in `request`.
    unsafe { request(challenge, challenge_size, result, false) }
}

/// `AVmPayload_requestAttestationForTesting` (restricted: test mode).
#[no_mangle]
pub unsafe extern "C" fn AVmPayload_requestAttestationForTesting(
    challenge: *const c_void,
    challenge_size: usize,
    result: *mut *mut AVmAttestationResult,
) -> i32 {
    // SAFETY: the caller's contract, checked in `request`.
    unsafe { request(challenge, challenge_size, result, true) }
}

/// `AVmAttestationStatus_toString`: AOSP's strings.
#[no_mangle]
pub extern "C" fn AVmAttestationStatus_toString(status: i32) -> *const c_char {
    match status {
        ATTESTATION_OK => c"The remote attestation completes successfully.".as_ptr(),
        ATTESTATION_ERROR_INVALID_CHALLENGE => {
            c"The challenge size is not between 0 and 64.".as_ptr()
        }
        ATTESTATION_ERROR_ATTESTATION_FAILED => {
            c"Failed to attest the VM. Please retry at a later time.".as_ptr()
        }
        ATTESTATION_ERROR_UNSUPPORTED => {
            c"Remote attestation is not supported in the current environment.".as_ptr()
        }
        _ => c"The remote attestation status is unknown.".as_ptr(),
    }
}

/// `AVmAttestationResult_free`.
#[no_mangle]
pub unsafe extern "C" fn AVmAttestationResult_free(result: *mut AVmAttestationResult) {
    if !result.is_null() {
        // SAFETY: a result from requestAttestation, freed once.
        drop(unsafe { Box::from_raw(result) });
    }
}

/// `AVmAttestationResult_getPrivateKey`: the DER ECPrivateKey's size; copies up to `size`.
#[no_mangle]
pub unsafe extern "C" fn AVmAttestationResult_getPrivateKey(
    result: *const AVmAttestationResult,
    data: *mut c_void,
    size: usize,
) -> usize {
    if result.is_null() {
        abort_with("getPrivateKey", "null result");
    }
    // SAFETY: a live result; see copy_out.
    unsafe { copy_out(&(*result).private_key, data, size) }
}

/// The most a DER ECDSA P-256 signature takes.
const MAX_SIGNATURE_SIZE: usize = 72;

/// `AVmAttestationResult_sign`: ECDSA P-256 over SHA-256(message), DER; returns the
/// signature's size (72 at most: a size-0 call asks for it).
#[no_mangle]
pub unsafe extern "C" fn AVmAttestationResult_sign(
    result: *const AVmAttestationResult,
    message: *const c_void,
    message_size: usize,
    data: *mut c_void,
    size: usize,
) -> usize {
    use p256::ecdsa::signature::Signer;
    if result.is_null() || message.is_null() || message_size == 0 {
        abort_with("sign", "null result or empty message");
    }
    if size == 0 {
        return MAX_SIGNATURE_SIZE;
    }
    // SAFETY: a live result; `message` has `message_size` bytes by the caller's contract.
    let (key, message) = unsafe {
        (
            &(*result).private_key,
            std::slice::from_raw_parts(message.cast::<u8>(), message_size),
        )
    };
    let secret = match p256::SecretKey::from_sec1_der(key) {
        Ok(k) => k,
        Err(e) => abort_with("sign", e),
    };
    let signature: p256::ecdsa::Signature = p256::ecdsa::SigningKey::from(secret).sign(message);
    let der = signature.to_der();
    // SAFETY: see copy_out.
    unsafe { copy_out(der.as_bytes(), data, size) }
}

/// `AVmAttestationResult_getCertificateCount`.
#[no_mangle]
pub unsafe extern "C" fn AVmAttestationResult_getCertificateCount(
    result: *const AVmAttestationResult,
) -> usize {
    if result.is_null() {
        abort_with("getCertificateCount", "null result");
    }
    // SAFETY: a live result.
    unsafe { (*result).certificates.len() }
}

/// `AVmAttestationResult_getCertificateAt`: certificate `index` (leaf first)'s size; copies up
/// to `size` bytes.
#[no_mangle]
pub unsafe extern "C" fn AVmAttestationResult_getCertificateAt(
    result: *const AVmAttestationResult,
    index: usize,
    data: *mut c_void,
    size: usize,
) -> usize {
    if result.is_null() {
        abort_with("getCertificateAt", "null result");
    }
    // SAFETY: a live result.
    let certs = unsafe { &(*result).certificates };
    match certs.get(index) {
        // SAFETY: see copy_out.
        Some(cert) => unsafe { copy_out(cert, data, size) },
        None => abort_with("getCertificateAt", format!("no certificate {index}")),
    }
}

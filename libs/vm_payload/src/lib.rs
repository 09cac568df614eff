//! Rust bindings of AOSP's payload C ABI (`include/vm_payload.h`, implemented by
//! `libvm_payload.so`), for a payload written in Rust and built as an `AVmPayload_main` shared
//! library (crate-type `cdylib`). The symbols resolve when `microdroid_launcher` loads the
//! payload: it loads libvm_payload.so first, globally. docs/payloads.md has an example.
//!
//! ```ignore
//! #[no_mangle]
//! pub extern "C" fn AVmPayload_main() -> i32 {
//!     let secret = vm_payload::vm_instance_secret(b"my key", 32);
//!     vm_payload::notify_payload_ready();
//!     0
//! }
//! ```

use std::ffi::{c_char, c_void, CStr};
use std::path::Path;

/// `AVmAttestationStatus`.
pub type AttestationStatus = i32;
/// `ATTESTATION_OK`.
pub const ATTESTATION_OK: AttestationStatus = 0;
/// `ATTESTATION_ERROR_INVALID_CHALLENGE`.
pub const ATTESTATION_ERROR_INVALID_CHALLENGE: AttestationStatus = -10001;
/// `ATTESTATION_ERROR_ATTESTATION_FAILED`.
pub const ATTESTATION_ERROR_ATTESTATION_FAILED: AttestationStatus = -10002;
/// `ATTESTATION_ERROR_UNSUPPORTED`.
pub const ATTESTATION_ERROR_UNSUPPORTED: AttestationStatus = -10003;

/// An opaque `AIBinder` (libbinder_ndk.so).
#[repr(C)]
pub struct AIBinder {
    _private: [u8; 0],
}

/// An opaque `AVmAttestationResult`.
#[repr(C)]
pub struct AVmAttestationResult {
    _private: [u8; 0],
}

#[allow(missing_docs)]
extern "C" {
    pub fn AVmPayload_notifyPayloadReady();
    pub fn AVmPayload_runVsockRpcServer(
        service: *mut AIBinder,
        port: u32,
        on_ready: Option<unsafe extern "C" fn(param: *mut c_void)>,
        param: *mut c_void,
    ) -> !;
    pub fn AVmPayload_getVmInstanceSecret(
        identifier: *const c_void,
        identifier_size: usize,
        secret: *mut c_void,
        size: usize,
    );
    pub fn AVmPayload_getDiceAttestationChain(data: *mut c_void, size: usize) -> usize;
    pub fn AVmPayload_getDiceAttestationCdi(data: *mut c_void, size: usize) -> usize;
    pub fn AVmPayload_getApkContentsPath() -> *const c_char;
    pub fn AVmPayload_getEncryptedStoragePath() -> *const c_char;
    pub fn AVmPayload_requestAttestation(
        challenge: *const c_void,
        challenge_size: usize,
        result: *mut *mut AVmAttestationResult,
    ) -> AttestationStatus;
    pub fn AVmAttestationStatus_toString(status: AttestationStatus) -> *const c_char;
    pub fn AVmAttestationResult_free(result: *mut AVmAttestationResult);
}

/// Tells the host the payload is ready (aborts if microdroid_manager refuses, as AOSP).
pub fn notify_payload_ready() {
    // SAFETY: no arguments; libvm_payload's contract.
    unsafe { AVmPayload_notifyPayloadReady() }
}

/// `size` (≤ 32) bytes of this VM instance's secret for `identifier`.
pub fn vm_instance_secret(identifier: &[u8], size: usize) -> Vec<u8> {
    let mut secret = vec![0u8; size];
    // SAFETY: both buffers have the sizes passed.
    unsafe {
        AVmPayload_getVmInstanceSecret(
            identifier.as_ptr().cast(),
            identifier.len(),
            secret.as_mut_ptr().cast(),
            size,
        )
    };
    secret
}

fn sized(f: unsafe extern "C" fn(*mut c_void, usize) -> usize) -> Vec<u8> {
    // SAFETY: a size-0 call only returns the size.
    let len = unsafe { f(std::ptr::null_mut(), 0) };
    let mut buf = vec![0u8; len];
    // SAFETY: the buffer has `len` bytes.
    let len = unsafe { f(buf.as_mut_ptr().cast(), len) };
    buf.truncate(len);
    buf
}

/// The VM's DICE chain (restricted to payloads started from a config path).
pub fn dice_attestation_chain() -> Vec<u8> {
    sized(AVmPayload_getDiceAttestationChain)
}

/// The payload's CDI_Attest (restricted as the chain).
pub fn dice_attestation_cdi() -> Vec<u8> {
    sized(AVmPayload_getDiceAttestationCdi)
}

fn path_of(p: *const c_char) -> Option<&'static Path> {
    if p.is_null() {
        return None;
    }
    // SAFETY: libvm_payload returns static NUL-terminated strings.
    let s = unsafe { CStr::from_ptr(p) };
    s.to_str().ok().map(Path::new)
}

/// Where the APK is mounted (`/mnt/apk`).
pub fn apk_contents_path() -> &'static Path {
    // SAFETY: no arguments; returns a static string.
    path_of(unsafe { AVmPayload_getApkContentsPath() }).unwrap_or(Path::new("/mnt/apk"))
}

/// Where the encrypted storage is mounted, if the VM has one.
pub fn encrypted_storage_path() -> Option<&'static Path> {
    // SAFETY: no arguments; returns a static string or null.
    path_of(unsafe { AVmPayload_getEncryptedStoragePath() })
}

/// Asks for remote attestation of a key for `challenge` (≤ 64 bytes). Returns the status
/// (this host has no RKP VM: `ATTESTATION_ERROR_UNSUPPORTED`) and its text.
pub fn request_attestation(challenge: &[u8]) -> (AttestationStatus, String) {
    let mut result: *mut AVmAttestationResult = std::ptr::null_mut();
    // SAFETY: the challenge has its length; `result` is a local.
    let status = unsafe {
        AVmPayload_requestAttestation(challenge.as_ptr().cast(), challenge.len(), &mut result)
    };
    if !result.is_null() {
        // SAFETY: a result from requestAttestation, freed once.
        unsafe { AVmAttestationResult_free(result) };
    }
    // SAFETY: returns a static NUL-terminated string.
    let text = unsafe { CStr::from_ptr(AVmAttestationStatus_toString(status)) };
    (status, text.to_string_lossy().into_owned())
}

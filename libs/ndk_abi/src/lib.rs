//! What `libbinder_ndk.so` (the minimal NDK binder API a payload's service object needs) and
//! `libvm_payload.so` (which serves that object over vsock) share, as `repr(C)` types: an
//! `AIBinder` is made by the first and served by the second; an `AParcel` is made by the second
//! for each transaction and read and written through the first's `AParcel_*` functions, which
//! call back into the maker's [`ParcelOps`]. Neither library relies on the other's Rust layout.

use std::ffi::{c_char, c_void};
use std::sync::atomic::AtomicUsize;

/// `binder_status_t`.
pub type BinderStatus = i32;
/// `STATUS_OK`.
pub const STATUS_OK: BinderStatus = 0;
/// `STATUS_BAD_VALUE` (-EINVAL).
pub const STATUS_BAD_VALUE: BinderStatus = -22;
/// `STATUS_NO_MEMORY` (-ENOMEM).
pub const STATUS_NO_MEMORY: BinderStatus = -12;
/// `STATUS_UNEXPECTED_NULL`.
pub const STATUS_UNEXPECTED_NULL: BinderStatus = i32::MIN + 8;
/// `STATUS_UNKNOWN_TRANSACTION` (-EBADMSG).
pub const STATUS_UNKNOWN_TRANSACTION: BinderStatus = -74;
/// `STATUS_INVALID_OPERATION` (-ENOSYS).
pub const STATUS_INVALID_OPERATION: BinderStatus = -38;

/// `AIBinder_Class_onCreate`.
pub type OnCreate = unsafe extern "C" fn(args: *mut c_void) -> *mut c_void;
/// `AIBinder_Class_onDestroy`.
pub type OnDestroy = unsafe extern "C" fn(user_data: *mut c_void);
/// `AIBinder_Class_onTransact`.
pub type OnTransact = unsafe extern "C" fn(
    binder: *mut AIBinder,
    code: u32,
    input: *const AParcel,
    output: *mut AParcel,
) -> BinderStatus;

/// `AIBinder_Class`: an interface descriptor and its callbacks. Never freed (as in the NDK).
#[repr(C)]
#[derive(Debug)]
pub struct AIBinderClass {
    /// NUL-terminated, owned by the class.
    pub descriptor: *const c_char,
    pub on_create: Option<OnCreate>,
    pub on_destroy: Option<OnDestroy>,
    pub on_transact: Option<OnTransact>,
}

/// `AIBinder`: a local binder object of a class, reference counted.
#[repr(C)]
#[derive(Debug)]
pub struct AIBinder {
    pub class: *const AIBinderClass,
    pub user_data: *mut c_void,
    pub strong: AtomicUsize,
}

/// How an `AParcel`'s maker reads and writes it. `ctx` is the maker's.
#[repr(C)]
#[derive(Debug)]
pub struct ParcelOps {
    pub read_i32: unsafe extern "C" fn(ctx: *mut c_void, out: *mut i32) -> BinderStatus,
    pub read_i64: unsafe extern "C" fn(ctx: *mut c_void, out: *mut i64) -> BinderStatus,
    /// A String16 as UTF-8: `*len` = -1 for null, else the byte length; `*data` valid until
    /// the next read.
    pub read_string:
        unsafe extern "C" fn(ctx: *mut c_void, data: *mut *const u8, len: *mut i32) -> BinderStatus,
    /// A `byte[]`: as `read_string`.
    pub read_bytes:
        unsafe extern "C" fn(ctx: *mut c_void, data: *mut *const u8, len: *mut i32) -> BinderStatus,
    pub write_i32: unsafe extern "C" fn(ctx: *mut c_void, value: i32) -> BinderStatus,
    pub write_i64: unsafe extern "C" fn(ctx: *mut c_void, value: i64) -> BinderStatus,
    /// UTF-8 bytes as a String16; `len` -1 writes null.
    pub write_string:
        unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: i32) -> BinderStatus,
    /// `len` -1 writes a null array.
    pub write_bytes:
        unsafe extern "C" fn(ctx: *mut c_void, data: *const u8, len: i32) -> BinderStatus,
    /// A `binder::Status` header: exception code, message (UTF-8, may be null), service code.
    pub write_status: unsafe extern "C" fn(
        ctx: *mut c_void,
        exception: i32,
        message: *const u8,
        message_len: i32,
        service_specific: i32,
    ) -> BinderStatus,
}

/// `AParcel`: one side of a transaction, read or written through its maker's operations.
#[repr(C)]
#[derive(Debug)]
pub struct AParcel {
    pub ctx: *mut c_void,
    pub ops: *const ParcelOps,
}

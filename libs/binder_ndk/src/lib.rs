//! `libbinder_ndk.so`: the part of Android's NDK binder API (`android/binder_ibinder.h`,
//! `binder_parcel.h`, `binder_status.h`) that a payload needs to give
//! `AVmPayload_runVsockRpcServer` a service object — names, signatures and semantics as the NDK's
//! for what is here (include/android/ lists it). An `AIBinder` of a class is served by
//! libvm_payload.so; each transaction's `AParcel`s are made by it and read and written through
//! the functions here (`ndk_abi`).
//!
//! Every function checks its pointers for null and returns `STATUS_UNEXPECTED_NULL` (or does
//! nothing) rather than crash; the rest of a pointer's validity is the C caller's contract.

#![allow(clippy::missing_safety_doc)]

use std::ffi::{c_char, c_void, CStr};
use std::sync::atomic::{AtomicUsize, Ordering};

use ndk_abi::{
    AIBinder, AIBinderClass, AParcel, BinderStatus, OnCreate, OnDestroy, OnTransact,
    STATUS_BAD_VALUE, STATUS_NO_MEMORY, STATUS_OK, STATUS_UNEXPECTED_NULL,
};

/// `AIBinder_Class_define`: the class lives for the rest of the process (as in the NDK).
#[no_mangle]
pub unsafe extern "C" fn AIBinder_Class_define(
    interface_descriptor: *const c_char,
    on_create: Option<OnCreate>,
    on_destroy: Option<OnDestroy>,
    on_transact: Option<OnTransact>,
) -> *mut AIBinderClass {
    if interface_descriptor.is_null() || on_transact.is_none() {
        return std::ptr::null_mut();
    }
    // SAFETY: non-null, and the caller passes a NUL-terminated string.
    let descriptor = unsafe { CStr::from_ptr(interface_descriptor) }.to_owned();
    Box::into_raw(Box::new(AIBinderClass {
        descriptor: descriptor.into_raw(),
        on_create,
        on_destroy,
        on_transact,
    }))
}

/// `AIBinder_new`: a binder of `clazz` with one strong reference; `onCreate(args)` makes its
/// user data.
#[no_mangle]
pub unsafe extern "C" fn AIBinder_new(
    clazz: *const AIBinderClass,
    args: *mut c_void,
) -> *mut AIBinder {
    if clazz.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: a class from AIBinder_Class_define, never freed.
    let class = unsafe { &*clazz };
    let user_data = match class.on_create {
        // SAFETY: the class's own callback with the caller's argument.
        Some(f) => unsafe { f(args) },
        None => args,
    };
    Box::into_raw(Box::new(AIBinder {
        class: clazz,
        user_data,
        strong: AtomicUsize::new(1),
    }))
}

/// `AIBinder_getUserData`.
#[no_mangle]
pub unsafe extern "C" fn AIBinder_getUserData(binder: *mut AIBinder) -> *mut c_void {
    if binder.is_null() {
        return std::ptr::null_mut();
    }
    // SAFETY: a live binder from AIBinder_new.
    unsafe { (*binder).user_data }
}

/// `AIBinder_incStrong`.
#[no_mangle]
pub unsafe extern "C" fn AIBinder_incStrong(binder: *mut AIBinder) {
    if !binder.is_null() {
        // SAFETY: a live binder from AIBinder_new.
        unsafe { (*binder).strong.fetch_add(1, Ordering::AcqRel) };
    }
}

/// `AIBinder_decStrong`: the last reference runs `onDestroy` and frees the binder.
#[no_mangle]
pub unsafe extern "C" fn AIBinder_decStrong(binder: *mut AIBinder) {
    if binder.is_null() {
        return;
    }
    // SAFETY: a live binder from AIBinder_new; the count says whether others still hold it.
    if unsafe { (*binder).strong.fetch_sub(1, Ordering::AcqRel) } != 1 {
        return;
    }
    // SAFETY: this was the last reference: nobody else uses the binder now.
    let binder = unsafe { Box::from_raw(binder) };
    // SAFETY: the class outlives its binders.
    if let Some(destroy) = unsafe { (*binder.class).on_destroy } {
        // SAFETY: the class's callback with the user data its onCreate made.
        unsafe { destroy(binder.user_data) };
    }
}

/// Calls the parcel's maker for an operation, or `STATUS_UNEXPECTED_NULL` for a null parcel.
unsafe fn with_ops(
    parcel: *const AParcel,
    f: impl FnOnce(&ndk_abi::ParcelOps, *mut c_void) -> BinderStatus,
) -> BinderStatus {
    if parcel.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: a parcel handed to onTransact, valid during the call.
    let parcel = unsafe { &*parcel };
    if parcel.ops.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: the maker's operations table, valid as long as the parcel.
    f(unsafe { &*parcel.ops }, parcel.ctx)
}

/// `AParcel_readInt32`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_readInt32(
    parcel: *const AParcel,
    value: *mut i32,
) -> BinderStatus {
    if value.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: see with_ops; `value` is the caller's, non-null.
    unsafe { with_ops(parcel, |ops, ctx| (ops.read_i32)(ctx, value)) }
}

/// `AParcel_readInt64`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_readInt64(
    parcel: *const AParcel,
    value: *mut i64,
) -> BinderStatus {
    if value.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: as AParcel_readInt32.
    unsafe { with_ops(parcel, |ops, ctx| (ops.read_i64)(ctx, value)) }
}

/// `AParcel_readBool`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_readBool(
    parcel: *const AParcel,
    value: *mut bool,
) -> BinderStatus {
    if value.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    let mut v = 0i32;
    // SAFETY: as AParcel_readInt32, with a local.
    let status = unsafe { with_ops(parcel, |ops, ctx| (ops.read_i32)(ctx, &mut v)) };
    if status == STATUS_OK {
        // SAFETY: non-null, the caller's.
        unsafe { *value = v != 0 };
    }
    status
}

/// A string or byte-array read operation of the parcel's maker.
type ReadBlob = unsafe extern "C" fn(*mut c_void, *mut *const u8, *mut i32) -> BinderStatus;

/// Reads a string or byte array through the maker: its bytes (valid until the next read) and
/// length, -1 for null.
unsafe fn read_blob(
    parcel: *const AParcel,
    pick: fn(&ndk_abi::ParcelOps) -> ReadBlob,
) -> Result<(*const u8, i32), BinderStatus> {
    let mut data: *const u8 = std::ptr::null();
    let mut len: i32 = -1;
    // SAFETY: as AParcel_readInt32, with locals.
    let status = unsafe { with_ops(parcel, |ops, ctx| pick(ops)(ctx, &mut data, &mut len)) };
    if status == STATUS_OK {
        Ok((data, len))
    } else {
        Err(status)
    }
}

/// `AParcel_stringAllocator`.
pub type StringAllocator =
    unsafe extern "C" fn(string_data: *mut c_void, length: i32, buffer: *mut *mut c_char) -> bool;

/// `AParcel_readString`: the allocator gets the length including the NUL (-1 for null) and
/// returns the buffer, which is filled with the UTF-8 text and a NUL.
#[no_mangle]
pub unsafe extern "C" fn AParcel_readString(
    parcel: *const AParcel,
    string_data: *mut c_void,
    allocator: Option<StringAllocator>,
) -> BinderStatus {
    let Some(allocator) = allocator else {
        return STATUS_UNEXPECTED_NULL;
    };
    // SAFETY: see read_blob.
    let (data, len) = match unsafe { read_blob(parcel, |ops| ops.read_string) } {
        Ok(r) => r,
        Err(status) => return status,
    };
    let mut buffer: *mut c_char = std::ptr::null_mut();
    if len < 0 {
        // SAFETY: the caller's allocator, with its own data.
        return if unsafe { allocator(string_data, -1, &mut buffer) } {
            STATUS_OK
        } else {
            STATUS_UNEXPECTED_NULL
        };
    }
    let Some(with_nul) = len.checked_add(1) else {
        return STATUS_BAD_VALUE;
    };
    // SAFETY: the caller's allocator, with its own data.
    if !unsafe { allocator(string_data, with_nul, &mut buffer) } || buffer.is_null() {
        return STATUS_NO_MEMORY;
    }
    // SAFETY: `data` has `len` bytes (the maker's, valid until the next read); `buffer` has
    // `len + 1`, as the allocator was asked.
    unsafe {
        std::ptr::copy_nonoverlapping(data, buffer.cast::<u8>(), len as usize);
        *buffer.add(len as usize) = 0;
    }
    STATUS_OK
}

/// `AParcel_byteArrayAllocator`.
pub type ByteArrayAllocator =
    unsafe extern "C" fn(array_data: *mut c_void, length: i32, buffer: *mut *mut i8) -> bool;

/// `AParcel_readByteArray`: the allocator gets the length (-1 for null) and returns a buffer
/// that is filled with the bytes.
#[no_mangle]
pub unsafe extern "C" fn AParcel_readByteArray(
    parcel: *const AParcel,
    array_data: *mut c_void,
    allocator: Option<ByteArrayAllocator>,
) -> BinderStatus {
    let Some(allocator) = allocator else {
        return STATUS_UNEXPECTED_NULL;
    };
    // SAFETY: see read_blob.
    let (data, len) = match unsafe { read_blob(parcel, |ops| ops.read_bytes) } {
        Ok(r) => r,
        Err(status) => return status,
    };
    let mut buffer: *mut i8 = std::ptr::null_mut();
    // SAFETY: the caller's allocator, with its own data.
    if !unsafe { allocator(array_data, len, &mut buffer) } {
        return STATUS_NO_MEMORY;
    }
    if len > 0 {
        if buffer.is_null() {
            return STATUS_NO_MEMORY;
        }
        // SAFETY: `data` has `len` bytes; the allocator gave a buffer of `len`.
        unsafe { std::ptr::copy_nonoverlapping(data, buffer.cast::<u8>(), len as usize) };
    }
    STATUS_OK
}

/// `AParcel_writeInt32`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeInt32(parcel: *mut AParcel, value: i32) -> BinderStatus {
    // SAFETY: see with_ops.
    unsafe { with_ops(parcel, |ops, ctx| (ops.write_i32)(ctx, value)) }
}

/// `AParcel_writeInt64`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeInt64(parcel: *mut AParcel, value: i64) -> BinderStatus {
    // SAFETY: see with_ops.
    unsafe { with_ops(parcel, |ops, ctx| (ops.write_i64)(ctx, value)) }
}

/// `AParcel_writeBool`.
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeBool(parcel: *mut AParcel, value: bool) -> BinderStatus {
    // SAFETY: see with_ops.
    unsafe { with_ops(parcel, |ops, ctx| (ops.write_i32)(ctx, i32::from(value))) }
}

/// `AParcel_writeString`: `length` bytes of UTF-8 (-1 writes null).
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeString(
    parcel: *mut AParcel,
    string: *const c_char,
    length: i32,
) -> BinderStatus {
    if length >= 0 && string.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: see with_ops; the maker reads `length` bytes of `string`.
    unsafe {
        with_ops(parcel, |ops, ctx| {
            (ops.write_string)(ctx, string.cast(), length)
        })
    }
}

/// `AParcel_writeByteArray`: `length` bytes (-1 writes null).
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeByteArray(
    parcel: *mut AParcel,
    array_data: *const i8,
    length: i32,
) -> BinderStatus {
    if length > 0 && array_data.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: see with_ops; the maker reads `length` bytes.
    unsafe {
        with_ops(parcel, |ops, ctx| {
            (ops.write_bytes)(ctx, array_data.cast(), length)
        })
    }
}

/// `AStatus`: an exception code, a service-specific code and a message.
#[derive(Debug)]
pub struct AStatus {
    exception: i32,
    service_specific: i32,
    message: Vec<u8>,
}

/// `EX_SERVICE_SPECIFIC`.
const EX_SERVICE_SPECIFIC: i32 = -8;

fn new_status(exception: i32, service_specific: i32, message: *const c_char) -> *mut AStatus {
    let message = if message.is_null() {
        Vec::new()
    } else {
        // SAFETY: non-null, NUL-terminated by the caller's contract.
        unsafe { CStr::from_ptr(message) }.to_bytes().to_vec()
    };
    Box::into_raw(Box::new(AStatus {
        exception,
        service_specific,
        message,
    }))
}

/// `AStatus_newOk`.
#[no_mangle]
pub extern "C" fn AStatus_newOk() -> *mut AStatus {
    new_status(0, 0, std::ptr::null())
}

/// `AStatus_fromExceptionCode`.
#[no_mangle]
pub extern "C" fn AStatus_fromExceptionCode(exception: i32) -> *mut AStatus {
    new_status(exception, 0, std::ptr::null())
}

/// `AStatus_fromExceptionCodeWithMessage`.
#[no_mangle]
pub unsafe extern "C" fn AStatus_fromExceptionCodeWithMessage(
    exception: i32,
    message: *const c_char,
) -> *mut AStatus {
    new_status(exception, 0, message)
}

/// `AStatus_fromServiceSpecificError`.
#[no_mangle]
pub extern "C" fn AStatus_fromServiceSpecificError(service_specific: i32) -> *mut AStatus {
    new_status(EX_SERVICE_SPECIFIC, service_specific, std::ptr::null())
}

/// `AStatus_fromServiceSpecificErrorWithMessage`.
#[no_mangle]
pub unsafe extern "C" fn AStatus_fromServiceSpecificErrorWithMessage(
    service_specific: i32,
    message: *const c_char,
) -> *mut AStatus {
    new_status(EX_SERVICE_SPECIFIC, service_specific, message)
}

/// `AStatus_isOk`.
#[no_mangle]
pub unsafe extern "C" fn AStatus_isOk(status: *const AStatus) -> bool {
    // SAFETY: a status from AStatus_* or null.
    status.is_null() || unsafe { (*status).exception } == 0
}

/// `AStatus_delete`.
#[no_mangle]
pub unsafe extern "C" fn AStatus_delete(status: *mut AStatus) {
    if !status.is_null() {
        // SAFETY: a status from AStatus_*, deleted once.
        drop(unsafe { Box::from_raw(status) });
    }
}

/// `AParcel_writeStatusHeader`: the `binder::Status` a two-way AIDL reply starts with.
#[no_mangle]
pub unsafe extern "C" fn AParcel_writeStatusHeader(
    parcel: *mut AParcel,
    status: *const AStatus,
) -> BinderStatus {
    if status.is_null() {
        return STATUS_UNEXPECTED_NULL;
    }
    // SAFETY: a status from AStatus_*.
    let status = unsafe { &*status };
    let len = i32::try_from(status.message.len()).unwrap_or(i32::MAX);
    // SAFETY: see with_ops; the message outlives the call.
    unsafe {
        with_ops(parcel, |ops, ctx| {
            (ops.write_status)(
                ctx,
                status.exception,
                status.message.as_ptr(),
                len,
                status.service_specific,
            )
        })
    }
}

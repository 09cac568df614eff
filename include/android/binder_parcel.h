/*
 * The subset of the NDK's android/binder_parcel.h that libbinder_ndk.so implements (ints,
 * bools, strings, byte arrays, the status header of a reply). Same names and semantics.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <android/binder_status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AParcel AParcel;

binder_status_t AParcel_readInt32(const AParcel* parcel, int32_t* value);
binder_status_t AParcel_readInt64(const AParcel* parcel, int64_t* value);
binder_status_t AParcel_readBool(const AParcel* parcel, bool* value);
binder_status_t AParcel_writeInt32(AParcel* parcel, int32_t value);
binder_status_t AParcel_writeInt64(AParcel* parcel, int64_t value);
binder_status_t AParcel_writeBool(AParcel* parcel, bool value);

/* `length` is the size the string needs with its NUL (-1 for a null string); the allocator
 * stores a buffer of that size in *buffer and returns true. */
typedef bool (*AParcel_stringAllocator)(void* stringData, int32_t length, char** buffer);
binder_status_t AParcel_readString(const AParcel* parcel, void* stringData,
                                   AParcel_stringAllocator allocator);
/* `length` bytes of UTF-8 at `string` (-1 writes a null string). */
binder_status_t AParcel_writeString(AParcel* parcel, const char* string, int32_t length);

typedef bool (*AParcel_byteArrayAllocator)(void* arrayData, int32_t length, int8_t** outBuffer);
binder_status_t AParcel_readByteArray(const AParcel* parcel, void* arrayData,
                                      AParcel_byteArrayAllocator allocator);
binder_status_t AParcel_writeByteArray(AParcel* parcel, const int8_t* arrayData, int32_t length);

/* The binder::Status a two-way AIDL reply starts with (what NDK-generated stubs write). */
binder_status_t AParcel_writeStatusHeader(AParcel* parcel, const AStatus* status);

#ifdef __cplusplus
}
#endif

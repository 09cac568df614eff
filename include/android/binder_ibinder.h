/*
 * The subset of the NDK's android/binder_ibinder.h that libbinder_ndk.so implements: local
 * binder objects of a class, for AVmPayload_runVsockRpcServer. Same names and semantics.
 * The interface token of each call is checked before onTransact runs, as in the NDK.
 */
#pragma once

#include <stdint.h>

#include <android/binder_parcel.h>
#include <android/binder_status.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint32_t transaction_code_t;
enum { FIRST_CALL_TRANSACTION = 0x00000001, LAST_CALL_TRANSACTION = 0x00ffffff };

typedef struct AIBinder AIBinder;
typedef struct AIBinder_Class AIBinder_Class;

typedef void* (*AIBinder_Class_onCreate)(void* args);
typedef void (*AIBinder_Class_onDestroy)(void* userData);
typedef binder_status_t (*AIBinder_Class_onTransact)(AIBinder* binder, transaction_code_t code,
                                                     const AParcel* in, AParcel* out);

AIBinder_Class* AIBinder_Class_define(const char* interfaceDescriptor,
                                      AIBinder_Class_onCreate onCreate,
                                      AIBinder_Class_onDestroy onDestroy,
                                      AIBinder_Class_onTransact onTransact);
AIBinder* AIBinder_new(const AIBinder_Class* clazz, void* args);
void* AIBinder_getUserData(AIBinder* binder);
void AIBinder_incStrong(AIBinder* binder);
void AIBinder_decStrong(AIBinder* binder);

#ifdef __cplusplus
}
#endif

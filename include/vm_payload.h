/*
 * The payload API of Microdroid, as AOSP's vm_payload.h (API 34 and 35): the same names,
 * signatures and semantics, implemented by libvm_payload.so (libs/libvm_payload). docs/payloads.md
 * describes each call and where this host differs (no remote attestation: requestAttestation
 * answers ATTESTATION_ERROR_UNSUPPORTED).
 *
 * Calls that cannot do what they promise (microdroid_manager unreachable, a secret larger than
 * 32 bytes, a restricted call) print why on stderr and abort, as AOSP's do.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm_main.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct AIBinder AIBinder;

/* AOSP declares this as `enum AVmAttestationStatus : int32_t`; the same values and width,
 * spelled so that C11 compilers accept it. */
typedef int32_t AVmAttestationStatus;
enum {
    ATTESTATION_OK = 0,
    ATTESTATION_ERROR_INVALID_CHALLENGE = -10001,
    ATTESTATION_ERROR_ATTESTATION_FAILED = -10002,
    ATTESTATION_ERROR_UNSUPPORTED = -10003,
};

typedef struct AVmAttestationResult AVmAttestationResult;

/* Tells the host the payload is ready (IVirtualMachineCallback.onPayloadReady). */
void AVmPayload_notifyPayloadReady(void);

/* Serves `service` as the root object of an RPC binder server on vsock `port` of this VM, to
 * the host only; calls on_ready(param) once listening; never returns. */
__attribute__((noreturn)) void AVmPayload_runVsockRpcServer(AIBinder* service, uint32_t port,
                                                          void (*on_ready)(void* param),
                                                          void* param);

/* `size` (at most 32) bytes of a secret of this VM instance, for `identifier`. */
void AVmPayload_getVmInstanceSecret(const void* identifier, size_t identifier_size, void* secret,
                                    size_t size);

/* The VM's DICE chain (CBOR) / the payload's CDI_Attest: copies up to `size` bytes into
 * `data` and returns the full size. Restricted to payloads started from a config path. */
size_t AVmPayload_getDiceAttestationChain(void* data, size_t size);
size_t AVmPayload_getDiceAttestationCdi(void* data, size_t size);

/* "/mnt/apk": where the APK's contents are. */
const char* AVmPayload_getApkContentsPath(void);

/* "/mnt/encryptedstore", or NULL when the VM has no encrypted storage. */
const char* AVmPayload_getEncryptedStoragePath(void);

/* Remote attestation of a new key for `challenge` (at most 64 bytes). On ATTESTATION_OK,
 * *result is set (free it with AVmAttestationResult_free). */
AVmAttestationStatus AVmPayload_requestAttestation(const void* challenge, size_t challenge_size,
                                                   AVmAttestationResult** result);
AVmAttestationStatus AVmPayload_requestAttestationForTesting(const void* challenge,
                                                             size_t challenge_size,
                                                             AVmAttestationResult** result);

/* A sentence describing `status`. */
const char* AVmAttestationStatus_toString(AVmAttestationStatus status);

void AVmAttestationResult_free(AVmAttestationResult* result);
size_t AVmAttestationResult_getPrivateKey(const AVmAttestationResult* result, void* data,
                                          size_t size);
size_t AVmAttestationResult_sign(const AVmAttestationResult* result, const void* message,
                                 size_t message_size, void* data, size_t size);
size_t AVmAttestationResult_getCertificateCount(const AVmAttestationResult* result);
size_t AVmAttestationResult_getCertificateAt(const AVmAttestationResult* result, size_t index,
                                             void* data, size_t size);

#ifdef __cplusplus
}
#endif

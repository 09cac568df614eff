/*
 * A Microdroid payload in C, as AOSP builds them: a shared library exporting AVmPayload_main,
 * built with cc against include/vm_payload.h and linked with libvm_payload.so
 * (`make c-payload`). It exercises every call of the payload API and says, for each, what it
 * got; it keeps a boot counter in the VM's encrypted storage, and exits 0 only if every call
 * behaved as documented.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <vm_payload.h>

static int failures = 0;

static void check(int ok, const char* what) {
    printf("%s: %s\n", ok ? "ok" : "FAIL", what);
    if (!ok) failures++;
}

/* The boot counter in the encrypted storage: read, increment, write back. */
static int count_boot(const char* storage) {
    char path[256];
    snprintf(path, sizeof(path), "%s/c-payload-boots", storage);
    int boots = 0;
    FILE* f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%d", &boots) != 1) boots = 0;
        fclose(f);
    }
    boots++;
    f = fopen(path, "w");
    if (f == NULL) {
        printf("cannot write %s: %s\n", path, strerror(errno));
        return -1;
    }
    fprintf(f, "%d\n", boots);
    fclose(f);
    return boots;
}

int AVmPayload_main(void) {
    printf("c-payload: hello from a C payload\n");

    const char* apk = AVmPayload_getApkContentsPath();
    check(apk != NULL && strcmp(apk, "/mnt/apk") == 0, "AVmPayload_getApkContentsPath is /mnt/apk");

    uint8_t secret[32], again[32], other[32];
    AVmPayload_getVmInstanceSecret("c-payload", 9, secret, sizeof(secret));
    AVmPayload_getVmInstanceSecret("c-payload", 9, again, sizeof(again));
    AVmPayload_getVmInstanceSecret("other", 5, other, sizeof(other));
    check(memcmp(secret, again, 32) == 0 && memcmp(secret, other, 32) != 0,
          "AVmPayload_getVmInstanceSecret is stable per identifier");
    printf("c-payload: secret fingerprint %02x%02x%02x%02x\n", secret[0], secret[1], secret[2],
           secret[3]);

    size_t chain = AVmPayload_getDiceAttestationChain(NULL, 0);
    uint8_t* chain_bytes = malloc(chain);
    check(chain > 0 && chain_bytes != NULL &&
              AVmPayload_getDiceAttestationChain(chain_bytes, chain) == chain &&
              (chain_bytes[0] & 0xe0) == 0x80,
          "AVmPayload_getDiceAttestationChain is a CBOR array");
    free(chain_bytes);
    uint8_t cdi[32];
    check(AVmPayload_getDiceAttestationCdi(cdi, sizeof(cdi)) == 32,
          "AVmPayload_getDiceAttestationCdi is 32 bytes");

    AVmAttestationResult* result = NULL;
    AVmAttestationStatus status = AVmPayload_requestAttestation("challenge", 9, &result);
    printf("c-payload: attestation: %s\n", AVmAttestationStatus_toString(status));
    check(status == ATTESTATION_ERROR_UNSUPPORTED && result == NULL,
          "AVmPayload_requestAttestation is unsupported here");
    uint8_t too_long[65] = {0};
    check(AVmPayload_requestAttestation(too_long, sizeof(too_long), &result) ==
              ATTESTATION_ERROR_INVALID_CHALLENGE,
          "a 65-byte challenge is invalid");
    AVmAttestationResult_free(NULL);

    const char* storage = AVmPayload_getEncryptedStoragePath();
    if (storage != NULL) {
        int boots = count_boot(storage);
        check(boots > 0, "the encrypted storage keeps a counter");
        printf("c-payload: boot %d\n", boots);
    } else {
        printf("c-payload: no encrypted storage\n");
    }

    AVmPayload_notifyPayloadReady();
    check(1, "AVmPayload_notifyPayloadReady");
    printf("c-payload: %d failures\n", failures);
    return failures == 0 ? 0 : 1;
}

/*
 * The hello app's payload, as AOSP builds payloads: libhello.so exports AVmPayload_main and
 * uses libgreeting.so, a second library from the same APK. It greets, counts its boots in the
 * VM's encrypted storage and prints them with a fingerprint of its VM instance secret (sealed
 * to this instance), then serves IHello (examples/hello-app/src/lib.rs has the interface) to
 * the host on vsock port 5678 with AVmPayload_runVsockRpcServer, telling the host it is ready
 * once it listens. quit() ends the payload with status 0 once answered.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <linux/vm_sockets.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <android/binder_ibinder.h>
#include <vm_payload.h>

#include "greeting.h"

#define HELLO_PORT 5678
#define DESCRIPTOR "com.example.microdroid.hello.IHello"
enum { GREET = FIRST_CALL_TRANSACTION, ECHO, QUIT };

static unsigned local_cid(void) {
    unsigned cid = 0;
    int fd = open("/dev/vsock", O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        if (ioctl(fd, IOCTL_VM_SOCKETS_GET_LOCAL_CID, &cid) != 0) cid = 0;
        close(fd);
    }
    return cid;
}

/* The boot counter in the encrypted storage: read, increment, write back. */
static long count_boot(const char* storage) {
    char path[256];
    snprintf(path, sizeof(path), "%s/boot_count", storage);
    long boots = 0;
    FILE* f = fopen(path, "r");
    if (f != NULL) {
        if (fscanf(f, "%ld", &boots) != 1) boots = 0;
        fclose(f);
    }
    boots++;
    f = fopen(path, "w");
    if (f == NULL) return -1;
    fprintf(f, "%ld\n", boots);
    fflush(f);
    fsync(fileno(f));
    fclose(f);
    return boots;
}

/* NDK-style allocators: the parcel asks for a buffer of the length it needs. */
static bool string_allocator(void* data, int32_t length, char** buffer) {
    char** out = data;
    if (length < 0) {
        *out = NULL;
        *buffer = NULL;
        return true;
    }
    *out = malloc((size_t)length);
    *buffer = *out;
    return *out != NULL;
}

struct bytes {
    int8_t* data;
    int32_t length;
};

static bool bytes_allocator(void* data, int32_t length, int8_t** buffer) {
    struct bytes* out = data;
    out->length = length;
    out->data = length > 0 ? malloc((size_t)length) : NULL;
    *buffer = out->data;
    return length <= 0 || out->data != NULL;
}

static void* exit_soon(void* arg) {
    (void)arg;
    usleep(100 * 1000); /* the reply to quit() goes out first */
    fflush(stdout);
    _exit(0);
}

static binder_status_t on_transact(AIBinder* binder, transaction_code_t code, const AParcel* in,
                                   AParcel* out) {
    (void)binder;
    AStatus* ok = AStatus_newOk();
    binder_status_t status = STATUS_OK;
    switch (code) {
        case GREET: {
            char* name = NULL;
            status = AParcel_readString(in, &name, string_allocator);
            if (status != STATUS_OK) break;
            char greeting[512];
            greeting_compose(greeting, sizeof(greeting), name ? name : "", local_cid());
            free(name);
            AParcel_writeStatusHeader(out, ok);
            status = AParcel_writeString(out, greeting, (int32_t)strlen(greeting));
            break;
        }
        case ECHO: {
            struct bytes data = {NULL, -1};
            status = AParcel_readByteArray(in, &data, bytes_allocator);
            if (status != STATUS_OK) break;
            AParcel_writeStatusHeader(out, ok);
            status = AParcel_writeByteArray(out, data.data, data.length);
            free(data.data);
            break;
        }
        case QUIT: {
            status = AParcel_writeStatusHeader(out, ok);
            pthread_t thread;
            if (pthread_create(&thread, NULL, exit_soon, NULL) == 0) pthread_detach(thread);
            break;
        }
        default:
            status = STATUS_UNKNOWN_TRANSACTION;
    }
    AStatus_delete(ok);
    return status;
}

static void* on_create(void* args) { return args; }
static void on_destroy(void* data) { (void)data; }

static void on_ready(void* param) {
    (void)param;
    printf("serving IHello on vsock port %d\n", HELLO_PORT);
    fflush(stdout);
    AVmPayload_notifyPayloadReady();
}

int AVmPayload_main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    printf("Hello from Microdroid\n");
    uint8_t secret[32];
    AVmPayload_getVmInstanceSecret("hello-app fingerprint", 21, secret, sizeof(secret));
    char fingerprint[9];
    snprintf(fingerprint, sizeof(fingerprint), "%02x%02x%02x%02x", secret[0], secret[1],
             secret[2], secret[3]);
    const char* storage = AVmPayload_getEncryptedStoragePath();
    if (storage != NULL) {
        long boots = count_boot(storage);
        if (boots < 0) {
            printf("cannot count boots in %s\n", storage);
            return 1;
        }
        printf("boot %ld, secret fingerprint %s\n", boots, fingerprint);
    } else {
        printf("no encrypted storage; secret fingerprint %s\n", fingerprint);
    }
    AIBinder_Class* clazz = AIBinder_Class_define(DESCRIPTOR, on_create, on_destroy, on_transact);
    AIBinder* service = AIBinder_new(clazz, NULL);
    AVmPayload_runVsockRpcServer(service, HELLO_PORT, on_ready, NULL);
}

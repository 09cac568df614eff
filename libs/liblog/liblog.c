/*
 * liblog.so for Microdroid payloads: <android/log.h> on top of logd's writer socket.
 *
 * One datagram per message to /dev/socket/logdw, in logd's format (libs/android_log):
 * {log id u8, tid u16, sec u32, nsec u32} packed little-endian, then priority u8, tag\0,
 * message\0; logd takes the pid and uid from the socket's credentials. The message is cut to
 * what one record holds (4068 bytes of payload). C, because printf-style variadic functions
 * are the API.
 */
#define _GNU_SOURCE
#include <android/log.h>

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LOGDW_PATH "/dev/socket/logdw"
#define MAX_PAYLOAD 4068
#define FORMAT_BUFFER 1024

static int logd_socket = -1;
static pthread_mutex_t socket_lock = PTHREAD_MUTEX_INITIALIZER;

static int send_record(int buf_id, int prio, const char* tag, const char* text) {
    if (buf_id == LOG_ID_DEFAULT) buf_id = LOG_ID_MAIN;
    if (buf_id < LOG_ID_MIN || buf_id >= LOG_ID_MAX) return -EINVAL;
    if (tag == NULL) tag = "";
    if (text == NULL) text = "";
    if (prio < ANDROID_LOG_VERBOSE) prio = ANDROID_LOG_INFO;

    uint8_t header[11];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint16_t tid = (uint16_t)gettid();
    uint32_t sec = (uint32_t)now.tv_sec, nsec = (uint32_t)now.tv_nsec;
    header[0] = (uint8_t)buf_id;
    memcpy(header + 1, &tid, 2); /* x86_64: little-endian already */
    memcpy(header + 3, &sec, 4);
    memcpy(header + 7, &nsec, 4);
    uint8_t priority = (uint8_t)prio;

    size_t tag_len = strnlen(tag, MAX_PAYLOAD / 2);
    size_t room = MAX_PAYLOAD - 1 - (tag_len + 1) - 1;
    size_t text_len = strnlen(text, room);
    static const char nul = 0;
    struct iovec iov[6] = {
        {header, sizeof(header)}, {&priority, 1},
        {(void*)tag, tag_len},    {(void*)&nul, 1},
        {(void*)text, text_len},  {(void*)&nul, 1},
    };
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, LOGDW_PATH, sizeof(LOGDW_PATH));
    struct msghdr msg = {
        .msg_name = &addr, .msg_namelen = sizeof(addr), .msg_iov = iov, .msg_iovlen = 6};

    pthread_mutex_lock(&socket_lock);
    if (logd_socket < 0) logd_socket = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd = logd_socket;
    pthread_mutex_unlock(&socket_lock);
    if (fd < 0) return -errno;
    if (sendmsg(fd, &msg, MSG_NOSIGNAL) < 0) return -errno;
    return 1;
}

int __android_log_buf_write(int buf_id, int prio, const char* tag, const char* text) {
    return send_record(buf_id, prio, tag, text);
}

int __android_log_write(int prio, const char* tag, const char* text) {
    return send_record(LOG_ID_MAIN, prio, tag, text);
}

int __android_log_vprint(int prio, const char* tag, const char* fmt, va_list ap) {
    char buf[FORMAT_BUFFER];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    return send_record(LOG_ID_MAIN, prio, tag, buf);
}

int __android_log_print(int prio, const char* tag, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int r = __android_log_vprint(prio, tag, fmt, ap);
    va_end(ap);
    return r;
}

int __android_log_buf_print(int buf_id, int prio, const char* tag, const char* fmt, ...) {
    char buf[FORMAT_BUFFER];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return send_record(buf_id, prio, tag, buf);
}

void __android_log_assert(const char* cond, const char* tag, const char* fmt, ...) {
    char buf[FORMAT_BUFFER];
    if (fmt != NULL) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
    } else if (cond != NULL) {
        snprintf(buf, sizeof(buf), "Assertion failed: %s", cond);
    } else {
        snprintf(buf, sizeof(buf), "Unspecified assertion failed");
    }
    send_record(LOG_ID_CRASH, ANDROID_LOG_FATAL, tag, buf);
    abort();
}

/* libgreeting.so: the second library of the hello app's payload, shipped in the same APK
 * (lib/x86_64/) and found there by the launcher's loader. */
#pragma once

#include <stddef.h>

/* Writes "Hello, <name>! (from the VM, CID <cid>)" into buf (NUL-terminated, truncated to
 * size); returns the length it needed. */
size_t greeting_compose(char* buf, size_t size, const char* name, unsigned cid);

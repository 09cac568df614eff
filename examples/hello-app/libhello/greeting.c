#include "greeting.h"

#include <stdio.h>

size_t greeting_compose(char* buf, size_t size, const char* name, unsigned cid) {
    int n = snprintf(buf, size, "Hello, %s! (from the VM, CID %u)", name, cid);
    return n < 0 ? 0 : (size_t)n;
}

// mremap for BufferPool (it is variadic in C, so Swift cannot call it directly).
#if defined(__linux__)
#define _GNU_SOURCE
#include <sys/mman.h>
#endif
#include <stddef.h>
#include "CKernels.h"

void *maskdm_remap(void *base, size_t old_bytes, size_t new_bytes, void *destination) {
#if defined(__linux__)
    void *moved = destination == NULL
        ? mremap(base, old_bytes, new_bytes, 0)
        : mremap(base, old_bytes, new_bytes, MREMAP_MAYMOVE | MREMAP_FIXED, destination);
    return moved == MAP_FAILED ? NULL : moved;
#else
    (void)base; (void)old_bytes; (void)new_bytes; (void)destination;
    return NULL;
#endif
}

// Resizing a buffer's mapping for BufferPool: the pages it keeps stay populated, so a pool that
// recycles a cached buffer for a request of another size touches only the pages it adds.
#if defined(__linux__)
#define _GNU_SOURCE
#include <sys/mman.h>
#endif
#include <stddef.h>
#include <stdint.h>
#include "CKernels.h"

void *maskdm_resize_mapping(void *base, size_t old_bytes, size_t new_bytes, size_t alignment) {
#if defined(__linux__)
    if (new_bytes <= old_bytes) {                       // shrink in place: drop the tail
        if (new_bytes < old_bytes && munmap((char *)base + new_bytes, old_bytes - new_bytes) != 0) return NULL;
        return base;
    }
    void *grown = mremap(base, old_bytes, new_bytes, 0); // grow in place when the next pages are free
    if (grown != MAP_FAILED) return grown;
    // Move to a fresh aligned range: reserve it, then move the pages (no copy) over its start.
    size_t span = new_bytes + alignment;
    char *raw = mmap(NULL, span, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) return NULL;
    uintptr_t address = (uintptr_t)raw;
    char *aligned = (char *)((address + alignment - 1) & ~(uintptr_t)(alignment - 1));
    void *moved = mremap(base, old_bytes, new_bytes, MREMAP_MAYMOVE | MREMAP_FIXED, aligned);
    if (moved == MAP_FAILED) {
        munmap(raw, span);
        return NULL;
    }
    size_t head = (size_t)(aligned - raw), tail = span - head - new_bytes;
    if (head > 0) munmap(raw, head);
    if (tail > 0) munmap(aligned + new_bytes, tail);
    return moved;
#else
    (void)base; (void)old_bytes; (void)new_bytes; (void)alignment;
    return NULL;
#endif
}

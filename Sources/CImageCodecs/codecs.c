// Shared helpers of the PNG and JPEG codecs.
#include <stdlib.h>
#include "CImageCodecs.h"
#include "codecs_internal.h"

void mdm_free(void *pointer) { free(pointer); }

int mdm_pixel_bytes(size_t width, size_t height, size_t channels, size_t *bytes) {
    if (width == 0 || height == 0 || channels == 0) return -1;
    if (width > MDM_MAX_PIXEL_BYTES / height) return -1;
    if (width * height > MDM_MAX_PIXEL_BYTES / channels) return -1;
    *bytes = width * height * channels;
    return 0;
}

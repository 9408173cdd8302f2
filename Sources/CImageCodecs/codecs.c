// Shared helpers of the PNG and JPEG codecs.
#include <stdio.h>
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

int mdm_over_pixel_limit(size_t width, size_t height, size_t max_pixels, char *message) {
    if (height == 0 || width <= max_pixels / height) return 0;
    snprintf(message, MDM_MESSAGE_SIZE, "image is %zu x %zu pixels, more than the limit of %zu pixels", width, height, max_pixels);
    return 1;
}

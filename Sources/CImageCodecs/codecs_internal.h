// Internal helpers shared by png_codec.c and jpeg_codec.c (not part of the module's API).
#ifndef MASKDM_CODECS_INTERNAL_H
#define MASKDM_CODECS_INTERNAL_H
#include <stddef.h>

// Largest decoded or encoded pixel buffer accepted (1 GiB): guards against hostile headers.
#define MDM_MAX_PIXEL_BYTES ((size_t)1 << 30)

// 1 (and a message naming both numbers in `message`, MDM_MESSAGE_SIZE bytes) when width x height
// exceeds max_pixels; 0 otherwise.
int mdm_over_pixel_limit(size_t width, size_t height, size_t max_pixels, char *message);

// width * height * channels into *bytes; -1 when zero or larger than MDM_MAX_PIXEL_BYTES.
int mdm_pixel_bytes(size_t width, size_t height, size_t channels, size_t *bytes);

#endif

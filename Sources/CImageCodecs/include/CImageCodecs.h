// setjmp-guarded PNG (libpng) and JPEG (libjpeg-turbo) codecs working on memory buffers.
//
// Every function returns 0 on success and -1 on failure; on failure `message` holds the
// library's error text. No input, however corrupt, terminates the process: libpng's and
// libjpeg's fatal-error handlers are replaced by ones that copy the message and longjmp back.
#ifndef MASKDM_CIMAGECODECS_H
#define MASKDM_CIMAGECODECS_H
#include <stddef.h>

/// Size of the error-message buffers below.
#define MDM_MESSAGE_SIZE 256

/// A decoded image: 8-bit interleaved pixels, row-major, `channels` of 1 (grey), 3 (RGB) or 4 (RGBA).
typedef struct {
    unsigned char *pixels;           // malloc'd (height * width * channels bytes); release with mdm_free
    int width;
    int height;
    int channels;
    char message[MDM_MESSAGE_SIZE];  // error text when the call failed
} mdm_decoded_image;

/// An encoded file in memory.
typedef struct {
    unsigned char *bytes;            // malloc'd; release with mdm_free
    size_t size;
    char message[MDM_MESSAGE_SIZE];  // error text when the call failed
} mdm_encoded_data;

/// Decodes a PNG of any colour type and bit depth. Grey stays 1 channel; grey+alpha and any
/// transparency (tRNS) become RGBA; palette and RGB become RGB; 16-bit samples are scaled to 8 bits.
/// No gamma conversion is applied (as PIL). An image whose header claims more than `max_pixels`
/// pixels (width x height) is refused before any pixel memory is allocated.
int mdm_png_decode(const unsigned char *data, size_t size, size_t max_pixels, mdm_decoded_image *out);

/// Decodes a baseline or progressive JPEG: greyscale gives 1 channel, CMYK/YCCK is converted to
/// RGB (Adobe-inverted CMYK is recognised), everything else decodes to RGB. A file that ends
/// before its image data is complete is an error. More than `max_pixels` pixels in the header is
/// refused before libjpeg allocates anything for the image.
int mdm_jpeg_decode(const unsigned char *data, size_t size, size_t max_pixels, mdm_decoded_image *out);

/// Encodes 8-bit pixels with 1, 2, 3 or 4 channels (grey, grey+alpha, RGB, RGBA) as a PNG.
int mdm_png_encode(const unsigned char *pixels, int width, int height, int channels,
                   mdm_encoded_data *out);

/// Encodes 8-bit pixels with 1 or 3 channels (grey, RGB) as a JPEG of the given quality (1...100).
int mdm_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                    mdm_encoded_data *out);

/// Releases a buffer returned by the functions above (NULL is allowed).
void mdm_free(void *pointer);

#endif

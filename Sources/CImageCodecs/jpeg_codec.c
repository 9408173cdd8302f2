// JPEG decode/encode with libjpeg(-turbo). error_exit is replaced by one that copies the message
// and longjmps back; emit_message drops warnings except "Premature end of JPEG file", which is
// promoted to an error (libjpeg would otherwise pad a truncated scan with grey and succeed).
// State that must survive the longjmp lives in a heap-allocated context.
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jpeglib.h>
#include <jerror.h>
#include "CImageCodecs.h"
#include "codecs_internal.h"

typedef struct {
    struct jpeg_error_mgr base;    // first, so a j_common_ptr's err can be cast to this type
    jmp_buf jump;
    char *message;                 // points into the caller's result struct
} error_context;

typedef struct {
    struct jpeg_destination_mgr base;  // first, so cinfo->dest can be cast to this type
    unsigned char *buffer;
    size_t capacity, size;
} growing_destination;

typedef struct {
    struct jpeg_decompress_struct cinfo;
    error_context error;
    unsigned char *pixels;
    unsigned char *row;
} decode_context;

typedef struct {
    struct jpeg_compress_struct cinfo;
    error_context error;
    growing_destination destination;
} encode_context;

static void on_error(j_common_ptr cinfo) {
    error_context *error = (error_context *)cinfo->err;
    char text[JMSG_LENGTH_MAX];
    (*cinfo->err->format_message)(cinfo, text);
    snprintf(error->message, MDM_MESSAGE_SIZE, "%s", text);
    longjmp(error->jump, 1);
}

static void on_message(j_common_ptr cinfo, int level) {
    if (level < 0 && cinfo->err->msg_code == JWRN_JPEG_EOF) on_error(cinfo);
    if (level < 0) cinfo->err->num_warnings++;
}

// Fails the current call with `text` (the longjmp target is the caller's setjmp).
static void fail(j_common_ptr cinfo, const char *text) {
    error_context *error = (error_context *)cinfo->err;
    snprintf(error->message, MDM_MESSAGE_SIZE, "%s", text);
    longjmp(error->jump, 1);
}

static void install_error_handler(error_context *error, char *message) {
    jpeg_std_error(&error->base);
    error->base.error_exit = on_error;
    error->base.emit_message = on_message;
    error->message = message;
}

int mdm_jpeg_decode(const unsigned char *data, size_t size, size_t max_pixels, mdm_decoded_image *out) {
    memset(out, 0, sizeof *out);
    if (data == NULL || size < 3 || data[0] != 0xFF || data[1] != 0xD8) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "not a JPEG file (no SOI marker)");
        return -1;
    }
    decode_context *ctx = calloc(1, sizeof(decode_context));
    if (ctx == NULL) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "out of memory");
        return -1;
    }
    ctx->cinfo.err = &ctx->error.base;
    install_error_handler(&ctx->error, out->message);
    if (setjmp(ctx->error.jump)) {
        jpeg_destroy_decompress(&ctx->cinfo);
        free(ctx->pixels);
        free(ctx->row);
        free(ctx);
        return -1;
    }
    jpeg_create_decompress(&ctx->cinfo);
    jpeg_mem_src(&ctx->cinfo, data, (unsigned long)size);
    jpeg_read_header(&ctx->cinfo, TRUE);
    char limit[MDM_MESSAGE_SIZE];
    if (mdm_over_pixel_limit(ctx->cinfo.image_width, ctx->cinfo.image_height, max_pixels, limit))
        fail((j_common_ptr)&ctx->cinfo, limit);
    size_t header_bytes = 0;   // checked before libjpeg allocates whole-image buffers (progressive)
    if (mdm_pixel_bytes(ctx->cinfo.image_width, ctx->cinfo.image_height,
                        (size_t)(ctx->cinfo.num_components > 0 ? ctx->cinfo.num_components : 1), &header_bytes) != 0)
        fail((j_common_ptr)&ctx->cinfo, "image too large (more than 1 GiB of pixels)");
    J_COLOR_SPACE source = ctx->cinfo.jpeg_color_space;
    int cmyk = source == JCS_CMYK || source == JCS_YCCK;
    ctx->cinfo.out_color_space = source == JCS_GRAYSCALE ? JCS_GRAYSCALE : (cmyk ? JCS_CMYK : JCS_RGB);
    jpeg_start_decompress(&ctx->cinfo);
    size_t width = ctx->cinfo.output_width, height = ctx->cinfo.output_height;
    size_t components = (size_t)ctx->cinfo.output_components;
    size_t channels = cmyk ? 3 : components;
    size_t total = 0, row_total = 0;
    if (channels != 1 && channels != 3) ERREXIT(&ctx->cinfo, JERR_CONVERSION_NOTIMPL);
    if (mdm_pixel_bytes(width, height, channels, &total) != 0 ||
        mdm_pixel_bytes(width, 1, components, &row_total) != 0)
        fail((j_common_ptr)&ctx->cinfo, "image too large (more than 1 GiB of pixels)");
    ctx->pixels = malloc(total);
    ctx->row = malloc(row_total);
    if (ctx->pixels == NULL || ctx->row == NULL) ERREXIT1(&ctx->cinfo, JERR_OUT_OF_MEMORY, 1);
    int inverted = ctx->cinfo.saw_Adobe_marker;   // Adobe CMYK stores 255 - ink
    while (ctx->cinfo.output_scanline < ctx->cinfo.output_height) {
        size_t y = ctx->cinfo.output_scanline;
        unsigned char *target = ctx->pixels + y * width * channels;
        JSAMPROW row = cmyk ? ctx->row : target;
        if (jpeg_read_scanlines(&ctx->cinfo, &row, 1) != 1) ERREXIT(&ctx->cinfo, JERR_INPUT_EOF);
        if (!cmyk) continue;
        for (size_t x = 0; x < width; x++) {
            const unsigned char *p = ctx->row + 4 * x;
            unsigned k = inverted ? p[3] : 255u - p[3];
            for (int c = 0; c < 3; c++) {
                unsigned v = inverted ? p[c] : 255u - p[c];
                target[3 * x + (size_t)c] = (unsigned char)((v * k + 127u) / 255u);
            }
        }
    }
    jpeg_finish_decompress(&ctx->cinfo);
    out->pixels = ctx->pixels;
    out->width = (int)width;
    out->height = (int)height;
    out->channels = (int)channels;
    jpeg_destroy_decompress(&ctx->cinfo);
    free(ctx->row);
    free(ctx);
    return 0;
}

static void destination_init(j_compress_ptr cinfo) {
    growing_destination *d = (growing_destination *)cinfo->dest;
    d->base.next_output_byte = d->buffer;
    d->base.free_in_buffer = d->capacity;
}

static boolean destination_empty(j_compress_ptr cinfo) {
    // Called when the whole buffer is full (free_in_buffer is to be ignored).
    growing_destination *d = (growing_destination *)cinfo->dest;
    size_t capacity = d->capacity * 2;
    unsigned char *grown = capacity > d->capacity ? realloc(d->buffer, capacity) : NULL;
    if (grown == NULL) ERREXIT1(cinfo, JERR_OUT_OF_MEMORY, 2);
    d->base.next_output_byte = grown + d->capacity;
    d->base.free_in_buffer = capacity - d->capacity;
    d->buffer = grown;
    d->capacity = capacity;
    return TRUE;
}

static void destination_term(j_compress_ptr cinfo) {
    growing_destination *d = (growing_destination *)cinfo->dest;
    d->size = d->capacity - d->base.free_in_buffer;
}

int mdm_jpeg_encode(const unsigned char *pixels, int width, int height, int channels, int quality,
                    mdm_encoded_data *out) {
    memset(out, 0, sizeof *out);
    size_t total = 0;
    if (pixels == NULL || (channels != 1 && channels != 3) || width <= 0 || height <= 0 ||
        width > JPEG_MAX_DIMENSION || height > JPEG_MAX_DIMENSION ||
        mdm_pixel_bytes((size_t)width, (size_t)height, (size_t)channels, &total) != 0) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "cannot encode a %dx%d image with %d channels as JPEG",
                 width, height, channels);
        return -1;
    }
    encode_context *ctx = calloc(1, sizeof(encode_context));
    unsigned char *buffer = malloc(4096);
    if (ctx == NULL || buffer == NULL) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "out of memory");
        free(ctx);
        free(buffer);
        return -1;
    }
    ctx->destination.buffer = buffer;
    ctx->destination.capacity = 4096;
    ctx->destination.base.init_destination = destination_init;
    ctx->destination.base.empty_output_buffer = destination_empty;
    ctx->destination.base.term_destination = destination_term;
    ctx->cinfo.err = &ctx->error.base;
    install_error_handler(&ctx->error, out->message);
    if (setjmp(ctx->error.jump)) {
        jpeg_destroy_compress(&ctx->cinfo);
        free(ctx->destination.buffer);
        free(ctx);
        return -1;
    }
    jpeg_create_compress(&ctx->cinfo);
    ctx->cinfo.dest = &ctx->destination.base;
    ctx->cinfo.image_width = (JDIMENSION)width;
    ctx->cinfo.image_height = (JDIMENSION)height;
    ctx->cinfo.input_components = channels;
    ctx->cinfo.in_color_space = channels == 1 ? JCS_GRAYSCALE : JCS_RGB;
    jpeg_set_defaults(&ctx->cinfo);
    jpeg_set_quality(&ctx->cinfo, quality < 1 ? 1 : (quality > 100 ? 100 : quality), TRUE);
    jpeg_start_compress(&ctx->cinfo, TRUE);
    size_t row_bytes = (size_t)width * (size_t)channels;
    while (ctx->cinfo.next_scanline < ctx->cinfo.image_height) {
        JSAMPROW row = (JSAMPROW)(pixels + (size_t)ctx->cinfo.next_scanline * row_bytes);
        jpeg_write_scanlines(&ctx->cinfo, &row, 1);
    }
    jpeg_finish_compress(&ctx->cinfo);
    out->bytes = ctx->destination.buffer;
    out->size = ctx->destination.size;
    jpeg_destroy_compress(&ctx->cinfo);
    free(ctx);
    return 0;
}

// PNG decode/encode with libpng's low-level API. libpng reports fatal errors through on_error,
// which copies the message and longjmps back into the calling function; warnings are dropped.
// All state that must survive the longjmp lives in a heap-allocated context (not in automatic
// variables, whose values would be indeterminate after longjmp).
#include <png.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "CImageCodecs.h"
#include "codecs_internal.h"

typedef struct {
    jmp_buf jump;
    char *message;                 // points into the caller's result struct
    const unsigned char *data;     // reading: the whole file
    size_t size, offset;
    unsigned char *pixels;         // reading: the decoded image
    png_bytep *rows;
    unsigned char *out;            // writing: the growing output buffer
    size_t out_size, out_capacity;
} png_context;

static void on_error(png_structp png, png_const_charp text) {
    png_context *ctx = png_get_error_ptr(png);
    snprintf(ctx->message, MDM_MESSAGE_SIZE, "%s", text);
    longjmp(ctx->jump, 1);
}

static void on_warning(png_structp png, png_const_charp text) {
    (void)png;
    (void)text;
}

static void read_bytes(png_structp png, png_bytep destination, size_t count) {
    png_context *ctx = png_get_io_ptr(png);
    if (count > ctx->size - ctx->offset) png_error(png, "unexpected end of file (truncated PNG)");
    memcpy(destination, ctx->data + ctx->offset, count);
    ctx->offset += count;
}

static void write_bytes(png_structp png, png_bytep source, size_t count) {
    png_context *ctx = png_get_io_ptr(png);
    if (count > ctx->out_capacity - ctx->out_size) {
        size_t capacity = ctx->out_capacity < 4096 ? 4096 : ctx->out_capacity;
        while (capacity - ctx->out_size < count) {
            if (capacity > ((size_t)1 << 40)) png_error(png, "output too large");
            capacity *= 2;
        }
        unsigned char *grown = realloc(ctx->out, capacity);
        if (grown == NULL) png_error(png, "out of memory");
        ctx->out = grown;
        ctx->out_capacity = capacity;
    }
    memcpy(ctx->out + ctx->out_size, source, count);
    ctx->out_size += count;
}

static void flush_bytes(png_structp png) { (void)png; }

static png_context *new_context(char *message) {
    png_context *ctx = calloc(1, sizeof(png_context));
    if (ctx == NULL) snprintf(message, MDM_MESSAGE_SIZE, "out of memory");
    else ctx->message = message;
    return ctx;
}

int mdm_png_decode(const unsigned char *data, size_t size, size_t max_pixels, mdm_decoded_image *out) {
    memset(out, 0, sizeof *out);
    if (data == NULL || size < 8 || png_sig_cmp(data, 0, 8) != 0) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "not a PNG file (bad signature)");
        return -1;
    }
    png_context *ctx = new_context(out->message);
    if (ctx == NULL) return -1;
    ctx->data = data;
    ctx->size = size;
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
    png_infop info = png == NULL ? NULL : png_create_info_struct(png);
    if (info == NULL) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "cannot create libpng read structures");
        png_destroy_read_struct(&png, NULL, NULL);
        free(ctx);
        return -1;
    }
    if (setjmp(ctx->jump)) {
        png_destroy_read_struct(&png, &info, NULL);
        free(ctx->pixels);
        free(ctx->rows);
        free(ctx);
        return -1;
    }
    png_set_read_fn(png, ctx, read_bytes);
    png_read_info(png, info);
    png_uint_32 width = 0, height = 0;
    int depth = 0, color = 0;
    png_get_IHDR(png, info, &width, &height, &depth, &color, NULL, NULL, NULL);
    char limit[MDM_MESSAGE_SIZE];
    if (mdm_over_pixel_limit(width, height, max_pixels, limit)) png_error(png, limit);
    size_t worst = 0;   // 4 channels after expansion
    if (mdm_pixel_bytes(width, height, 4, &worst) != 0) png_error(png, "image too large (more than 1 GiB of pixels)");
    int transparency = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
    // 16-bit samples keep their high byte, as PIL (the reference's loader) reads them.
    if (depth == 16) png_set_strip_16(png);
    if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
    if (color == PNG_COLOR_TYPE_GRAY && depth < 8) png_set_expand_gray_1_2_4_to_8(png);
    if (transparency) png_set_tRNS_to_alpha(png);
    if ((color & PNG_COLOR_MASK_COLOR) == 0 && ((color & PNG_COLOR_MASK_ALPHA) != 0 || transparency))
        png_set_gray_to_rgb(png);
    png_set_interlace_handling(png);
    png_read_update_info(png, info);
    int channels = png_get_channels(png, info);
    size_t row_bytes = png_get_rowbytes(png, info);
    size_t total = 0;
    if (channels != 1 && channels != 3 && channels != 4) png_error(png, "unsupported channel layout");
    if (mdm_pixel_bytes(width, height, (size_t)channels, &total) != 0) png_error(png, "image too large (more than 1 GiB of pixels)");
    if (row_bytes != (size_t)width * (size_t)channels) png_error(png, "unexpected row size");
    ctx->pixels = malloc(total);
    ctx->rows = malloc(sizeof(png_bytep) * height);
    if (ctx->pixels == NULL || ctx->rows == NULL) png_error(png, "out of memory");
    for (png_uint_32 y = 0; y < height; y++) ctx->rows[y] = ctx->pixels + (size_t)y * row_bytes;
    png_read_image(png, ctx->rows);
    png_read_end(png, NULL);
    out->pixels = ctx->pixels;
    out->width = (int)width;
    out->height = (int)height;
    out->channels = channels;
    png_destroy_read_struct(&png, &info, NULL);
    free(ctx->rows);
    free(ctx);
    return 0;
}

int mdm_png_encode(const unsigned char *pixels, int width, int height, int channels,
                   mdm_encoded_data *out) {
    memset(out, 0, sizeof *out);
    static const int types[5] = {-1, PNG_COLOR_TYPE_GRAY, PNG_COLOR_TYPE_GRAY_ALPHA,
                                 PNG_COLOR_TYPE_RGB, PNG_COLOR_TYPE_RGB_ALPHA};
    size_t total = 0;
    if (pixels == NULL || channels < 1 || channels > 4 || width <= 0 || height <= 0 ||
        mdm_pixel_bytes((size_t)width, (size_t)height, (size_t)channels, &total) != 0) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "cannot encode a %dx%d image with %d channels as PNG",
                 width, height, channels);
        return -1;
    }
    png_context *ctx = new_context(out->message);
    if (ctx == NULL) return -1;
    png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, ctx, on_error, on_warning);
    png_infop info = png == NULL ? NULL : png_create_info_struct(png);
    if (info == NULL) {
        snprintf(out->message, MDM_MESSAGE_SIZE, "cannot create libpng write structures");
        png_destroy_write_struct(&png, NULL);
        free(ctx);
        return -1;
    }
    if (setjmp(ctx->jump)) {
        png_destroy_write_struct(&png, &info);
        free(ctx->out);
        free(ctx);
        return -1;
    }
    png_set_write_fn(png, ctx, write_bytes, flush_bytes);
    png_set_IHDR(png, info, (png_uint_32)width, (png_uint_32)height, 8, types[channels],
                 PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
    png_write_info(png, info);
    size_t row_bytes = (size_t)width * (size_t)channels;
    for (int y = 0; y < height; y++) png_write_row(png, pixels + (size_t)y * row_bytes);
    png_write_end(png, NULL);
    out->bytes = ctx->out;
    out->size = ctx->out_size;
    png_destroy_write_struct(&png, &info);
    free(ctx);
    return 0;
}

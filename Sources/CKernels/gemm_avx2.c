// AVX2 + FMA GEMM kernel: 6x16 micro-tile (12 ymm accumulators, 2 B vectors, 1 broadcast).
// Compiled with target attributes only; gemm_driver.c calls it after a run-time CPU check.
#include <immintrin.h>
#include <stdint.h>
#include "gemm_internal.h"
#include "vecmath_avx2.h"

#define MK_NAME mdm_microkernel_avx2
#define MK_TARGET "avx2,fma"
#define MK_MR MDM_AVX2_MR
#define MK_W 8
#define MK_VEC __m256
#define MK_ZERO() _mm256_setzero_ps()
#define MK_LOAD(p) _mm256_load_ps(p)
#define MK_LOADU(p) _mm256_loadu_ps(p)
#define MK_STORE(p, v) _mm256_store_ps(p, v)
#define MK_STOREU(p, v) _mm256_storeu_ps(p, v)
#define MK_SET1(x) _mm256_set1_ps(x)
#define MK_FMA(a, b, c) _mm256_fmadd_ps(a, b, c)
#define MK_MUL(a, b) _mm256_mul_ps(a, b)
#include "gemm_microkernel_template.h"

/// Stores the first `w` (1 to 8) floats of v.
AVX2 static inline void store_w(float *d, __m256 v, int w) {
    if (w == 8) { _mm256_storeu_ps(d, v); return; }
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    if (w == 6) {
        _mm_storeu_ps(d, lo);
        _mm_storel_pi((__m64 *)(d + 4), hi);
        return;
    }
    _Alignas(32) float t[8];
    _mm256_store_ps(t, v);
    for (int i = 0; i < w; i++) d[i] = t[i];
}

/// Copies `w` contiguous floats.
AVX2 static inline void copy_w(float *d, const float *s, int w) {
    if (w == 6) {  // the AVX2 kernel's A panels: one 4-wide and one 2-wide move
        _mm_storeu_ps(d, _mm_loadu_ps(s));
        _mm_storel_pi((__m64 *)(d + 4), _mm_loadl_pi(_mm_setzero_ps(), (const __m64 *)(s + 4)));
        return;
    }
    int l = 0;
    for (; l + 8 <= w; l += 8) _mm256_storeu_ps(d + l, _mm256_loadu_ps(s + l));
    if (l + 4 <= w) { _mm_storeu_ps(d + l, _mm_loadu_ps(s + l)); l += 4; }
    for (; l < w; l++) d[l] = s[l];
}

/// The lanes below `count` (any int; <= 0: none, >= 8: all) as a VMASKMOVPS mask.
AVX2 static inline __m256i lanes_below(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Vectorised packer (see mdm_packer), also used by the AVX-512 kernel: contiguous lines are
/// copied (a ragged panel's by masked loads, its missing lines 0), contiguous depth is transposed
/// 8x8 at a time (a ragged panel's missing lines as zero rows); other layouts take the generic path.
AVX2 void mdm_pack_avx2(const float *src, long ls, long ps, int n, int kc, int w, float *dst) {
    if (ls == 1 && n >= w) {
        // Contiguous lines: walk each depth row once across all full panels (reads stay
        // sequential), then leave the ragged last panel to the loop below.
        int full = n / w;
        for (int p = 0; p < kc; p++) {
            const float *sp = src + (long)p * ps;
            if (p + 4 < kc) __builtin_prefetch(sp + 4 * ps, 0, 3);
            for (int i = 0; i < full; i++) copy_w(dst + ((long)i * kc + p) * w, sp + i * w, w);
        }
        src += (long)full * w;
        dst += (long)full * kc * w;
        n -= full * w;
    }
    for (int l0 = 0; l0 < n; l0 += w, dst += (long)kc * w) {
        const float *s = src + (long)l0 * ls;
        int lines = n - l0 < w ? n - l0 : w;
        if (ps == 1) {
            // Each line is contiguous in depth: transpose groups of 8 lines (rows past the group's
            // valid lines repeat its last one). Lanes past the panel's `lines` are then zeroed; a
            // group narrower than 8 (w - g) stores its lanes only.
            for (int g = 0; g < w; g += 8) {
                int gw = w - g < 8 ? w - g : 8, valid = lines - g < 0 ? 0 : lines - g < gw ? lines - g : gw;
                if (valid == 0) {
                    for (int p = 0; p < kc; p++) store_w(dst + (long)p * w + g, _mm256_setzero_ps(), gw);
                    continue;
                }
                const float *row[8];
                for (int l = 0; l < 8; l++) row[l] = s + (long)(g + (l < valid ? l : valid - 1)) * ls;
                const __m256 keep = _mm256_castsi256_ps(lanes_below(valid));
                int p = 0;
                // Lines are short runs (kc floats) at a large stride, too short for the hardware
                // prefetcher to lock on: fetch the next panel's lines one panel ahead.
                int prefetch = l0 + 2 * w <= n;
                for (; p + 8 <= kc; p += 8) {
                    if (prefetch && p % 16 == 0) {
                        for (int l = 0; l < gw; l++) __builtin_prefetch(row[l] + (long)w * ls + p, 0, 3);
                    }
                    __m256 r[8];
                    for (int l = 0; l < 8; l++) r[l] = _mm256_loadu_ps(row[l] + p);
                    mdm_transpose8(r);
                    if (valid < gw) {
                        for (int q = 0; q < 8; q++) r[q] = _mm256_and_ps(r[q], keep);
                    }
                    for (int q = 0; q < 8; q++) store_w(dst + (long)(p + q) * w + g, r[q], gw);
                }
                for (; p < kc; p++) {
                    for (int l = 0; l < gw; l++) dst[(long)p * w + g + l] = l < valid ? row[l][p] : 0;
                }
            }
        } else if (ls == 1) {
            // Contiguous lines, a ragged panel: each depth row's `lines` floats by masked loads
            // (the lanes past them are not read and give 0), stored with the padding's zeros.
            for (int p = 0; p < kc; p++) {
                const float *sp = s + (long)p * ps;
                float *d = dst + (long)p * w;
                for (int g = 0; g < w; g += 8) {
                    __m256 v = lines > g ? _mm256_maskload_ps(sp + g, lanes_below(lines - g)) : _mm256_setzero_ps();
                    store_w(d + g, v, w - g < 8 ? w - g : 8);
                }
            }
        } else {
            mdm_pack_generic(s, ls, ps, lines, kc, w, dst);
        }
    }
}

const mdm_gemm_config mdm_gemm_config_avx2 = {
    .mr = MDM_AVX2_MR, .nr = MDM_AVX2_NR, .mc = MDM_AVX2_MC, .kc = MDM_AVX2_KC, .nc = MDM_AVX2_NC,
    .kernel = mdm_microkernel_avx2, .half = mdm_microkernel_avx2_half, .rows = mdm_microkernel_avx2_rows, .pack = mdm_pack_avx2,
};

/// mdm_pack_conv_avx2 for panels of 8 * `chunks` lanes and stride `s` (inlined with constants, so
/// the line's accumulators stay in registers).
AVX2 static inline __attribute__((always_inline)) void
conv_lines(const maskdm_conv_geometry *g, const mdm_conv_run *runs, int count, int pc, int kc, int chunks, int s,
           float *dst) {
    const int taps = g->kh * g->kw, w = 8 * chunks;
    const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (int p = 0; p < kc; p++) {
        int r = pc + p, c = r / taps, ki = (r % taps) / g->kw, kj = r % g->kw;
        const float *plane = g->x + (long)c * g->batch * g->height * g->width;
        for (int q = 0; q < count;) {
            const int panel = runs[q].panel;
            __m256 acc[4] = {_mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps(), _mm256_setzero_ps()};
            for (; q < count && runs[q].panel == panel; q++) {
                const mdm_conv_run *u = &runs[q];
                int iy = u->oy * s - g->ph + ki;
                if (iy < 0 || iy >= g->height) continue;   // a padding row: the lanes stay 0
                // Element i of the run reads column x0 + i s of the row: inside it for lo <= i < hi.
                int x0 = u->ox0 * s - g->pw + kj;
                int lo = x0 >= 0 ? 0 : (-x0 + s - 1) / s, hi = x0 >= g->width ? 0 : (g->width - 1 - x0) / s + 1;
                if (hi > u->count) hi = u->count;
                if (hi <= lo) continue;
                const float *line = plane + ((g->b0 + u->image) * g->height + iy) * (long)g->width;
                // Register lane L (element L - lane) reads line[x0 + (L - lane) s]; only lanes
                // [lane + lo, lane + hi) are loaded, so a chunk's address may start outside the
                // row (integer arithmetic: the masked-off lanes are never read).
                uintptr_t base = (uintptr_t)line + (uintptr_t)((intptr_t)(x0 - u->lane * s) * (intptr_t)sizeof(float));
                int first = u->lane + lo, end = u->lane + hi;
                for (int k = 0; k < chunks; k++) {
                    if (8 * k + 8 <= first || 8 * k >= end) continue;
                    // The chunk's lanes in [first, end): below `end` and not below `first`.
                    __m256i m = _mm256_andnot_si256(lanes_below(first - 8 * k), lanes_below(end - 8 * k));
                    if (s == 1) {
                        acc[k] = _mm256_or_ps(acc[k], _mm256_maskload_ps((const float *)(base + 32 * (uintptr_t)k), m));
                    } else {
                        // The run's lanes of acc are still 0: gather into them (line index L at L s), keep the others.
                        __m256i at = _mm256_mullo_epi32(_mm256_add_epi32(lanes, _mm256_set1_epi32(8 * k)), _mm256_set1_epi32(s));
                        acc[k] = _mm256_mask_i32gather_ps(acc[k], (const float *)base, at, _mm256_castsi256_ps(m), 4);
                    }
                }
            }
            float *o = dst + ((long)panel * kc + p) * w;
            for (int k = 0; k < chunks; k++) _mm256_store_ps(o + 8 * k, acc[k]);
        }
    }
}

AVX2 void mdm_pack_conv_avx2(const maskdm_conv_geometry *g, const mdm_conv_run *runs, int count, int pc, int kc,
                             int w, float *dst) {
    int s = g->stride;
    if (w == 32) {
        if (s == 1) conv_lines(g, runs, count, pc, kc, 4, 1, dst);
        else conv_lines(g, runs, count, pc, kc, 4, s, dst);
    } else {
        if (s == 1) conv_lines(g, runs, count, pc, kc, 2, 1, dst);
        else conv_lines(g, runs, count, pc, kc, 2, s, dst);
    }
}

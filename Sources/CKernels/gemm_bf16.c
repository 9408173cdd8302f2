// Mixed-precision GEMM kernel (AVX512_BF16): both operands are rounded to bf16 as they are
// packed, products of pairs are summed in fp32 (VDPBF16PS), C, alpha, beta and the bias stay fp32.
// Opt-in only (`MASKDM_GEMM_ISA=avx512-bf16`): it trades 8 bits of each input's mantissa for
// twice the multiply-adds per instruction.
//
// Panels hold pairs of depths: a panel of w lines and kc depths is ceil(kc/2) steps of w 32-bit
// slots, slot (q, l) = bf16(line l, depth 2q) in the low half and bf16(line l, depth 2q+1) in the
// high half (0 past kc). The micro-kernel (the shared template, 8x32 tile) broadcasts one slot of
// A per row (loaded as a float: the broadcast keeps its bits) and takes a pairwise dot product with two 16-slot vectors of B per step.
#include <immintrin.h>
#include <stdint.h>
#include <string.h>
#include "CKernels.h"
#include "gemm_internal.h"
#include "vecmath_avx2.h"

#define BF16_TARGET "avx2,fma,avx512f,avx512vl,avx512bw,avx512bf16"
#define BF16 __attribute__((target(BF16_TARGET)))

#define MK_NAME mdm_microkernel_bf16
#define MK_TARGET BF16_TARGET
#define MK_MR MDM_BF16_MR
#include "gemm_avx512_ops.h"
// Slots are written as 16- and 32-bit integers and read as floats: may_alias types for both.
typedef uint16_t mdm_u16a __attribute__((may_alias));
typedef int32_t mdm_i32a __attribute__((may_alias));
typedef float mdm_f32a __attribute__((may_alias));
#define MK_STEPS(kc) (((kc) + 1) / 2)
#define MK_BCAST(p) _mm512_set1_ps(*(const mdm_f32a *)(p))
#define MK_STEP(acc, a, b) _mm512_dpbf16_ps(acc, (__m512bh)_mm512_castps_si512(a), (__m512bh)_mm512_castps_si512(b))
#include "gemm_microkernel_template.h"

unsigned short mdm_bf16_round(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u);      // zero, denormal: signed 0
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u); // NaN: kept, quiet
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);               // nearest, ties to even
}

unsigned short maskdm_bf16_round(float x) { return mdm_bf16_round(x); }

void mdm_pack_bf16_generic(const float *src, long ls, long ps, int n, int kc, int w, float *dst) {
    mdm_u16a *d = (mdm_u16a *)dst;
    long steps = (kc + 1) / 2;
    for (int l0 = 0; l0 < n; l0 += w, d += steps * w * 2) {
        int lines = n - l0 < w ? n - l0 : w;
        for (long q = 0; q < steps; q++) {
            for (int l = 0; l < w; l++) {
                for (int h = 0; h < 2; h++) {
                    long p = 2 * q + h;
                    d[(q * w + l) * 2 + h] = l < lines && p < kc ? mdm_bf16_round(src[(long)(l0 + l) * ls + p * ps]) : 0;
                }
            }
        }
    }
}

/// Slots of 16 lines at depths (p, p + 1) (rows s0 and s1 of contiguous lines; s1 NULL past kc).
BF16 static inline __m512i pairs16(const float *s0, const float *s1) {
    __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s0)));
    if (!s1) return lo;
    __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(s1)));
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

/// The same for the first `valid` of 8 lines (0 < valid <= 8; masked loads: the other lines are
/// not read, and their slots are 0, as the generic packer's past a ragged panel's lines). With
/// valid 8 the mask is a constant and the loads plain ones.
BF16 static inline __m256i pairs8(const float *s0, const float *s1, int valid) {
    __mmask8 m = (__mmask8)((1u << valid) - 1);
    __m256i lo = _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(_mm256_maskz_loadu_ps(m, s0)));
    if (!s1) return lo;
    __m256i hi = _mm256_cvtepu16_epi32((__m128i)_mm256_cvtneps_pbh(_mm256_maskz_loadu_ps(m, s1)));
    return _mm256_or_si256(lo, _mm256_slli_epi32(hi, 16));
}

/// Vectorised bf16 packer (see mdm_packer; panel widths that are multiples of 8). Layouts with a
/// unit stride are vectorised, a ragged last panel included: contiguous lines are converted 16 or
/// 8 at a time per pair of depths (a ragged panel's by masked loads); lines contiguous in depth
/// are converted 16 depths at a time, and their 8 slots per line transposed 8 lines at a time (a
/// ragged panel's missing lines zeroed after the transpose). Other layouts take the generic path
/// (the same values: the hardware conversion and mdm_bf16_round round alike, checked by
/// maskdm_gemm_pack_bf16_self_test).
BF16 void mdm_pack_bf16(const float *src, long ls, long ps, int n, int kc, int w, float *dst) {
    long steps = (kc + 1) / 2;
    if (w % 8 != 0 || (ls != 1 && ps != 1)) { mdm_pack_bf16_generic(src, ls, ps, n, kc, w, dst); return; }
    const int full = n / w, rem = n - full * w;
    mdm_i32a *d = (mdm_i32a *)dst;
    if (ls == 1) {
        for (long q = 0; q < steps; q++) {
            const float *s0 = src + 2 * q * ps, *s1 = 2 * q + 1 < kc ? s0 + ps : 0;
            if (q + 2 < steps) __builtin_prefetch(s0 + 4 * ps, 0, 3);
            for (int i = 0; i < full; i++) {
                mdm_i32a *o = d + ((long)i * steps + q) * w;
                int l = 0;
                for (; l + 16 <= w; l += 16) {
                    _mm512_storeu_si512(o + l, pairs16(s0 + i * w + l, s1 ? s1 + i * w + l : 0));
                }
                for (; l < w; l += 8) {
                    _mm256_storeu_si256((__m256i *)(o + l), pairs8(s0 + i * w + l, s1 ? s1 + i * w + l : 0, 8));
                }
            }
            if (rem > 0) {
                mdm_i32a *o = d + ((long)full * steps + q) * w;
                const float *r0 = s0 + full * w, *r1 = s1 ? s1 + full * w : 0;
                for (int l = 0; l < w; l += 8) {
                    int valid = rem - l < 8 ? rem - l : 8;
                    __m256i v = valid > 0 ? pairs8(r0 + l, r1 ? r1 + l : 0, valid) : _mm256_setzero_si256();
                    _mm256_storeu_si256((__m256i *)(o + l), v);
                }
            }
        }
        return;
    }
    // ps == 1: each line contiguous in depth.
    for (int i = 0; i < full + (rem > 0); i++) {
        const int lines = i < full ? w : rem;
        const float *s = src + (long)i * w * ls;
        mdm_i32a *o = d + (long)i * steps * w;
        for (int g = 0; g < w; g += 8) {
            const int valid = lines - g <= 0 ? 0 : lines - g < 8 ? lines - g : 8;
            if (valid == 0) {
                for (long q = 0; q < steps; q++) _mm256_storeu_si256((__m256i *)(o + q * w + g), _mm256_setzero_si256());
                continue;
            }
            // Lines past `valid` repeat the last valid one; their lanes are zeroed after the transpose.
            const float *row[8];
            for (int l = 0; l < 8; l++) row[l] = s + (long)(g + (l < valid ? l : valid - 1)) * ls;
            const __mmask8 keep = (__mmask8)((1u << valid) - 1);
            long q = 0;
            for (; 2 * q + 16 <= kc; q += 8) {
                __m256 r[8];
                for (int l = 0; l < 8; l++) {
                    r[l] = _mm256_castsi256_ps((__m256i)_mm512_cvtneps_pbh(_mm512_loadu_ps(row[l] + 2 * q)));
                }
                mdm_transpose8(r);
                if (valid < 8) {
                    for (int t = 0; t < 8; t++) r[t] = _mm256_maskz_mov_ps(keep, r[t]);
                }
                for (int t = 0; t < 8; t++) _mm256_storeu_ps((float *)(o + (q + t) * w + g), r[t]);
            }
            for (; q < steps; q++) {
                for (int l = 0; l < 8; l++) {
                    uint32_t lo = l < valid ? mdm_bf16_round(row[l][2 * q]) : 0;
                    uint32_t hi = l < valid && 2 * q + 1 < kc ? mdm_bf16_round(row[l][2 * q + 1]) : 0;
                    o[q * w + g + l] = (int32_t)(lo | hi << 16);
                }
            }
        }
    }
}

const mdm_gemm_config mdm_gemm_config_bf16 = {
    .mr = MDM_BF16_MR, .nr = MDM_BF16_NR, .mc = MDM_BF16_MC, .kc = MDM_BF16_KC, .nc = MDM_BF16_NC,
    .kernel = mdm_microkernel_bf16, .half = mdm_microkernel_bf16_half, .rows = mdm_microkernel_bf16_rows, .pack = mdm_pack_bf16, .pairs = 1,
};

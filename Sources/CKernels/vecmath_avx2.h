// AVX2 + FMA helpers shared by the element-wise C kernels (softmax rows, GELU, LayerNorm, AdamW)
// and the GEMM packers: the target attribute, exp, a horizontal sum and an 8x8 transpose. Include
// only from files whose functions carry the AVX2 target attribute (or a superset of it).
#ifndef MASKDM_VECMATH_AVX2_H
#define MASKDM_VECMATH_AVX2_H
#include <immintrin.h>

#define AVX2 __attribute__((target("avx2,fma")))

/// The 8-lane operations of vecmath_template.h, which defines exp8 (e^x: the same Cody-Waite
/// reduction and degree-6 polynomial as the Swift FastMath.exp, |relative error| < 2e-7, inputs
/// clamped to [-87.3, 88.7]) and erf_gauss8 (erf(x) and exp(-x^2)).
#define VM_TARGET "avx2,fma"
#define VM_V __m256
#define VM_SUFFIX 8
#define VM_SET1(x) _mm256_set1_ps(x)
#define VM_ZERO() _mm256_setzero_ps()
#define VM_LOADU(p) _mm256_loadu_ps(p)
#define VM_STOREU(p, v) _mm256_storeu_ps(p, v)
#define VM_ADD(a, b) _mm256_add_ps(a, b)
#define VM_MUL(a, b) _mm256_mul_ps(a, b)
#define VM_DIV(a, b) _mm256_div_ps(a, b)
#define VM_MIN(a, b) _mm256_min_ps(a, b)
#define VM_MAX(a, b) _mm256_max_ps(a, b)
#define VM_FMADD(a, b, c) _mm256_fmadd_ps(a, b, c)
#define VM_FMSUB(a, b, c) _mm256_fmsub_ps(a, b, c)
#define VM_FNMADD(a, b, c) _mm256_fnmadd_ps(a, b, c)
#define VM_ROUND(x) _mm256_round_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VM_POW2(n) _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23))
#define VM_AND(a, b) _mm256_and_ps(a, b)
#define VM_ANDNOT(a, b) _mm256_andnot_ps(a, b)
#define VM_OR(a, b) _mm256_or_ps(a, b)
#define VM_XOR(a, b) _mm256_xor_ps(a, b)
#include "vecmath_template.h"

/// The sum of the 8 lanes.
AVX2 static inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// Transposes the 8x8 block rows[0..8][0..8] in registers: out[q][l] = rows[l][q].
AVX2 static inline void mdm_transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);     // a0 b0 a1 b1 | a4 b4 a5 b5
        t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]); // a2 b2 a3 b3 | a6 b6 a7 b7
    }
    for (int h = 0; h < 2; h++) {  // h = 0: rows 0-3, h = 1: rows 4-7
        u[4 * h + 0] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);     // column 0 | 4
        u[4 * h + 1] = _mm256_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);     // column 1 | 5
        u[4 * h + 2] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44); // column 2 | 6
        u[4 * h + 3] = _mm256_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE); // column 3 | 7
    }
    for (int q = 0; q < 4; q++) {
        r[q] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x20);
        r[q + 4] = _mm256_permute2f128_ps(u[q], u[4 + q], 0x31);
    }
}

#endif

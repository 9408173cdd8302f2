// AVX2 + FMA softmax rows for the attention kernels (8 lanes per instruction, fused multiply-adds),
// compiled with target attributes only; Swift calls them after a run-time CPU check. The exp is the
// same Cody-Waite reduction and degree-6 polynomial as the Swift FastMath.exp (|rel err| < 2e-7).
#include <immintrin.h>
#include <math.h>
#include "CKernels.h"
#include "vecmath_avx2.h"


AVX2 static inline float hmax8(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/// The largest scale * x[j] (either sign of scale).
AVX2 static inline float max_scaled(const float *x, int n, float scale) {
    const __m256 vs = _mm256_set1_ps(scale);
    __m256 mv = _mm256_set1_ps(-INFINITY);
    int j = 0;
    for (; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_mul_ps(_mm256_loadu_ps(x + j), vs));
    float m = hmax8(mv);
    for (; j < n; j++) { float v = x[j] * scale; m = v > m ? v : m; }
    return m;
}

/// y[j] = exp(scale * x[j] - shift) (y may alias x); returns the sum of the y[j].
AVX2 static inline float exp_shifted_sum(const float *x, float *y, int n, float scale, float shift) {
    const __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(shift);
    __m256 sv = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(x + j), vs, vm));
        _mm256_storeu_ps(y + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    float s = hsum8(sv);
    for (; j < n; j++) { float e = expf(x[j] * scale - shift); y[j] = e; s += e; }
    return s;
}

AVX2 float maskdm_softmax_row_avx2(const float *x, float *y, int n, float scale) {
    const float ms = max_scaled(x, n, scale);
    const float s = exp_shifted_sum(x, y, n, scale, ms);
    const float inv = 1.0f / s;
    const __m256 vi = _mm256_set1_ps(inv);
    int j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), vi));
    for (; j < n; j++) y[j] *= inv;
    return ms + logf(s);
}

AVX2 void maskdm_softmax_grad_row_avx2(float *p, float *dp, int n, float scale, float lse) {
    const __m256 vs = _mm256_set1_ps(scale), vl = _mm256_set1_ps(lse);
    __m256 dv = _mm256_setzero_ps();
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(p + j), vs, vl));
        _mm256_storeu_ps(p + j, e);
        dv = _mm256_fmadd_ps(e, _mm256_loadu_ps(dp + j), dv);
    }
    float dot = hsum8(dv);
    for (; j < n; j++) { float e = expf(p[j] * scale - lse); p[j] = e; dot += e * dp[j]; }
    const __m256 vd = _mm256_set1_ps(dot);
    for (j = 0; j + 8 <= n; j += 8) {
        __m256 pv = _mm256_loadu_ps(p + j);
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(pv, _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)));
    }
    for (; j < n; j++) dp[j] = p[j] * (dp[j] - dot);
}

AVX2 float maskdm_online_softmax_row_avx2(float *s, int n, float scale, float *m, float *l) {
    const float bm = max_scaled(s, n, scale);
    const float old = *m, mnew = old > bm ? old : bm;
    const float sum = exp_shifted_sum(s, s, n, scale, mnew);
    const float corr = old == -INFINITY ? 0.0f : expf(old - mnew);
    *l = *l * corr + sum;
    *m = mnew;
    return corr;
}

AVX2 void maskdm_softmax_grad_row_given_avx2(float *p, float *dp, int n, float scale, float lse, float dot) {
    const __m256 vs = _mm256_set1_ps(scale), vl = _mm256_set1_ps(lse), vd = _mm256_set1_ps(dot);
    int j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 e = exp8(_mm256_fmsub_ps(_mm256_loadu_ps(p + j), vs, vl));
        _mm256_storeu_ps(p + j, e);
        _mm256_storeu_ps(dp + j, _mm256_mul_ps(e, _mm256_sub_ps(_mm256_loadu_ps(dp + j), vd)));
    }
    for (; j < n; j++) { float e = expf(p[j] * scale - lse); p[j] = e; dp[j] = e * (dp[j] - dot); }
}

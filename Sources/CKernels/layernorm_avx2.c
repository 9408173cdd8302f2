// LayerNorm rows and their backward on AVX2 + FMA (8 lanes, fused multiply-adds). Same algorithm
// as the Swift kernels (two-pass mean and variance, the backward's two row sums); only the order of
// the float sums differs. The Swift code is compiled for baseline x86-64, and its parameter-gradient
// loop is scalar; Swift calls these after a run-time CPU check.
#include "CKernels.h"
#include "vecmath_avx2.h"

AVX2 void maskdm_layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y,
                                        float *mean, float *rstd, long rows, int cols, float eps) {
    for (long r = 0; r < rows; r++) {
        const float *px = x + r * cols;
        float *py = y + r * cols;
        __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 16 <= cols; j += 16) {
            s0 = _mm256_add_ps(s0, _mm256_loadu_ps(px + j));
            s1 = _mm256_add_ps(s1, _mm256_loadu_ps(px + j + 8));
        }
        float s = hsum8(_mm256_add_ps(s0, s1));
        for (; j < cols; j++) s += px[j];
        float m = s / (float)cols;
        __m256 mv = _mm256_set1_ps(m);
        s0 = _mm256_setzero_ps(); s1 = _mm256_setzero_ps();
        for (j = 0; j + 16 <= cols; j += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(px + j), mv), d1 = _mm256_sub_ps(_mm256_loadu_ps(px + j + 8), mv);
            s0 = _mm256_fmadd_ps(d0, d0, s0);
            s1 = _mm256_fmadd_ps(d1, d1, s1);
        }
        float v = hsum8(_mm256_add_ps(s0, s1));
        for (; j < cols; j++) { float d = px[j] - m; v += d * d; }
        float rs = 1.0f / __builtin_sqrtf(v / (float)cols + eps);
        __m256 rv = _mm256_set1_ps(rs);
        for (j = 0; j + 8 <= cols; j += 8) {
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(px + j), mv), rv);
            _mm256_storeu_ps(py + j, _mm256_fmadd_ps(xh, _mm256_loadu_ps(w + j), _mm256_loadu_ps(b + j)));
        }
        for (; j < cols; j++) py[j] = (px[j] - m) * rs * w[j] + b[j];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

AVX2 void maskdm_layernorm_backward_input_avx2(const float *dy, const float *x, const float *w,
                                               const float *mean, const float *rstd, float *dx,
                                               long rows, int cols) {
    for (long r = 0; r < rows; r++) {
        const float *pdy = dy + r * cols, *px = x + r * cols;
        float *pdx = dx + r * cols;
        float m = mean[r], rs = rstd[r];
        __m256 mv = _mm256_set1_ps(m), rv = _mm256_set1_ps(rs);
        // mean(w dy) and mean(w dy xhat)
        __m256 a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps();
        int j = 0;
        for (; j + 8 <= cols; j += 8) {
            __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pdy + j), _mm256_loadu_ps(w + j));
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(px + j), mv), rv);
            a1 = _mm256_add_ps(a1, g);
            a2 = _mm256_fmadd_ps(g, xh, a2);
        }
        float s1 = hsum8(a1), s2 = hsum8(a2);
        for (; j < cols; j++) { float g = pdy[j] * w[j]; s1 += g; s2 += g * (px[j] - m) * rs; }
        s1 /= (float)cols;
        s2 /= (float)cols;
        __m256 s1v = _mm256_set1_ps(s1), s2v = _mm256_set1_ps(s2);
        for (j = 0; j + 8 <= cols; j += 8) {
            __m256 g = _mm256_mul_ps(_mm256_loadu_ps(pdy + j), _mm256_loadu_ps(w + j));
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(px + j), mv), rv);
            __m256 t = _mm256_fnmadd_ps(xh, s2v, _mm256_sub_ps(g, s1v));
            _mm256_storeu_ps(pdx + j, _mm256_fmadd_ps(t, rv, _mm256_loadu_ps(pdx + j)));
        }
        for (; j < cols; j++) {
            float g = pdy[j] * w[j], xh = (px[j] - m) * rs;
            pdx[j] += (g - s1 - xh * s2) * rs;
        }
    }
}

AVX2 void maskdm_layernorm_backward_params_avx2(const float *dy, const float *x, const float *mean,
                                                const float *rstd, float *dw, float *db, long rows,
                                                int cols, int lo, int hi) {
    int j = lo;
    // Column blocks of 8, all rows each: the block's sums stay in registers.
    for (; j + 8 <= hi; j += 8) {
        __m256 aw = _mm256_setzero_ps(), ab = _mm256_setzero_ps();
        for (long r = 0; r < rows; r++) {
            __m256 g = _mm256_loadu_ps(dy + r * cols + j);
            __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + r * cols + j), _mm256_set1_ps(mean[r])),
                                      _mm256_set1_ps(rstd[r]));
            aw = _mm256_fmadd_ps(g, xh, aw);
            ab = _mm256_add_ps(ab, g);
        }
        if (dw) _mm256_storeu_ps(dw + j, _mm256_add_ps(_mm256_loadu_ps(dw + j), aw));
        if (db) _mm256_storeu_ps(db + j, _mm256_add_ps(_mm256_loadu_ps(db + j), ab));
    }
    for (; j < hi; j++) {
        float aw = 0, ab = 0;
        for (long r = 0; r < rows; r++) {
            float g = dy[r * cols + j];
            aw += g * (x[r * cols + j] - mean[r]) * rstd[r];
            ab += g;
        }
        if (dw) dw[j] += aw;
        if (db) db[j] += ab;
    }
}

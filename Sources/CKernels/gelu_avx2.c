// Exact (erf) GELU forward and backward on AVX2 + FMA, 8 lanes per instruction. The maths is the
// Swift FastMath's (erf by Abramowitz & Stegun 7.1.26 with the Gaussian factor from one exp), so
// the two paths agree to rounding; the Swift code is compiled for baseline x86-64 (SSE2) and runs
// this loop ~3x slower. Swift calls these after a run-time CPU check.
#include "CKernels.h"
#include "vecmath_avx2.h"
#include <math.h>

// The loops (gelu_template.h) on 8 lanes; the last n % 8 values in scalar C with libm.
#define VM_GELU avx2
#define VM_GELU_TAIL_FORWARD                                                                  \
    for (; i < n; i++) y[i] = 0.5f * x[i] * (1.0f + erff(x[i] * inv_sqrt2));
#define VM_GELU_TAIL_BACKWARD                                                                 \
    for (; i < n; i++) {                                                                      \
        float v = x[i];                                                                       \
        float cdf = 0.5f * (1.0f + erff(v * inv_sqrt2));                                      \
        dx[i] = (accumulate ? dx[i] : 0.0f) + dy[i] * (cdf + v * inv_sqrt2pi * expf(-0.5f * v * v)); \
    }
#include "gelu_template.h"

// A fused-multiply-add loop per instruction set: the fp32 peak of one core, measured rather than
// assumed (CPUs of one kind differ: AVX2-only EPYCs run two 256-bit FMAs per cycle, Zen 4 runs
// AVX-512 as two 256-bit halves, so its peak is not twice the AVX2 one).
#include "CKernels.h"

#include <immintrin.h>

// One loop per instruction: 12 independent accumulators cover the latency (4-6 cycles) on two
// pipes; `OP(acc)` is the instruction on an accumulator, `SUM(s)` reduces the summed vector.
#define PEAK_LOOP(NAME, TARGET, VEC, INIT, OP, ADD, SUM)                                             \
    __attribute__((target(TARGET))) static float NAME(long iterations) {                            \
        VEC a0 = INIT, a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0;                                 \
        VEC a6 = a0, a7 = a0, a8 = a0, a9 = a0, a10 = a0, a11 = a0;                                 \
        for (long i = 0; i < iterations; i++) {                                                     \
            a0 = OP(a0); a1 = OP(a1); a2 = OP(a2); a3 = OP(a3); a4 = OP(a4); a5 = OP(a5);           \
            a6 = OP(a6); a7 = OP(a7); a8 = OP(a8); a9 = OP(a9); a10 = OP(a10); a11 = OP(a11);       \
        }                                                                                           \
        VEC s = ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7)));                  \
        return SUM(ADD(s, ADD(ADD(a8, a9), ADD(a10, a11))));                                        \
    }

#define FMA8(a) _mm256_fmadd_ps(a, _mm256_set1_ps(0.999999f), _mm256_set1_ps(1e-7f))
#define SUM8(s) (_mm256_cvtss_f32(s) + _mm256_cvtss_f32(_mm256_permute2f128_ps(s, s, 1)))
PEAK_LOOP(fma_loop_avx2, "avx2,fma", __m256, _mm256_set1_ps(1.0f), FMA8, _mm256_add_ps, SUM8)

#define FMA16(a) _mm512_fmadd_ps(a, _mm512_set1_ps(0.999999f), _mm512_set1_ps(1e-7f))
PEAK_LOOP(fma_loop_avx512, "avx512f,fma", __m512, _mm512_set1_ps(1.0f), FMA16, _mm512_add_ps, _mm512_reduce_add_ps)

// The bf16 kernel's instruction: 16 lanes x 2 products x 2 flops per VDPBF16PS.
#define DPBF16(a) _mm512_dpbf16_ps(a, (__m512bh)_mm512_set1_epi32(0x3f803f80), (__m512bh)_mm512_set1_epi32(0x33d633d6))
PEAK_LOOP(dpbf16_loop, "avx512f,avx512bw,avx512vl,avx512bf16,fma", __m512, _mm512_setzero_ps(), DPBF16, _mm512_add_ps,
          _mm512_reduce_add_ps)

double maskdm_fma_peak_flops(int isa, long iterations) {
    if (!maskdm_gemm_isa_supported(isa)) return 0;
    switch (isa) {
    case MASKDM_GEMM_ISA_AVX2:
    case MASKDM_GEMM_ISA_AVX512_EMULATED: {   // built from AVX2 instructions: AVX2's peak
        volatile float sink = fma_loop_avx2(iterations);
        (void)sink;
        return (double)iterations * 12 * 8 * 2;
    }
    case MASKDM_GEMM_ISA_AVX512: {
        volatile float sink = fma_loop_avx512(iterations);
        (void)sink;
        return (double)iterations * 12 * 16 * 2;
    }
    case MASKDM_GEMM_ISA_AVX512_BF16: {
        volatile float sink = dpbf16_loop(iterations);
        (void)sink;
        return (double)iterations * 12 * 16 * 2 * 2;
    }
    default:
        return 0;
    }
}

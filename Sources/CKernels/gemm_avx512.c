// AVX-512 GEMM kernel: 14x32 micro-tile (28 zmm accumulators, 2 B vectors, 1 broadcast).
// Compiled with target attributes only; gemm_driver.c calls it after a run-time CPU check.
// Same template as the AVX2 kernel. The development VM exposes no AVX-512, so this kernel has not
// run there: GemmTests check it on any CPU that has AVX-512, and its blocking (mc, kc) is untuned.
// Its AVX2-built twin (gemm_avx512_emulated.c) runs the same template, tile and blocking anywhere.
#include <immintrin.h>
#include "gemm_internal.h"

#define MK_NAME mdm_microkernel_avx512
#define MK_TARGET "avx512f,avx512vl,fma"
#define MK_MR MDM_AVX512_MR
#define MK_W 16
#define MK_VEC __m512
#define MK_ZERO() _mm512_setzero_ps()
#define MK_LOAD(p) _mm512_load_ps(p)
#define MK_LOADU(p) _mm512_loadu_ps(p)
#define MK_STORE(p, v) _mm512_store_ps(p, v)
#define MK_STOREU(p, v) _mm512_storeu_ps(p, v)
#define MK_SET1(x) _mm512_set1_ps(x)
#define MK_FMA(a, b, c) _mm512_fmadd_ps(a, b, c)
#define MK_MUL(a, b) _mm512_mul_ps(a, b)
#include "gemm_microkernel_template.h"

const mdm_gemm_config mdm_gemm_config_avx512 = {
    .mr = MDM_AVX512_MR, .nr = MDM_AVX512_NR, .mc = MDM_AVX512_MC, .kc = MDM_AVX512_KC, .nc = MDM_AVX512_NC,
    .kernel = mdm_microkernel_avx512, .pack = mdm_pack_avx2,
};

// The AVX-512 vector operations of the micro-kernel template (gemm_microkernel_template.h),
// shared by the fp32 AVX-512 kernel (gemm_avx512.c) and the bf16 kernel (gemm_bf16.c).
#ifndef MASKDM_GEMM_AVX512_OPS_H
#define MASKDM_GEMM_AVX512_OPS_H
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
#endif

// Exact (erf) GELU forward and backward on AVX-512F, 16 lanes per instruction: the AVX2 kernels'
// maths (vecmath_template.h, gelu_template.h) on wider vectors, the same operations in the same
// order on every lane, so both give the same values bit for bit (the tests check it). GELU is
// bound by its arithmetic (about 2 cycles a value on 8 lanes, in L1 and from memory alike), so
// twice the lanes make it about 1.5x faster. A remainder of fewer than 16 values goes to the AVX2
// kernel, whose 8-lane block and scalar tail then cover exactly the values they would have
// covered alone. Swift calls these after a run-time CPU check.
#include "CKernels.h"
#include <immintrin.h>

/// Bitwise operations on float lanes with AVX-512F alone (the float forms need AVX512DQ).
#define VM_BITS(op, a, b) _mm512_castsi512_ps(op(_mm512_castps_si512(a), _mm512_castps_si512(b)))

#define VM_TARGET "avx512f,avx2,fma"
#define VM_V __m512
#define VM_SUFFIX 16
#define VM_SET1(x) _mm512_set1_ps(x)
#define VM_ZERO() _mm512_setzero_ps()
#define VM_LOADU(p) _mm512_loadu_ps(p)
#define VM_STOREU(p, v) _mm512_storeu_ps(p, v)
#define VM_ADD(a, b) _mm512_add_ps(a, b)
#define VM_MUL(a, b) _mm512_mul_ps(a, b)
#define VM_DIV(a, b) _mm512_div_ps(a, b)
#define VM_MIN(a, b) _mm512_min_ps(a, b)
#define VM_MAX(a, b) _mm512_max_ps(a, b)
#define VM_FMADD(a, b, c) _mm512_fmadd_ps(a, b, c)
#define VM_FMSUB(a, b, c) _mm512_fmsub_ps(a, b, c)
#define VM_FNMADD(a, b, c) _mm512_fnmadd_ps(a, b, c)
#define VM_ROUND(x) _mm512_roundscale_ps(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)
#define VM_POW2(n) _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23))
#define VM_AND(a, b) VM_BITS(_mm512_and_si512, a, b)
#define VM_ANDNOT(a, b) VM_BITS(_mm512_andnot_si512, a, b)
#define VM_OR(a, b) VM_BITS(_mm512_or_si512, a, b)
#define VM_XOR(a, b) VM_BITS(_mm512_xor_si512, a, b)
#include "vecmath_template.h"

#define VM_GELU avx512
#define VM_GELU_TAIL_FORWARD if (i < n) maskdm_gelu_forward_avx2(x + i, y + i, n - i);
#define VM_GELU_TAIL_BACKWARD if (i < n) maskdm_gelu_backward_avx2(dy + i, x + i, dx + i, n - i, accumulate);
#include "gelu_template.h"

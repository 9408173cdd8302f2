// The AVX-512 kernel's micro-tiles and blockings (8x32 resident, 14x32 streamed), built from AVX2 instructions: the same
// template with 16-lane generic vectors (each operation becomes two 256-bit ones; fused
// multiply-adds stay fused), so it computes the AVX-512 kernel's values (GemmTests compares the
// two, bit for bit, on CPUs with AVX-512). It is slower than either real kernel and is never
// chosen by itself (`maskdm_gemm_best_isa` skips it); `MASKDM_GEMM_ISA=avx512-emulated` selects it
// so that the driver's paths for the AVX-512 geometries (8- and 14-row and 32-column panels, the
// cache blocks, both loop orders, the packed-B products, every split) run and are tested on CPUs
// without AVX-512.
#include "gemm_internal.h"

typedef float mdm_v16 __attribute__((vector_size(64), aligned(64)));
typedef float mdm_v16u __attribute__((vector_size(64), aligned(4)));

#define MK_NAME mdm_microkernel_avx512_emulated
#define MK_TARGET "avx2,fma"
#define MK_MR MDM_AVX512_MR
#define MK_W 16
#define MK_VEC mdm_v16
#define MK_ZERO() ((mdm_v16){0})
#define MK_LOAD(p) (*(const mdm_v16 *)(p))
#define MK_LOADU(p) ((mdm_v16)(*(const mdm_v16u *)(p)))
#define MK_STORE(p, v) (*(mdm_v16 *)(p) = (v))
#define MK_STOREU(p, v) (*(mdm_v16u *)(p) = (v))
// A broadcast that keeps every bit of x (adding x to a zero vector would turn -0 into +0); a
// statement expression, not a function, so that no 512-bit vector crosses a call (-Wpsabi).
#define MK_SET1(x) ({ const float s_ = (x); (mdm_v16){s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_, s_}; })
#define MK_FMA(a, b, c) __builtin_elementwise_fma((a), (b), (c))
#define MK_MUL(a, b) ((a) * (b))
#include "gemm_microkernel_template.h"

const mdm_gemm_config mdm_gemm_config_avx512_emulated = MDM_AVX512_RESIDENT_CONFIG(mdm_microkernel_avx512_emulated);

#undef MK_NAME
#undef MK_MR
#define MK_NAME mdm_microkernel_avx512_emulated_s
#define MK_MR MDM_AVX512S_MR
#include "gemm_microkernel_template.h"

const mdm_gemm_config mdm_gemm_config_avx512_emulated_streamed =
    MDM_AVX512_STREAMED_CONFIG(mdm_microkernel_avx512_emulated_s);

// AVX-512 GEMM kernel: 8x32 micro-tile (16 zmm accumulators, 2 B vectors, 1 broadcast).
// Compiled with target attributes only; gemm_driver.c calls it after a run-time CPU check.
// Same template as the AVX2 kernel, in two blockings (MASKDM_GEMM_BLOCKING_*): "resident", below,
// and "streamed" (a 14x32 tile; see MDM_AVX512S_MR in gemm_internal.h). Resident's tile and blocks
// were chosen on a Zen 4 (AVX-512 executed as
// two 256-bit halves) with Benchmarks/gemm-ab: against the first 14x32 tile with kc 192, 8x32 with
// kc 384 ran the small@64 step's products 4.4% faster (6x32: 4.6%, 14x32 with kc 384: 2.3%), and
// the training step 4-5% faster. Its AVX2-built twin (gemm_avx512_emulated.c) runs the same
// template, tiles and blockings anywhere.
#include <immintrin.h>
#include "gemm_internal.h"

#define MK_NAME mdm_microkernel_avx512
#define MK_TARGET "avx512f,avx512vl,fma"
#define MK_MR MDM_AVX512_MR
#include "gemm_avx512_ops.h"
#include "gemm_microkernel_template.h"

const mdm_gemm_config mdm_gemm_config_avx512 = MDM_AVX512_RESIDENT_CONFIG(mdm_microkernel_avx512);

// The streamed blocking's taller tile (see MDM_AVX512S_MR in gemm_internal.h).
#undef MK_NAME
#undef MK_MR
#define MK_NAME mdm_microkernel_avx512_s
#define MK_MR MDM_AVX512S_MR
#include "gemm_microkernel_template.h"

const mdm_gemm_config mdm_gemm_config_avx512_streamed = MDM_AVX512_STREAMED_CONFIG(mdm_microkernel_avx512_s);

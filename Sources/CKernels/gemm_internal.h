// Internal interface of the GEMM kernels: blocking parameters and the per-ISA entry points.
#ifndef MASKDM_GEMM_INTERNAL_H
#define MASKDM_GEMM_INTERNAL_H
#include <stddef.h>
#include "CKernels.h"

/// Micro-kernel: C[0..mr, 0..nr] = alpha * (a-panel x b-panel) + beta * C (beta == 0: C not read),
/// plus bias[j] in every row when `bias` is not NULL (the tile's first column's entry first).
/// `a` is a packed (kc, MR) panel, `b` a packed (kc, NR) panel, both 64-byte aligned (for bf16
/// pairs: ceil(kc/2) 32-bit slots per line, see gemm_bf16.c); C is
/// row-major with row stride ldc; mr <= MR and nr <= NR select the valid part of the tile.
typedef void (*mdm_microkernel)(long kc, const float *a, const float *b, float *c, long ldc,
                                float alpha, float beta, int mr, int nr, const float *bias);

/// Packs `n` lines of `kc` values into micro-panels of `w` lines each, laid out [panel][p][w],
/// zero-padding the last panel. Element (line l, depth p) is at src[l * ls + p * ps]. (The bf16
/// packers write [panel][p/2][w] 32-bit slots of two bf16 values instead.)
typedef void (*mdm_packer)(const float *src, long ls, long ps, int n, int kc, int w, float *dst);

/// One instruction set's kernel and blocking.
typedef struct {
    int mr, nr;              // micro-tile
    int mc, kc, nc;          // cache blocks: A block (mc, kc) in L2, B block (kc, nc) in L3
    mdm_microkernel kernel;
    mdm_microkernel half;    // the same for tiles of nr <= NR / 2 columns (half the work), or NULL
    mdm_microkernel rows;    // the same for tiles of mr <= MR / 2 rows (half the work), or NULL
    mdm_packer pack;         // used for A (w = mr) and B (w = nr)
    int pairs;               // 1: panels hold bf16 pairs of depths (ceil(kc/2) 32-bit slots per line)
    int streamed;            // loop order inside a block: 0 ("resident"): each B micro-panel stays
                             // while the A micro-panels stream past it; 1 ("streamed"): each A
                             // micro-panel stays while the block's B micro-panels stream past it
} mdm_gemm_config;

/// Floats (32-bit slots) per line of a kc-deep panel of `cfg`: kc, or ceil(kc/2) for bf16 pairs.
static inline long mdm_panel_depth(const mdm_gemm_config *cfg, long kc) { return cfg->pairs ? (kc + 1) / 2 : kc; }

/// Portable scalar packer (any w, any strides).
void mdm_pack_generic(const float *src, long ls, long ps, int n, int kc, int w, float *dst);

/// Vectorised packer (AVX2; any w). Call only on CPUs with AVX2.
void mdm_pack_avx2(const float *src, long ls, long ps, int n, int kc, int w, float *dst);

/// One run of an im2col panel line (see pack_conv in gemm_driver.c): lanes [lane, lane + count) of
/// panel `panel` hold the outputs ox0 .. ox0 + count - 1 of output row oy of image `image`.
typedef struct { int panel, lane, count, oy, ox0; long image; } mdm_conv_run;
/// pack_conv's depth rows on AVX2 (every fp32 kernel's CPU has it): for each depth row, each panel
/// line of `w` (16 or 32) lanes is assembled in registers from its runs by masked loads (stride 1)
/// or masked gathers (larger strides), so the padding's lanes stay 0, and stored whole. `runs`
/// (`count`, in panel order) cover the block's columns. The floats are moved, never computed.
void mdm_pack_conv_avx2(const maskdm_conv_geometry *g, const mdm_conv_run *runs, int count, int pc, int kc, int w,
                        float *dst);
/// bf16 rounding as VCVTNEPS2BF16 does it: nearest, ties to even; zero and denormals to a signed
/// zero; NaN stays NaN (made quiet).
unsigned short mdm_bf16_round(float x);

/// bf16 packers (see gemm_bf16.c for the pair layout): portable, and vectorised (AVX512_BF16 CPUs).
void mdm_pack_bf16_generic(const float *src, long ls, long ps, int n, int kc, int w, float *dst);
void mdm_pack_bf16(const float *src, long ls, long ps, int n, int kc, int w, float *dst);

/// The AVX-512 kernel's micro-tile and cache blocks, shared with its AVX2-built twin
/// (gemm_avx512_emulated.c) so that the twin tests exactly the geometry the real kernel runs.
/// The cache blocks (MC, KC, NC, here and for AVX2 below) can be set at compile time, e.g.
/// -DMDM_AVX512_KC=256, to tune them on a CPU with Benchmarks/gemm-ab/gemm-ab.sh (a variant
/// ".+-DMDM_AVX512_KC=256"); so can the AVX-512 tile's rows (MDM_AVX512_MR, up to 14: 2 MR
/// accumulators + 3 registers <= 32); the other tiles are fixed by their kernels' code.
#ifndef MDM_AVX512_MR
#define MDM_AVX512_MR 8
#endif
#define MDM_AVX512_NR 32
#ifndef MDM_AVX512_MC
#define MDM_AVX512_MC 168
#endif
#ifndef MDM_AVX512_KC
#define MDM_AVX512_KC 384
#endif
#ifndef MDM_AVX512_NC
#define MDM_AVX512_NC 4096
#endif

/// The AVX-512 kernel's "streamed" blocking (MASKDM_GEMM_BLOCKING_STREAMED): a 14x32 micro-tile,
/// and column blocks of 512 so that a packed B block (kc x nc, 768 KB) stays in a 2 MB L2 while
/// the A micro-panel (14 x kc) stays in L1 and the B micro-panels stream past it. Chosen on an
/// Intel Xeon (Sapphire Rapids class: 48 KB L1d, 2 MB L2) with Benchmarks/gemm-ab, where it ran
/// the small@64 step's products 9% faster than the resident blocking above (every one of 21
/// rounds faster; NC 384 and KC 256 or 512 were slower, NC 768 even, 12 rows slower, 8 rows half
/// the gain, and resident order with NC 512 or streamed order with NC 4096 alone were slower).
/// Its depth blocks must be the resident blocking's, so that a packed B serves both.
#ifndef MDM_AVX512S_MR
#define MDM_AVX512S_MR 14
#endif
#ifndef MDM_AVX512S_MC
#define MDM_AVX512S_MC 168
#endif
#ifndef MDM_AVX512S_NC
#define MDM_AVX512S_NC 512
#endif
#define MDM_AVX512S_KC MDM_AVX512_KC

/// The AVX-512 kernel's configuration in each blocking, for the template's kernels named `prefix`
/// (its MK_NAME), prefix_half and prefix_rows: one definition serves the real kernel and its
/// AVX2-built twin, so the twin runs exactly the real kernel's geometry.
#define MDM_AVX512_RESIDENT_CONFIG(prefix)                                                               \
    {.mr = MDM_AVX512_MR, .nr = MDM_AVX512_NR, .mc = MDM_AVX512_MC, .kc = MDM_AVX512_KC, .nc = MDM_AVX512_NC, \
     .kernel = prefix, .half = prefix##_half, .rows = prefix##_rows, .pack = mdm_pack_avx2}
#define MDM_AVX512_STREAMED_CONFIG(prefix)                                                                    \
    {.mr = MDM_AVX512S_MR, .nr = MDM_AVX512_NR, .mc = MDM_AVX512S_MC, .kc = MDM_AVX512S_KC, .nc = MDM_AVX512S_NC, \
     .kernel = prefix, .half = prefix##_half, .rows = prefix##_rows, .pack = mdm_pack_avx2, .streamed = 1}

/// The AVX2 kernel's micro-tile and cache blocks.
#define MDM_AVX2_MR 6
#define MDM_AVX2_NR 16
#ifndef MDM_AVX2_MC
#define MDM_AVX2_MC 144
#endif
#ifndef MDM_AVX2_KC
#define MDM_AVX2_KC 256
#endif
#ifndef MDM_AVX2_NC
#define MDM_AVX2_NC 4096
#endif

/// The bf16 kernel's micro-tile and cache blocks (kc counts depths, two per 32-bit slot).
#define MDM_BF16_MR 8
#define MDM_BF16_NR 32
#ifndef MDM_BF16_MC
#define MDM_BF16_MC 168
#endif
#ifndef MDM_BF16_KC
#define MDM_BF16_KC 768
#endif
#ifndef MDM_BF16_NC
#define MDM_BF16_NC 4096
#endif

// Row blocks must hold whole micro-tiles, column blocks whole panels (the pre-packed B's offsets).
_Static_assert(MDM_AVX512_MC % MDM_AVX512_MR == 0 && MDM_AVX512_NC % MDM_AVX512_NR == 0 && MDM_AVX512_KC > 0,
               "MDM_AVX512_MC must be a multiple of MDM_AVX512_MR, MDM_AVX512_NC of 32");
_Static_assert(MDM_AVX512S_MC % MDM_AVX512S_MR == 0 && MDM_AVX512S_NC % MDM_AVX512_NR == 0 && MDM_AVX512S_MR <= 14,
               "MDM_AVX512S_MC must be a multiple of MDM_AVX512S_MR (at most 14), MDM_AVX512S_NC of 32");
_Static_assert(MDM_AVX2_MC % MDM_AVX2_MR == 0 && MDM_AVX2_NC % MDM_AVX2_NR == 0 && MDM_AVX2_KC > 0,
               "MDM_AVX2_MC must be a multiple of 6, MDM_AVX2_NC of 16");

_Static_assert(MDM_BF16_MC % MDM_BF16_MR == 0 && MDM_BF16_NC % MDM_BF16_NR == 0 && MDM_BF16_KC > 0,
               "MDM_BF16_MC must be a multiple of 8, MDM_BF16_NC of 32");

/// Configurations; defined in gemm_avx2.c, gemm_avx512.c, gemm_avx512_emulated.c and gemm_bf16.c
/// (the AVX-512 kernel and its twin in both blockings).
extern const mdm_gemm_config mdm_gemm_config_bf16;
extern const mdm_gemm_config mdm_gemm_config_avx2;
extern const mdm_gemm_config mdm_gemm_config_avx512;
extern const mdm_gemm_config mdm_gemm_config_avx512_emulated;
extern const mdm_gemm_config mdm_gemm_config_avx512_streamed;
extern const mdm_gemm_config mdm_gemm_config_avx512_emulated_streamed;

#endif

// GEMM driver: run-time dispatch, cache blocking and the loops around the micro-kernel.
//
// Loop nest (Goto / BLIS order), for C (M, N) += op(A) (M, K) op(B) (K, N):
//   jc over N by nc:   pc over K by kc:   pack op(B)[pc.., jc..] (kc, nc) into (kc, nr) panels
//     ic over M by mc: pack op(A)[ic.., pc..] (mc, kc) into (mr, kc) panels
//       jr over nc by nr: ir over mc by mr: micro-kernel on one (mr, nr) tile of C
// The first kc block applies the caller's beta; later ones accumulate (beta 1). Block sizes are
// balanced (a 300-deep K becomes two 150-deep blocks, not 256 + 44). The "streamed" blocking swaps
// the two inner loops (ir outside jr: an A micro-panel stays in L1 while the B block, sized for
// L2, streams past it).
#include <stdlib.h>
#include "CKernels.h"
#include "gemm_internal.h"

static int has(int isa) {
    __builtin_cpu_init();
    switch (isa) {
    case MASKDM_GEMM_ISA_AVX2:
    case MASKDM_GEMM_ISA_AVX512_EMULATED:
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case MASKDM_GEMM_ISA_AVX512:
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
            && __builtin_cpu_supports("fma");
    case MASKDM_GEMM_ISA_AVX512_BF16:
        return has(MASKDM_GEMM_ISA_AVX512) && __builtin_cpu_supports("avx512bw")
            && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx2");
    default:
        return 0;
    }
}

int maskdm_gemm_isa_supported(int isa) { return has(isa & 0xff); }
int maskdm_gemm_has_avx512(void) { return has(MASKDM_GEMM_ISA_AVX512); }

int maskdm_gemm_kernels_optimized(void) {
#ifdef __OPTIMIZE__
    return 1;
#else
    return 0;
#endif
}

int maskdm_gemm_best_isa(void) {
    if (has(MASKDM_GEMM_ISA_AVX512)) return MASKDM_GEMM_ISA_AVX512;
    if (has(MASKDM_GEMM_ISA_AVX2)) return MASKDM_GEMM_ISA_AVX2;
    return MASKDM_GEMM_ISA_NONE;
}

/// The kernel chosen by maskdm_gemm_select_isa, or -1 for the best one.
static int selected_isa = -1;

int maskdm_gemm_selected_isa(void) {
    int isa = __atomic_load_n(&selected_isa, __ATOMIC_RELAXED);
    return isa >= 0 ? isa : maskdm_gemm_best_isa();
}

int maskdm_gemm_select_isa(int isa) {
    if (!has(isa)) return 0;
    __atomic_store_n(&selected_isa, isa, __ATOMIC_RELAXED);
    return 1;
}

int maskdm_gemm_default_blocking(void) {
    __builtin_cpu_init();
    return __builtin_cpu_is("intel") ? MASKDM_GEMM_BLOCKING_STREAMED : MASKDM_GEMM_BLOCKING_RESIDENT;
}

/// The blocking maskdm_gemm_select_blocking chose, or 0 for the default one.
static int selected_blocking = 0;

int maskdm_gemm_selected_blocking(void) {
    int b = __atomic_load_n(&selected_blocking, __ATOMIC_RELAXED);
    return b ? b : maskdm_gemm_default_blocking();
}

int maskdm_gemm_select_blocking(int blocking) {
    if (blocking != MASKDM_GEMM_BLOCKING_RESIDENT && blocking != MASKDM_GEMM_BLOCKING_STREAMED) return 0;
    __atomic_store_n(&selected_blocking, blocking, __ATOMIC_RELAXED);
    return 1;
}

/// The configuration of a kernel code: an instruction set, optionally with a blocking flag
/// (MASKDM_GEMM_BLOCKING_* << 8) that overrides the selected blocking. Blockings apply to the
/// AVX-512 kernel and its twin; the others have one each.
static const mdm_gemm_config *config(int code) {
    int blocking = code >> 8 ? code >> 8 : -1;
    switch (code & 0xff) {
    case MASKDM_GEMM_ISA_AVX2: return &mdm_gemm_config_avx2;
    case MASKDM_GEMM_ISA_AVX512:
    case MASKDM_GEMM_ISA_AVX512_EMULATED: {
        if (blocking < 0) blocking = maskdm_gemm_selected_blocking();
        int streamed = blocking == MASKDM_GEMM_BLOCKING_STREAMED;
        if ((code & 0xff) == MASKDM_GEMM_ISA_AVX512) return streamed ? &mdm_gemm_config_avx512_streamed : &mdm_gemm_config_avx512;
        return streamed ? &mdm_gemm_config_avx512_emulated_streamed : &mdm_gemm_config_avx512_emulated;
    }
    case MASKDM_GEMM_ISA_AVX512_BF16: return &mdm_gemm_config_bf16;
    default: return 0;
    }
}

void maskdm_gemm_micro_tile(int isa, int *mr, int *nr) {
    const mdm_gemm_config *cfg = config(isa);
    *mr = cfg ? cfg->mr : 0;
    *nr = cfg ? cfg->nr : 0;
}

static long round_up(long x, long m) { return (x + m - 1) / m * m; }

/// Even split of `n` into blocks of at most `limit`, rounded up to a multiple of `unit`.
static int balanced(int n, int limit, int unit) {
    if (n <= 0) return unit;
    long blocks = (n + limit - 1) / limit;
    long size = round_up((n + blocks - 1) / blocks, unit);
    return (int)(size < limit ? size : limit);
}

typedef struct { int mc, nc, kc; long b_floats, a_floats; } blocking;

/// Offset (in 32-bit slots) of column j's panel in the depth block starting at depth pc of a
/// packed B (maskdm_sgemm_pack_b's layout): each full depth block of kcb depths holds all npad
/// columns, the block at pc is kc deep; j = npad past the last block gives the buffer's size.
static long packed_b_offset(const mdm_gemm_config *cfg, int kcb, int pc, int kc, long npad, long j) {
    return (long)(pc / kcb) * mdm_panel_depth(cfg, kcb) * npad + j * mdm_panel_depth(cfg, kc);
}

static blocking block_sizes(const mdm_gemm_config *cfg, int M, int N, int K) {
    blocking b;
    b.mc = balanced(M, cfg->mc, cfg->mr);
    b.nc = balanced(N, cfg->nc, cfg->nr);
    b.kc = balanced(K, cfg->kc, 1);
    b.b_floats = round_up(mdm_panel_depth(cfg, b.kc) * b.nc, 16);
    b.a_floats = round_up(mdm_panel_depth(cfg, b.kc) * b.mc, 16);
    return b;
}

size_t maskdm_sgemm_workspace_size(int M, int N, int K) {
    // A bound for every product up to (M, N, K), not just this one: balanced blocks are not
    // monotonic (M = 192 packs two 96-row A blocks, M = 108 one 108-row block), and callers size
    // one workspace for a family of products (ragged attention tiles, thread chunks).
    long most = 0;
    const mdm_gemm_config *all[] = {&mdm_gemm_config_avx2, &mdm_gemm_config_avx512, &mdm_gemm_config_avx512_streamed,
                                    &mdm_gemm_config_bf16};
    for (int i = 0; i < 4; i++) {
        const mdm_gemm_config *cfg = all[i];
        long mc = round_up(M > 0 ? M : 1, cfg->mr), nc = round_up(N > 0 ? N : 1, cfg->nr), kc = K > 0 ? K : 1;
        if (mc > cfg->mc) mc = cfg->mc;
        if (nc > cfg->nc) nc = cfg->nc;
        if (kc > cfg->kc) kc = cfg->kc;
        long need = round_up(mdm_panel_depth(cfg, kc) * nc, 16) + round_up(mdm_panel_depth(cfg, kc) * mc, 16);
        if (need > most) most = need;
    }
    return (size_t)most + 16;
}

/// C = beta C without reading C when beta is 0.
static void scale_c(int M, int N, float beta, float *C, long ldc) {
    for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0) {
            for (int j = 0; j < N; j++) c[j] = 0;
        } else if (beta != 1) {
            for (int j = 0; j < N; j++) c[j] *= beta;
        }
    }
}

/// C[i, j] += bias[j] (nothing when bias is NULL).
static void add_bias(int M, int N, const float *bias, float *C, long ldc) {
    if (!bias) return;
    for (int i = 0; i < M; i++) {
        float *c = C + i * ldc;
        for (int j = 0; j < N; j++) c[j] += bias[j];
    }
}

/// The rows of the tile at row ir of an mc-row block, and the columns of the tile at column jr of
/// an nc-column block (MR and NR but at the ragged edges).
static inline int tile_rows(const mdm_gemm_config *cfg, int ir, int mc) { return mc - ir < cfg->mr ? mc - ir : cfg->mr; }
static inline int tile_columns(const mdm_gemm_config *cfg, int jr, int nc) { return nc - jr < cfg->nr ? nc - jr : cfg->nr; }

/// The micro-kernel on the tile at (ir, jr) of an (mc, nc) block of C whose packed A and B
/// blocks are `apack` and `bblock` (panels `kd` floats deep per line).
static inline void tile(const mdm_gemm_config *cfg, int ir, int jr, int mc, int nc, int kc, long kd,
                        const float *apack, const float *bblock, float *cblock, long ldc, float alpha, float beta,
                        const float *bias) {
    int mr = tile_rows(cfg, ir, mc), nr = tile_columns(cfg, jr, nc);
    // Ragged edges run a kernel that skips the tile's unused half (same values): a narrow panel
    // the column half kernel, a short row tile the row half kernel.
    mdm_microkernel kernel = nr <= cfg->nr / 2 && cfg->half ? cfg->half
        : mr <= cfg->mr / 2 && cfg->rows ? cfg->rows : cfg->kernel;
    kernel(kc, apack + (long)ir * kd, bblock + (long)jr * kd, cblock + (long)ir * ldc + jr, ldc, alpha, beta, mr, nr,
           bias ? bias + jr : 0);
}

/// C[i][j] = max(C[i][j] + bias[i], 0) over an (M, N) block of C: the convolutions' bias + ReLU
/// (`v < 0 ? 0 : v`: NaN stays NaN, -0 stays -0). The one implementation: the products' epilogue
/// runs it tile by tile, and the Swift pass after an unfused product (`Kernels.biasReLU`) row
/// range by row range.
void maskdm_bias_relu(int M, int N, const float *bias, float *C, long ldc) {
    for (int i = 0; i < M; i++) {
        float b = bias[i], *c = C + (long)i * ldc;
        for (int j = 0; j < N; j++) {
            float v = c[j] + b;
            c[j] = v < 0 ? 0.0f : v;
        }
    }
}

/// bias_relu on tile (ir, jr) of a C block, with `bias` at the block's first row: applied as the
/// tile's last depth block is stored, while the tile is in L1.
static inline void bias_relu_tile(const mdm_gemm_config *cfg, int ir, int jr, int mc, int nc, float *cblock, long ldc,
                                  const float *bias) {
    maskdm_bias_relu(tile_rows(cfg, ir, mc), tile_columns(cfg, jr, nc), bias + ir, cblock + (long)ir * ldc + jr, ldc);
}

/// Packs the (kc, nc) block at depth pc and column jc of `g`'s im2col matrix into panels of `w`
/// columns ([panel][p][w], the last panel zero-padded), as the packers lay out a formed matrix.
/// Each depth row is walked across all the block's panels (as the copy packer does), so the reads
/// of one row of x stay sequential; mdm_pack_conv_avx2 assembles each panel line from the runs.
static void pack_conv(const maskdm_conv_geometry *g, int pc, int kc, long jc, int nc, int w, float *dst) {
    long ohw = (long)g->oh * g->ow;
    // The block's columns as runs, in order: a run ends where a panel or an output row ends.
    mdm_conv_run small[1024];
    mdm_conv_run *runs = nc <= 1024 ? small : malloc(sizeof(mdm_conv_run) * (size_t)nc);
    if (!runs) abort();
    int count = 0;
    for (int l = 0; l < nc;) {
        long j = jc + l, image = j / ohw, rest = j % ohw;
        int oy = (int)(rest / g->ow), ox = (int)(rest % g->ow), lane = l % w;
        int n = g->ow - ox;
        if (n > w - lane) n = w - lane;
        if (n > nc - l) n = nc - l;
        runs[count++] = (mdm_conv_run){l / w, lane, n, oy, ox, image};
        l += n;
    }
    // Every fp32 kernel's CPU has AVX2 (the AVX-512 configs pack their other operands with it too).
    mdm_pack_conv_avx2(g, runs, count, pc, kc, w, dst);
    if (runs != small) free(runs);
}

/// The loop nest. With `packedB` (from maskdm_sgemm_pack_b) the B blocks are read from it: it
/// holds `packed_n` columns, of which this product's N start at column `packed_j0` (a multiple of
/// NR); otherwise each block is packed into the workspace just before use.
/// With `conv`, B is the im2col matrix of `conv` from column `conv_j0` on, packed straight from x.
/// With `row_bias_relu` (M floats), each C tile becomes max(C + row_bias_relu[row], 0) once its
/// last depth block is stored (with K == 0 or alpha == 0, once C is scaled).
static void gemm(int isa, int transA, int transB, int M, int N, int K, float alpha,
                 const float *A, int lda, const float *B, int ldb, const float *packedB, int packed_n,
                 int packed_j0, const maskdm_conv_geometry *conv, long conv_j0,
                 float beta, float *C, int ldc, const float *bias, const float *row_bias_relu, float *workspace) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0 || alpha == 0) {
        scale_c(M, N, beta, C, ldc);
        add_bias(M, N, bias, C, ldc);
        if (row_bias_relu) maskdm_bias_relu(M, N, row_bias_relu, C, ldc);
        return;
    }
    const mdm_gemm_config *cfg = config(isa);
    if (!cfg) return;
    blocking bs = block_sizes(cfg, M, N, K);
    float *bpack = workspace;
    float *apack = workspace + bs.b_floats;
    long npad = round_up(packedB ? packed_n : N, cfg->nr);
    // op(A)(i, p) = A[i * a_rs + p * a_cs];  op(B)(p, j) = B[p * b_rs + j * b_cs].
    long a_rs = transA ? 1 : lda, a_cs = transA ? lda : 1;
    long b_rs = transB ? 1 : ldb, b_cs = transB ? ldb : 1;
    for (int jc = 0; jc < N; jc += bs.nc) {
        int nc = N - jc < bs.nc ? N - jc : bs.nc;
        for (int pc = 0; pc < K; pc += bs.kc) {
            int kc = K - pc < bs.kc ? K - pc : bs.kc;
            long kd = mdm_panel_depth(cfg, kc);  // floats per panel line
            float beta_block = pc == 0 ? beta : 1.0f;
            const float *bias_block = pc == 0 && bias ? bias + jc : 0;  // the bias joins the first sum
            const float *bblock = bpack;
            if (packedB) {
                bblock = packedB + packed_b_offset(cfg, bs.kc, pc, kc, npad, packed_j0 + jc);
            } else if (conv) {
                pack_conv(conv, pc, kc, conv_j0 + jc, nc, cfg->nr, bpack);
            } else {
                // B block: lines are columns j (stride b_cs), depth is p (stride b_rs).
                cfg->pack(B + pc * b_rs + jc * b_cs, b_cs, b_rs, nc, kc, cfg->nr, bpack);
            }
            for (int ic = 0; ic < M; ic += bs.mc) {
                int mc = M - ic < bs.mc ? M - ic : bs.mc;
                // A block: lines are rows i (stride a_rs), depth is p (stride a_cs).
                cfg->pack(A + ic * a_rs + pc * a_cs, a_rs, a_cs, mc, kc, cfg->mr, apack);
                // Tiles in column-panel-major order (resident) or row-tile-major order (streamed);
                // each tile's arithmetic is the same either way.
                float *cblock = C + (long)ic * ldc + jc;
                const float *relu_bias = row_bias_relu && pc + kc >= K ? row_bias_relu + ic : 0;
                if (cfg->streamed) {
                    for (int ir = 0; ir < mc; ir += cfg->mr) {
                        for (int jr = 0; jr < nc; jr += cfg->nr) {
                            tile(cfg, ir, jr, mc, nc, kc, kd, apack, bblock, cblock, ldc, alpha, beta_block, bias_block);
                            if (relu_bias) bias_relu_tile(cfg, ir, jr, mc, nc, cblock, ldc, relu_bias);
                        }
                    }
                } else {
                    for (int jr = 0; jr < nc; jr += cfg->nr) {
                        for (int ir = 0; ir < mc; ir += cfg->mr) {
                            tile(cfg, ir, jr, mc, nc, kc, kd, apack, bblock, cblock, ldc, alpha, beta_block, bias_block);
                            if (relu_bias) bias_relu_tile(cfg, ir, jr, mc, nc, cblock, ldc, relu_bias);
                        }
                    }
                }
            }
        }
    }
}

void maskdm_sgemm_block_isa(int isa, int transA, int transB, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb, float beta,
                            float *C, int ldc, const float *bias, float *workspace) {
    gemm(isa, transA, transB, M, N, K, alpha, A, lda, B, ldb, 0, 0, 0, 0, 0, beta, C, ldc, bias, 0, workspace);
}

void maskdm_sgemm_conv_block(int isa, int M, int N, int K, const float *A, int lda,
                             const maskdm_conv_geometry *g, long j0, float *C, int ldc, const float *row_bias_relu,
                             float *workspace) {
    const mdm_gemm_config *cfg = config(isa);
    if (!cfg || cfg->pairs || !g || K != g->channels * g->kh * g->kw) return;
    gemm(isa, 0, 0, M, N, K, 1.0f, A, lda, 0, 0, 0, 0, 0, g, j0, 0.0f, C, ldc, 0, row_bias_relu, workspace);
}

size_t maskdm_sgemm_packed_b_size(int isa, int N, int K) {
    const mdm_gemm_config *cfg = config(isa);
    if (!cfg || N <= 0 || K <= 0) return 16;
    // K slots per line, or for bf16 pairs the sum of ceil(kc/2) over the depth blocks, bounded by
    // (K + blocks) / 2. The bound, not the exact sum: it never shrinks as K grows (the exact sum
    // can, from three balanced blocks on: 1539 depths need 771 slots, 1540 only 770), so a buffer
    // sized for a depth also holds every shallower pack (attention's last key block, a row split's
    // last slab).
    int kcb = balanced(K, cfg->kc, 1);
    long blocks = (K + kcb - 1) / kcb;
    long slots = cfg->pairs ? ((long)K + blocks + 1) / 2 : K;
    return (size_t)(slots * round_up(N, cfg->nr)) + 16;
}

void maskdm_sgemm_pack_b(int isa, int transB, int N, int K, const float *B, int ldb, int j0, int j1,
                         float *packedB) {
    const mdm_gemm_config *cfg = config(isa);
    if (!cfg || K <= 0 || j1 <= j0) return;
    int kcb = balanced(K, cfg->kc, 1);
    long npad = round_up(N, cfg->nr);
    long b_rs = transB ? 1 : ldb, b_cs = transB ? ldb : 1;
    for (int pc = 0; pc < K; pc += kcb) {
        int kc = K - pc < kcb ? K - pc : kcb;
        cfg->pack(B + pc * b_rs + j0 * b_cs, b_cs, b_rs, j1 - j0, kc, cfg->nr,
                  packedB + packed_b_offset(cfg, kcb, pc, kc, npad, j0));
    }
}

void maskdm_sgemm_packed_b(int isa, int transA, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *packedB, float beta,
                           float *C, int ldc, const float *bias, float *workspace) {
    gemm(isa, transA, 0, M, N, K, alpha, A, lda, 0, 0, packedB, N, 0, 0, 0, beta, C, ldc, bias, 0, workspace);
}

void maskdm_sgemm_packed_b_columns(int isa, int transA, int M, int packedN, int j0, int j1, int K, float alpha,
                                   const float *A, int lda, const float *packedB, float beta,
                                   float *C, int ldc, const float *bias, float *workspace) {
    const mdm_gemm_config *cfg = config(isa);
    if (!cfg || j0 < 0 || j1 > packedN || j1 <= j0 || j0 % cfg->nr != 0) return;
    gemm(isa, transA, 0, M, j1 - j0, K, alpha, A, lda, 0, 0, packedB, packedN, j0, 0, 0, beta, C + j0, ldc,
         bias ? bias + j0 : 0, 0, workspace);
}

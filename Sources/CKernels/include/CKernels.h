// Single-threaded fp32 GEMM kernels with run-time instruction-set dispatch.
//
// `maskdm_sgemm_block_isa` computes a row-major C = alpha op(A) op(B) + beta C on one block, Goto
// style: panels of op(B) and op(A) are packed into a caller-provided workspace and a
// register-blocked micro-kernel (broadcast + FMA into vector accumulators) walks them. The SIMD code
// is compiled with per-function target attributes, so the library builds with default flags and
// picks AVX-512 or AVX2+FMA at run time; when neither is present the caller must use another GEMM
// (the Swift wrapper falls back to OpenBLAS). Threading is the caller's job: split C into disjoint
// blocks and give each its own workspace.
#ifndef MASKDM_CKERNELS_H
#define MASKDM_CKERNELS_H
#include <stddef.h>

/// Kernel instruction sets: NONE, AVX2 and AVX512 in increasing order of preference, then a
/// test-only twin of AVX512.
typedef enum {
    MASKDM_GEMM_ISA_NONE = 0,    ///< no supported SIMD: use another GEMM
    MASKDM_GEMM_ISA_AVX2 = 1,    ///< AVX2 + FMA, 256-bit vectors, 6x16 micro-tile
    MASKDM_GEMM_ISA_AVX512 = 2,  ///< AVX-512F/VL, 512-bit vectors, 8x32 or 14x32 micro-tile (see below)
    /// The AVX-512 kernel's tile and blocking built from AVX2 + FMA instructions (slow; for
    /// testing the AVX-512 geometry on CPUs without it). Never the best instruction set.
    MASKDM_GEMM_ISA_AVX512_EMULATED = 3,
    /// Mixed precision on AVX512_BF16 CPUs: A and B rounded to bf16 as they are packed, products
    /// summed in fp32 (8x32 micro-tile). Opt-in only: never the best instruction set.
    MASKDM_GEMM_ISA_AVX512_BF16 = 4,
} maskdm_gemm_isa;

/// How the AVX-512 kernel (and its emulated twin) walks a product: which micro-panel stays in L1
/// while the other operand's panels stream past it. Both compute every entry of C in the same
/// order (the same depth blocks), so they differ only in speed, except that a tile cut short by
/// C's edge applies an alpha other than 1 or a beta other than 0 and 1 in a separate rounding: such
/// entries can differ in the last bit between the two (their tiles are 8 and 14 rows tall).
typedef enum {
    /// 8x32 tile; a B micro-panel (kc x 32) stays while the A micro-panels stream past it;
    /// column blocks of 4096. Tuned on AMD Zen 4 (32 KB L1d, 1 MB L2).
    MASKDM_GEMM_BLOCKING_RESIDENT = 1,
    /// 14x32 tile; an A micro-panel (14 x kc) stays while the B micro-panels of a 512-column block
    /// (768 KB, held in L2) stream past it. Tuned on an Intel Xeon (48 KB L1d, 2 MB L2).
    MASKDM_GEMM_BLOCKING_STREAMED = 2,
} maskdm_gemm_blocking;

/// The blocking this CPU runs by default: STREAMED on Intel CPUs, RESIDENT on others.
int maskdm_gemm_default_blocking(void);

/// The selected blocking: the one `maskdm_gemm_select_blocking` chose, else the default.
int maskdm_gemm_selected_blocking(void);

/// Makes `blocking` the selected one for every later product of the AVX-512 kernel and its twin.
/// Returns 1, or 0 (and changes nothing) for a value that names no blocking. A kernel code of
/// `isa | blocking << 8`, where the functions below take an instruction set, runs that blocking
/// for that call alone.
int maskdm_gemm_select_blocking(int blocking);

/// The best instruction set this CPU supports (from `__builtin_cpu_supports`).
int maskdm_gemm_best_isa(void);

/// The selected instruction set (the one callers pass by default): the one
/// `maskdm_gemm_select_isa` chose, else `maskdm_gemm_best_isa()`.
int maskdm_gemm_selected_isa(void);

/// Makes `isa` the selected kernel (e.g. AVX2 on an AVX-512 CPU, to compare the two). Returns 1, or 0 (and changes nothing) when this CPU cannot run it. Call it before any
/// product: workspaces and packed operands are sized per instruction set.
int maskdm_gemm_select_isa(int isa);

/// 1 when the CPU supports AVX-512F (and so the AVX-512 kernel), else 0.
int maskdm_gemm_has_avx512(void);

/// 1 when this file's target was compiled with optimisation. At -O0 (SwiftPM debug builds) the
/// intrinsics kernels run about 150x slower (0.6 instead of 85 GFLOP/s measured), so callers
/// should prefer another GEMM then.
int maskdm_gemm_kernels_optimized(void);

/// 1 when `isa` is a kernel instruction set this CPU can run, else 0.
int maskdm_gemm_isa_supported(int isa);

/// Micro-tile rows (MR) and columns (NR) of the kernel for `isa` (0 and 0 for NONE).
/// Splitting C at multiples of these keeps every block's tiles full.
void maskdm_gemm_micro_tile(int isa, int *mr, int *nr);

/// Floats of workspace `maskdm_sgemm_block_isa` needs for any block up to (M, N, K) (every m <= M,
/// n <= N, k <= K), for any instruction set. The workspace must be 64-byte aligned.
size_t maskdm_sgemm_workspace_size(int M, int N, int K);

/// C = alpha op(A) op(B) + beta C, row-major, single-threaded, on kernel `isa` (which must satisfy
/// `maskdm_gemm_isa_supported`; `maskdm_gemm_selected_isa()` is the usual choice).
///
/// op(A) is (M, K): A is (M, K) with row stride lda, or (K, M) when transA != 0.
/// op(B) is (K, N): B is (K, N) with row stride ldb, or (N, K) when transB != 0.
/// C is (M, N) with row stride ldc. beta == 0 never reads C (it may hold NaN); alpha == 0 or
/// K == 0 never reads A or B. `workspace` holds `maskdm_sgemm_workspace_size(M, N, K)` floats,
/// 64-byte aligned. When `bias` is not NULL, C = alpha op(A) op(B) + beta C + bias[j] in every
/// row, added in the micro-kernel's store (with beta 0, the same values as broadcasting the bias
/// into C first and accumulating with beta 1).
void maskdm_sgemm_block_isa(int isa, int transA, int transB, int M, int N, int K, float alpha,
                            const float *A, int lda, const float *B, int ldb, float beta,
                            float *C, int ldc, const float *bias, float *workspace);

/// Floats of a buffer holding all of op(B) (K, N) packed for `isa` (see maskdm_sgemm_pack_b).
size_t maskdm_sgemm_packed_b_size(int isa, int N, int K);

/// The im2col matrix of a convolution over channel-major activations x (C, batch, H, W), read in
/// place: row r = (c, ki, kj) (r = (c * kh + ki) * kw + kj), column j = (image, oy, ox) over the
/// images [b0, b0 + images) (j = (image * oh + oy) * ow + ox); the entry is
/// x[c, b0 + image, oy * stride - ph + ki, ox * stride - pw + kj], or 0 in the padding.
typedef struct {
    const float *x;
    int channels, batch, height, width;
    int kh, kw, stride, ph, pw;
    int oh, ow, b0, images;
} maskdm_conv_geometry;

/// C (M, N) = A (M, K) x columns [j0, j0 + N) of the im2col matrix of `g` (K = channels*kh*kw
/// rows), with A's rows `lda` apart and C's `ldc`; C is not read. The (K, N) im2col operand is
/// never formed: each cache block of it is packed straight from x into the kernel's panels, so
/// the values, and every sum, are those of `maskdm_sgemm_block_isa` on the formed matrix. With
/// `row_bias_relu` (M floats, or NULL), C[i][j] = max(C[i][j] + row_bias_relu[i], 0), applied to
/// each tile as its last depth block is stored (the values of a separate pass). `isa` must be an
/// fp32 kernel (not the bf16 one; nothing is computed then); `workspace` as
/// `maskdm_sgemm_block_isa` for (M, N, K).
void maskdm_sgemm_conv_block(int isa, int M, int N, int K, const float *A, int lda,
                             const maskdm_conv_geometry *g, long j0, float *C, int ldc, const float *row_bias_relu,
                             float *workspace);

/// C[i][j] = max(C[i][j] + bias[i], 0) over an (M, N) matrix with rows `ldc` apart, in place: the
/// convolutions' bias + ReLU, as `maskdm_sgemm_conv_block` applies it (NaN stays NaN, -0 stays -0).
void maskdm_bias_relu(int M, int N, const float *bias, float *C, long ldc);

/// Packs columns [j0, j1) of op(B) (K, N) into `packedB` (maskdm_sgemm_packed_b_size floats,
/// 64-byte aligned) in the layout `maskdm_sgemm_packed_b` reads. j0 must be a multiple of the
/// kernel's NR and j1 a multiple of NR or N, so threads can pack disjoint column ranges of one
/// buffer concurrently. B is (K, N) with row stride ldb, or (N, K) when transB != 0.
void maskdm_sgemm_pack_b(int isa, int transB, int N, int K, const float *B, int ldb, int j0, int j1,
                         float *packedB);

/// `maskdm_sgemm_block_isa` with op(B) already packed by `maskdm_sgemm_pack_b` (all N columns), so
/// threads computing different row blocks of C share one packed B instead of each packing it.
/// Same workspace as maskdm_sgemm_block; `bias` as in maskdm_sgemm_block_isa (may be NULL).
void maskdm_sgemm_packed_b(int isa, int transA, int M, int N, int K, float alpha,
                           const float *A, int lda, const float *packedB, float beta,
                           float *C, int ldc, const float *bias, float *workspace);

/// `maskdm_sgemm_packed_b` on columns [j0, j1) of a packed B of `packedN` columns: C's and the
/// bias's columns j0..<j1 (C and bias point at column 0), so threads can split a shared packed B
/// by columns. j0 must be a multiple of the kernel's NR; an invalid range does nothing.
void maskdm_sgemm_packed_b_columns(int isa, int transA, int M, int packedN, int j0, int j1, int K, float alpha,
                                   const float *A, int lda, const float *packedB, float beta,
                                   float *C, int ldc, const float *bias, float *workspace);

/// Test hook: packs panels of every width the kernels use (including AVX-512's) with the
/// vectorised packer and the portable one and returns the number of differing floats (0 = pass),
/// or -1 when the CPU lacks AVX2.
int maskdm_gemm_pack_self_test(void);

/// Test hook: the bf16 packer's vectorised paths against its portable one (and so the hardware's
/// bf16 rounding against the portable rounding) over both panel widths, strides and ragged
/// shapes, on values that include ties, denormals, infinities and NaN. Returns the number of
/// differing slots (0 = pass), or -1 when the CPU lacks AVX512_BF16.
int maskdm_gemm_pack_bf16_self_test(void);

/// The bf16 value (as its 16 bits) the bf16 kernel rounds `x` to (nearest, ties to even; zero and
/// denormals to a signed zero; NaN stays NaN).
unsigned short maskdm_bf16_round(float x);

/// One softmax row with a scale (AVX2 + FMA; call only when `maskdm_gemm_isa_supported(AVX2)`):
/// y = softmax(scale * x) over n values (y may alias x); returns the row's log-sum-exp of scale * x.
float maskdm_softmax_row_avx2(const float *x, float *y, int n, float scale);

/// One attention-backward row (AVX2 + FMA): p = exp(scale * p - lse) in place of the logits, then
/// dp = p * (dp - <p, dp>) in place of dp.
void maskdm_softmax_grad_row_avx2(float *p, float *dp, int n, float scale, float lse);

/// One row of one key block of the tiled (flash-style) attention forward (AVX2 + FMA): `m` is the
/// row's running maximum of scale * logits (-inf before the first block) and `l` its running sum
/// of exponentials. Replaces the n logits `s` by exp(scale * s - m_new), updates m and l, and
/// returns exp(m_old - m_new) (0 for the first block): the factor the row's accumulated output
/// must be multiplied by before this block's contribution is added.
float maskdm_online_softmax_row_avx2(float *s, int n, float scale, float *m, float *l);

/// One row of one key block of the tiled attention backward (AVX2 + FMA): p = exp(scale * p - lse)
/// in place of the logits, and dp = p * (dp - dot) in place of dp, where dot = <dO_i, O_i> is the
/// row's full softmax-backward correction (computed once from the forward output).
void maskdm_softmax_grad_row_given_avx2(float *p, float *dp, int n, float scale, float lse, float dot);

/// Exact GELU `y = 0.5 x (1 + erf(x / sqrt 2))` over n floats (AVX2 + FMA; call only on CPUs with
/// both). Same approximation as the Swift `FastMath.erf` (|error| < 5e-7).
void maskdm_gelu_forward_avx2(const float *x, float *y, long n);

/// GELU backward over n floats (AVX2 + FMA): dx += dy (Phi(x) + x phi(x)) when `accumulate` is
/// non-zero, else dx = dy (Phi(x) + x phi(x)) without reading dx.
void maskdm_gelu_backward_avx2(const float *dy, const float *x, float *dx, long n, int accumulate);

/// `maskdm_gelu_forward_avx2` and `maskdm_gelu_backward_avx2` on 16 lanes (call only on CPUs with
/// AVX-512F, AVX2 and FMA): the same values, bit for bit.
void maskdm_gelu_forward_avx512(const float *x, float *y, long n);
void maskdm_gelu_backward_avx512(const float *dy, const float *x, float *dx, long n, int accumulate);

/// The per-step constants of `maskdm_adamw_avx2` (see the Swift `AdamWStepConstants`).
typedef struct {
    float gradient_scale;        ///< gradients are multiplied by it when below 1 (clipping, 1/ranks)
    float decay;                 ///< 1 - lr * weight_decay
    float one_minus_beta1, beta2, one_minus_beta2, eps;
    float step_size;             ///< lr / (1 - beta1^t)
    float bias_correction2_root; ///< sqrt(1 - beta2^t)
    float shadow_weight;         ///< EMA weight (shadow_mode 2)
    int shadow_mode;             ///< 0: no EMA, 1: shadow = p (warm-up copy), 2: shadow += w (p - shadow)
} maskdm_adamw_constants;

/// AdamW on n elements, then the EMA from the new weights when `shadow` is non-null (AVX2; call
/// only on CPUs with it). Bit-identical to the Swift `Kernels.adamW` and `Naive.adamW` (no fused
/// multiply-adds).
void maskdm_adamw_avx2(float *p, const float *g, float *m, float *v, float *shadow, long n,
                       const maskdm_adamw_constants *k);

/// LayerNorm of `rows` rows of `cols` (AVX2 + FMA): y = (x - mean) rstd w + b; mean and rstd
/// (either may be null) receive each row's statistics. Same algorithm as the Swift kernel.
void maskdm_layernorm_forward_avx2(const float *x, const float *w, const float *b, float *y,
                                   float *mean, float *rstd, long rows, int cols, float eps);

/// LayerNorm backward to the input, accumulating into dx, for `rows` rows (AVX2 + FMA).
void maskdm_layernorm_backward_input_avx2(const float *dy, const float *x, const float *w,
                                          const float *mean, const float *rstd, float *dx,
                                          long rows, int cols);

/// LayerNorm parameter gradients of columns [lo, hi) over all rows, accumulating into dw and db
/// (either may be null) (AVX2 + FMA).
void maskdm_layernorm_backward_params_avx2(const float *dy, const float *x, const float *mean,
                                           const float *rstd, float *dw, float *db, long rows,
                                           int cols, int lo, int hi);

/// A spin-wait hint (x86 `pause`): lets the sibling hyper-thread run and saves power while a
/// worker thread polls for work.
static inline void maskdm_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// Runs `iterations` rounds of 12 independent fp32 FMAs on `isa`'s vectors and returns the
/// floating-point operations done (2 per lane per FMA), or 0 when the CPU lacks `isa`. Timing a
/// call on every core gives the machine's measured fp32 peak (the benchmarks' `peak_share`). The
/// emulated AVX-512 kernel counts as AVX2 (its instructions); the bf16 kernel's loop runs its
/// pairwise dot products (VDPBF16PS: 4 operations per lane), its peak in mixed precision.
double maskdm_fma_peak_flops(int isa, long iterations);

/// Resizes the mapping of `old_bytes` at `base` to `new_bytes` keeping its pages (Linux
/// `mremap`): in place when `destination` is NULL, else moved (without copying) to
/// `destination`, replacing whatever was mapped there. Returns the mapping's address, or NULL
/// when it cannot (`base` is then still mapped as it was; always NULL off Linux).
void *maskdm_remap(void *base, size_t old_bytes, size_t new_bytes, void *destination);

#endif

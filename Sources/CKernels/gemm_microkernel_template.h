// Micro-kernel template, included once per kernel (gemm_avx2.c, gemm_avx512.c,
// gemm_avx512_emulated.c, gemm_bf16.c).
//
// The includer defines: MK_NAME (function name), MK_TARGET (target attribute string), MK_MR
// (rows), MK_W (lanes per vector; the tile is MK_MR x 2*MK_W), MK_VEC (vector type) and the
// operations MK_ZERO(), MK_LOAD(p) (aligned), MK_LOADU(p), MK_STORE(p) (aligned), MK_STOREU(p, v),
// MK_SET1(x), MK_FMA(a, b, c) (a*b+c), MK_MUL(a, b).
// Optional depth hooks (defaults: one fp32 value per depth step): MK_STEPS(kc) (depth steps of a
// kc-deep panel), MK_BCAST(p) (the vector of A's entry at p) and MK_STEP(acc, a, b) (acc + a*b).
// The bf16 kernel (gemm_bf16.c) steps over pairs of depths: each 32-bit slot of its panels holds
// two bf16 values, and its step is a pairwise dot product.
//
// Per depth step p the kernel loads two vectors of the packed B panel (row p, NR = 2*MK_W
// columns), broadcasts each of the MK_MR packed A values of column p and issues 2*MK_MR multiply-adds
// (FMAs; pairwise dot products for bf16) into register accumulators; the tile of C is read (if beta != 0) and written once at the end.

#ifndef MK_STEPS
#define MK_STEPS(kc) (kc)
#endif
#ifndef MK_BCAST
#define MK_BCAST(p) MK_SET1(*(p))
#endif
#ifndef MK_STEP
#define MK_STEP(acc, a, b) MK_FMA(a, b, acc)
#endif

#define MK_PASTE2(a, b) a##b
#define MK_PASTE(a, b) MK_PASTE2(a, b)

// The ragged tiles' store: C's valid (mr, nr) corner from the spilled alpha * acc tile (rows of
// 2*MK_W), with beta and the bias as the full tile's store applies them. (Compiled for the kernel's
// target like its callers, so that an unoptimised build contracts `tr + beta * cr` alike.)
__attribute__((target(MK_TARGET)))
static inline void MK_PASTE(MK_NAME, _update)(const float *tile, float *restrict c, long ldc, float beta, int mr, int nr,
                                              const float *restrict bias) {
    for (int r = 0; r < mr; r++) {
        float *cr = c + r * ldc;
        const float *tr = tile + r * 2 * MK_W;
        if (bias) {
            if (beta == 0) {
                for (int j = 0; j < nr; j++) cr[j] = tr[j] + bias[j];
            } else {
                for (int j = 0; j < nr; j++) cr[j] = tr[j] + (beta * cr[j] + bias[j]);
            }
        } else if (beta == 0) {
            for (int j = 0; j < nr; j++) cr[j] = tr[j];
        } else {
            for (int j = 0; j < nr; j++) cr[j] = tr[j] + beta * cr[j];
        }
    }
}

__attribute__((target(MK_TARGET)))
static void MK_NAME(long kc, const float *restrict a, const float *restrict b, float *restrict c,
                    long ldc, float alpha, float beta, int mr, int nr, const float *restrict bias) {
    // Start fetching the C tile now: it is touched only at the end, and is usually not cached.
    for (int r = 0; r < mr; r++) {
        __builtin_prefetch(c + r * ldc, 1, 3);
        __builtin_prefetch(c + r * ldc + 2 * MK_W - 1, 1, 3);
    }
    MK_VEC lo[MK_MR], hi[MK_MR];
#pragma clang loop unroll(full)
    for (int r = 0; r < MK_MR; r++) { lo[r] = MK_ZERO(); hi[r] = MK_ZERO(); }
#pragma clang loop unroll_count(4)
    for (long p = 0, steps = MK_STEPS(kc); p < steps; p++) {
        __builtin_prefetch(a + 16 * MK_MR, 0, 3);  // the A panel streams from L2
        MK_VEC b0 = MK_LOAD(b), b1 = MK_LOAD(b + MK_W);
#pragma clang loop unroll(full)
        for (int r = 0; r < MK_MR; r++) {
            MK_VEC ar = MK_BCAST(a + r);
            lo[r] = MK_STEP(lo[r], ar, b0);
            hi[r] = MK_STEP(hi[r], ar, b1);
        }
        a += MK_MR;
        b += 2 * MK_W;
    }
    MK_VEC va = MK_SET1(alpha), vb = MK_SET1(beta);
    if (mr == MK_MR && nr == 2 * MK_W) {
        if (bias) {
            // alpha * acc + bias in one rounding when beta is 0: the same values as broadcasting
            // the bias into C first and accumulating with beta 1.
            MK_VEC bl = MK_LOADU(bias), bh = MK_LOADU(bias + MK_W);
#pragma clang loop unroll(full)
            for (int r = 0; r < MK_MR; r++) {
                MK_VEC l = beta == 0 ? bl : MK_FMA(vb, MK_LOADU(c + r * ldc), bl);
                MK_VEC h = beta == 0 ? bh : MK_FMA(vb, MK_LOADU(c + r * ldc + MK_W), bh);
                MK_STOREU(c + r * ldc, MK_FMA(lo[r], va, l));
                MK_STOREU(c + r * ldc + MK_W, MK_FMA(hi[r], va, h));
            }
            return;
        }
        if (beta == 0) {
#pragma clang loop unroll(full)
            for (int r = 0; r < MK_MR; r++) {
                MK_STOREU(c + r * ldc, MK_MUL(lo[r], va));
                MK_STOREU(c + r * ldc + MK_W, MK_MUL(hi[r], va));
            }
        } else {
#pragma clang loop unroll(full)
            for (int r = 0; r < MK_MR; r++) {
                MK_STOREU(c + r * ldc, MK_FMA(lo[r], va, MK_MUL(vb, MK_LOADU(c + r * ldc))));
                MK_STOREU(c + r * ldc + MK_W, MK_FMA(hi[r], va, MK_MUL(vb, MK_LOADU(c + r * ldc + MK_W))));
            }
        }
        return;
    }
    // Ragged tile: spill alpha * acc, then update only the valid (mr, nr) corner of C.
    _Alignas(64) float tile[MK_MR * 2 * MK_W];
#pragma clang loop unroll(full)
    for (int r = 0; r < MK_MR; r++) {
        MK_STORE(tile + r * 2 * MK_W, MK_MUL(lo[r], va));
        MK_STORE(tile + r * 2 * MK_W + MK_W, MK_MUL(hi[r], va));
    }
    MK_PASTE(MK_NAME, _update)(tile, c, ldc, beta, mr, nr, bias);
}

// The same product on part of the tile, for ragged edges: the first `rows` rows (MK_MR or
// MK_MR / 2) and the first `vecs` column vectors (2 or 1) only, when mr <= rows and nr <=
// vecs * MK_W. The panels keep their geometry (MK_MR rows, 2*MK_W columns per depth step); the
// skipped multiply-adds are those whose results MK_NAME's ragged path throws away, and the rest
// is that path bit for bit (the same accumulation, spill and scalar update of C). `rows` and
// `vecs` are constants in each caller below, so the loops unroll as in MK_NAME.
__attribute__((target(MK_TARGET), always_inline))
static inline void MK_PASTE(MK_NAME, _part)(const int rows, const int vecs, long kc, const float *restrict a,
                                            const float *restrict b, float *restrict c, long ldc, float alpha,
                                            float beta, int mr, int nr, const float *restrict bias) {
    for (int r = 0; r < mr; r++) {
        __builtin_prefetch(c + r * ldc, 1, 3);
        if (vecs == 2) __builtin_prefetch(c + r * ldc + 2 * MK_W - 1, 1, 3);
    }
    MK_VEC acc[MK_MR][2];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
#pragma clang loop unroll(full)
        for (int v = 0; v < vecs; v++) acc[r][v] = MK_ZERO();
    }
#pragma clang loop unroll_count(4)
    for (long p = 0, steps = MK_STEPS(kc); p < steps; p++) {
        __builtin_prefetch(a + 16 * MK_MR, 0, 3);
        MK_VEC bv[2];
#pragma clang loop unroll(full)
        for (int v = 0; v < vecs; v++) bv[v] = MK_LOAD(b + v * MK_W);
#pragma clang loop unroll(full)
        for (int r = 0; r < rows; r++) {
            MK_VEC ar = MK_BCAST(a + r);
#pragma clang loop unroll(full)
            for (int v = 0; v < vecs; v++) acc[r][v] = MK_STEP(acc[r][v], ar, bv[v]);
        }
        a += MK_MR;
        b += 2 * MK_W;
    }
    MK_VEC va = MK_SET1(alpha);
    _Alignas(64) float tile[MK_MR * 2 * MK_W];
#pragma clang loop unroll(full)
    for (int r = 0; r < rows; r++) {
#pragma clang loop unroll(full)
        for (int v = 0; v < vecs; v++) MK_STORE(tile + r * 2 * MK_W + v * MK_W, MK_MUL(acc[r][v], va));
    }
    MK_PASTE(MK_NAME, _update)(tile, c, ldc, beta, mr, nr, bias);
}

/// MK_NAME for a tile of nr <= MK_W columns (all rows): half the multiply-adds. A ragged last
/// panel of N % NR <= NR / 2 columns is one (257 keys of an attention head: one column).
__attribute__((target(MK_TARGET)))
static void MK_PASTE(MK_NAME, _half)(long kc, const float *restrict a, const float *restrict b, float *restrict c,
                                     long ldc, float alpha, float beta, int mr, int nr, const float *restrict bias) {
    MK_PASTE(MK_NAME, _part)(MK_MR, 1, kc, a, b, c, ldc, alpha, beta, mr, nr, bias);
}

/// MK_NAME for a tile of mr <= MK_MR / 2 rows (and more than MK_W columns; narrower ones take
/// the _half kernel): half the multiply-adds, for the ragged last row tile of M % MR <= MR / 2
/// rows.
__attribute__((target(MK_TARGET)))
static void MK_PASTE(MK_NAME, _rows)(long kc, const float *restrict a, const float *restrict b, float *restrict c,
                                     long ldc, float alpha, float beta, int mr, int nr, const float *restrict bias) {
    MK_PASTE(MK_NAME, _part)(MK_MR / 2, 2, kc, a, b, c, ldc, alpha, beta, mr, nr, bias);
}

#undef MK_PASTE
#undef MK_PASTE2
#undef MK_STEPS
#undef MK_BCAST
#undef MK_STEP

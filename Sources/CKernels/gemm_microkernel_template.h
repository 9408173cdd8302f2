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

#undef MK_STEPS
#undef MK_BCAST
#undef MK_STEP

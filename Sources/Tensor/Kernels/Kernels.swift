/// Fast kernels on raw buffers. Each op has a forward and a backward that *accumulates* (`+=`)
/// into gradient buffers, so zeroing gradients is one fill. Shapes are in the doc comments using
/// B (batch), T (tokens), C (channels), NH (heads), HS (head size), P (patch).
public enum Kernels {
    /// Whether the element-wise and row kernels (softmax rows, GELU, LayerNorm, the AdamW + EMA
    /// pass) run their AVX2 + FMA C versions, 8 lanes wide; the Swift code is compiled for
    /// baseline x86-64. Each C kernel has a portable Swift twin with the same maths, used when
    /// this is false.
    static let usesAVX2Kernels = Gemm.isaSupported(.avx2)
}

/// Straightforward reference implementations of the fast kernels ("naive twins"), used by the
/// tests as oracles and by the benchmarks as baselines. Correct, simple, slow.
public enum Naive {}

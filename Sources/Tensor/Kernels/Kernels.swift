/// Fast kernels on raw buffers. Each op has a forward and a backward that *accumulates* (`+=`)
/// into gradient buffers, so zeroing gradients is one fill. Shapes are in the doc comments using
/// B (batch), T (tokens), C (channels), NH (heads), HS (head size), P (patch).
public enum Kernels {
    /// Whether the element-wise and row kernels (softmax rows, GELU, LayerNorm, the AdamW + EMA
    /// pass) run their AVX2 + FMA C versions, 8 lanes wide; the Swift code is compiled for
    /// baseline x86-64. Each C kernel has a portable Swift twin with the same maths, used when
    /// this is false.
    static let usesAVX2Kernels = Gemm.isaSupported(.avx2)
    /// Whether the element-wise kernels with a 16-lane form (GELU) run it: when the selected GEMM
    /// kernel is an AVX-512 one, so that `MASKDM_GEMM_ISA=avx2` keeps every kernel on AVX2. Their
    /// values are the 8-lane kernels', bit for bit.
    static var usesAVX512Kernels: Bool {
        let isa = Gemm.instructionSet
        return isa == .avx512 || isa == .avx512BF16
    }
}

/// Straightforward reference implementations of the fast kernels ("naive twins"), used by the
/// tests as oracles and by the benchmarks as baselines. Correct, simple, slow.
public enum Naive {}

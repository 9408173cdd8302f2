import CBLAS

/// Thin, copy-free wrappers over OpenBLAS.
public enum BLAS {
    /// `C = alpha * op(A) op(B) + beta * C` for row-major matrices; `op` transposes when asked.
    /// `A` is (M, K) after `op`, `B` is (K, N) after `op`, `C` is (M, N).
    /// Leading dimensions default to tight packing of the stored (pre-`op`) matrices.
    @inlinable
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        if m == 0 || n == 0 { return }
        let la = lda ?? (transposeA ? m : k)
        let lb = ldb ?? (transposeB ? k : n)
        let lc = ldc ?? n
        cblas_sgemm(CblasRowMajor,
                    transposeA ? CblasTrans : CblasNoTrans,
                    transposeB ? CblasTrans : CblasNoTrans,
                    blasint(m), blasint(n), blasint(k), alpha,
                    a, blasint(la), b, blasint(lb), beta, c, blasint(lc))
    }

    /// Sets OpenBLAS's own thread count (process-wide: OpenBLAS has no per-call setting).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    /// OpenBLAS's current thread count.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

extension Tensor {
    /// Matrix product with NumPy-style batching, computed by `Gemm.sgemm` with transpose flags
    /// (no copies for transposes).
    ///
    /// - `a` (..., M, K) x `b` (K, N): the batch folds into one GEMM.
    /// - `a` (..., M, K) x `b` (..., K, N) with equal batch dimensions: one GEMM per batch item.
    /// `transposeA` / `transposeB` transpose the last two axes of the operand first.
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) -> Tensor {
        precondition(rank >= 2 && other.rank >= 2, "matmul needs rank >= 2 operands, got \(shape) and \(other.shape)")
        let (ar, ac) = (shape.dims[rank - 2], shape.dims[rank - 1])
        let (br, bc) = (other.shape.dims[other.rank - 2], other.shape.dims[other.rank - 1])
        let (m, k) = transposeA ? (ac, ar) : (ar, ac)
        let (k2, n) = transposeB ? (bc, br) : (br, bc)
        precondition(k == k2, "matmul: inner dimensions differ: \(shape)\(transposeA ? "^T" : "") x \(other.shape)\(transposeB ? "^T" : "")")
        let batchA = Array(shape.dims.dropLast(2))
        if other.rank == 2 && !transposeA {
            var out = Tensor(uninitialized: Shape(batchA + [m, n]))
            let rows = count / Swift.max(k, 1) == 0 ? 0 : shape.count / ac
            withExtendedLifetime((storage, other.storage)) {
                Gemm.sgemm(transposeB: transposeB, m: rows, n: n, k: k,
                           a: storage.base, b: other.storage.base, c: out.mutablePointer())
            }
            return out
        }
        let batchB = Array(other.shape.dims.dropLast(2))
        precondition(batchB.isEmpty || batchA == batchB,
                     "matmul: batch dimensions differ: \(shape) x \(other.shape)")
        let batch = batchA.reduce(1, *)
        var out = Tensor(uninitialized: Shape(batchA + [m, n]))
        let o = out.mutablePointer()
        let strideB = batchB.isEmpty ? 0 : br * bc
        withExtendedLifetime((storage, other.storage)) {
            for i in 0..<batch {
                Gemm.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k,
                           a: storage.base + i * ar * ac, b: other.storage.base + i * strideB,
                           c: o + i * m * n)
            }
        }
        return out
    }
}

import CKernels

extension Gemm {
    /// A right operand op(B) (K, N) packed once into the GEMM kernel's panel layout, for products
    /// that reuse one B many times: a linear layer's weight across the forward passes of a
    /// sampling run (see `ParameterStore.withPackedWeights` in NN). Every product then skips
    /// packing B, and threads share one copy instead of each packing its own.
    ///
    /// The panels are a copy: changing B afterwards does not change them. Requires
    /// ``hasSerialKernel`` (the own kernels); the layout belongs to the kernel selected when it was
    /// packed (``Gemm/instructionSet`` then), which every product with it runs.
    ///
    /// ```swift
    /// // y (M, N) = x (M, K) W^T, W stored (N, K), packed once and reused.
    /// let packed = Gemm.PackedMatrix(transposeB: true, n: n, k: k, b: w)
    /// Gemm.sgemm(m: m, a: x, packedB: packed, c: y)
    /// ```
    public final class PackedMatrix: @unchecked Sendable {
        // @unchecked Sendable: the panels are written once, in init, and only read afterwards.
        /// Columns of op(B) (the product's N).
        public let n: Int
        /// Rows of op(B) (the product's K).
        public let k: Int
        /// The panels (``Gemm/packedBSize(n:k:instructionSet:)`` floats of the kernel they were packed for, 64-byte
        /// aligned).
        let panels: TensorStorage
        /// The kernel whose layout the panels have.
        let instructionSet: InstructionSet

        /// Packs op(B) (K, N): B is (K, N) with row stride `ldb`, or (N, K) when `transposeB`
        /// (default `ldb`: tight). Threads from ``Parallel/threads`` pack disjoint column ranges.
        public init(transposeB: Bool, n: Int, k: Int, b: UnsafePointer<Float>, ldb: Int? = nil) {
            precondition(hasSerialKernel, "Gemm.PackedMatrix: no SIMD GEMM kernel on this CPU or build (check Gemm.hasSerialKernel)")
            precondition(n > 0 && k > 0 && max(n, k) <= Int(Int32.max), "Gemm.PackedMatrix: invalid size n \(n), k \(k)")
            let lb = ldb ?? (transposeB ? k : n)
            precondition(lb >= (transposeB ? k : n), "Gemm.PackedMatrix: ldb \(lb) too small for B \(transposeB ? "(\(n), \(k))" : "(\(k), \(n))")")
            self.n = n
            self.k = k
            instructionSet = Gemm.instructionSet
            let isa = instructionSet.rawValue, tb: Int32 = transposeB ? 1 : 0
            // 4 KiB pages: the kernel streams the panels in order, so huge pages buy little, and
            // a fresh huge page is slow to touch first on a VM whose host backs memory lazily.
            panels = TensorStorage(uninitializedCount: Int(maskdm_sgemm_packed_b_size(isa, Int32(n), Int32(k))), hugePages: false)
            let nr = Gemm.columnTile(isa), tiles = (n + nr - 1) / nr
            let bp = SendablePointer(b), dst = SendablePointer(panels.mutableBase)
            parallelFor(tiles) { range in   // one contiguous run of panels per thread
                let j0 = range.lowerBound * nr, j1 = min(n, range.upperBound * nr)
                maskdm_sgemm_pack_b(isa, tb, Int32(n), Int32(k), bp.base, Int32(lb), Int32(j0), Int32(j1), dst.base)
            }
        }

        /// Bytes the panels take.
        public var byteCount: Int { panels.count * MemoryLayout<Float>.size }
    }

    /// Kernel `isa`'s micro-tile width (NR): packed panels hold this many columns.
    static func columnTile(_ isa: Int32) -> Int {
        var mr: Int32 = 0, nr: Int32 = 0
        maskdm_gemm_micro_tile(isa, &mr, &nr)
        return Int(max(nr, 1))
    }

    /// `C = alpha * op(A) B + beta * C (+ bias in every row)` with B from a ``PackedMatrix``
    /// (N = `packedB.n`, K = `packedB.k`), on ``Parallel/threads`` threads (rows or columns of C
    /// per thread, as ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:bias:)``
    /// splits them), none of which packs B. The values are that method's on the unpacked B, bit
    /// for bit, with one exception: a threaded row split of a product whose B exceeds 2^20 floats
    /// packs the unpacked B in K slabs there, which can round differently in the last bits.
    public static func sgemm(transposeA: Bool = false, m: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil, packedB: PackedMatrix,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                             bias: UnsafePointer<Float>? = nil) {
        let n = packedB.n, k = packedB.k
        precondition(m >= 0, "Gemm.sgemm(packedB:): negative m \(m)")
        if m == 0 { return }
        let la = lda ?? (transposeA ? m : k), lc = ldc ?? n
        precondition(la >= (transposeA ? m : k) && lc >= n && max(m, la, lc) <= Int(Int32.max),
                     "Gemm.sgemm(packedB:): leading dimensions lda \(la), ldc \(lc) too small for "
                     + "A \(transposeA ? "(\(k), \(m))" : "(\(m), \(k))"), C (\(m), \(n))")
        let isa = packedB.instructionSet
        let plan = GemmSplit(isa: isa, m: m, n: n, k: k, threads: Parallel.threads)
        let perChunk = (maskdm_sgemm_workspace_size(Int32(plan.maxRows), Int32(plan.maxColumns), Int32(k)) + 15) / 16 * 16
        let ta: Int32 = transposeA ? 1 : 0
        let ap = SendablePointer(a), cp = SendablePointer(c), pb = SendablePointer(packedB.panels.mutableBase)
        let biasPointer = bias.map { SendablePointer($0) }
        withExtendedLifetime(packedB) {
            forEachBlock(of: plan, workspaceFloats: perChunk) { rows, columns, workspace in
                maskdm_sgemm_packed_b_columns(isa.rawValue, ta, Int32(rows.count), Int32(n),
                                              Int32(columns.lowerBound), Int32(columns.upperBound), Int32(k), alpha,
                                              ap + rows.lowerBound * (transposeA ? 1 : la), Int32(la), pb.base, beta,
                                              cp + rows.lowerBound * lc, Int32(lc), biasPointer?.base, workspace)
            }
        }
    }
}

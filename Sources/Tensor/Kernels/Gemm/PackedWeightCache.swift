import CKernels

/// Weight matrices packed once for the GEMM kernels and reused while they do not change.
///
/// Every product packs its right operand into the kernel's panel layout before multiplying. A
/// linear layer's right operand is its weight, and sampling runs the same network tens to hundreds
/// of times with the same weights. Inside ``withFrozenWeights(_:)``, a product that marks its
/// right operand as a weight (`weight: true` in
/// ``Gemm/sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:bias:weight:)``, as
/// every linear layer's forward pass does) packs it on first use and reads the packed copy from
/// then on. `Sampling.sample` runs its whole loop in such a scope.
///
/// The packed copies take as much memory as the weights they copy and are freed when the
/// outermost scope ends. Entries are keyed by the weight's address and shape: inside a scope, do
/// not change a weight, and do not free a model and build another (it could reuse the address).
///
/// ```swift
/// let y = PackedWeightCache.withFrozenWeights {
///     // Both products pack w once; the second reads the packed copy.
///     var out = [Float](repeating: 0, count: 4 * 3)
///     let w: [Float] = [1, 0, 0, 1, 2, 2, 0, 1, 0, 1, 0, 1]          // (3, 4)
///     let x = [Float](repeating: 1, count: 4 * 4)                    // (4, 4)
///     for _ in 0..<2 {
///         Gemm.sgemm(transposeB: true, m: 4, n: 3, k: 4, a: x, b: w, c: &out, bias: nil, weight: true)
///     }
///     return out
/// }
/// ```
public final class PackedWeightCache: @unchecked Sendable {
    // @unchecked Sendable: `entries` is guarded by its lock; a stored buffer is never written again.
    @TaskLocal static var current: PackedWeightCache?

    struct Key: Hashable {
        let address: Int, n: Int, k: Int, ldb: Int, transposed: Bool, isa: Int32
    }

    private let entries = PthreadLock<[Key: TensorStorage]>([:])

    private init() {}

    /// Runs `body` with the weights' packed copies kept for reuse (see the type's discussion);
    /// a nested call shares the outer scope's copies.
    public static func withFrozenWeights<R>(_ body: () throws -> R) rethrows -> R {
        if current != nil { return try body() }
        return try $current.withValue(PackedWeightCache()) { try body() }
    }

    /// Number of packed weights held (for tests and inspection).
    var count: Int { entries.withLock { $0.count } }

    /// op(B) (K, N) packed for `isa` over all of K and N, from the cache or packed now, with the
    /// columns split over `plan`'s chunks.
    func packed(isa: Gemm.InstructionSet, transposeB: Bool, n: Int, k: Int, b: UnsafePointer<Float>, ldb: Int,
                plan: GemmSplit) -> TensorStorage {
        let key = Key(address: Int(bitPattern: b), n: n, k: k, ldb: ldb, transposed: transposeB, isa: isa.rawValue)
        if let hit = entries.withLock({ $0[key] }) { return hit }
        let storage = TensorStorage(uninitializedCount: maskdm_sgemm_packed_b_size(isa.rawValue, Int32(n), Int32(k)))
        let bp = SendablePointer(UnsafeMutablePointer(mutating: b)), sp = SendablePointer(storage.mutableBase)
        parallelFor(plan.chunks) { range in
            for chunk in range {
                let columns = plan.packingColumns(chunk)
                maskdm_sgemm_pack_b(isa.rawValue, transposeB ? 1 : 0, Int32(n), Int32(k), bp.base, Int32(ldb),
                                    Int32(columns.lowerBound), Int32(columns.upperBound), sp.base)
            }
        }
        entries.withLock { $0[key] = storage }
        return storage
    }
}

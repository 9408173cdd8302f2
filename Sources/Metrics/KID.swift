// Kernel Inception Distance: the unbiased MMD^2 with a cubic polynomial kernel, over random subsets.
import Tensor

/// The Kernel Inception Distance (Binkowski et al. 2018) as torch-fidelity computes it: the
/// unbiased estimate of MMD^2 between two feature sets with the kernel
/// `k(x, y) = (x . y / d + 1)^3`, averaged over `subsets` random subsets of
/// `m = min(subsetSize, N_a, N_b)` vectors drawn without replacement from each side.
///
/// `MMD^2 = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (m (m - 1))
///          - 2 sum_{i, j} k(x_i, y_j) / m^2`.
/// `std` is the population standard deviation over the subsets (numpy's `std`). When both sets
/// have exactly m vectors every subset is the whole set, so it is computed once and `std` is 0.
/// Dot products are Float32 GEMMs; kernel values and sums are Float64.
/// ```swift
/// let kid = try KernelInceptionDistance(featsA, featsB, seed: 0)   // kid.mean, kid.std
/// ```
public struct KernelInceptionDistance: Sendable, Equatable {
    /// The mean MMD^2 over the subsets.
    public let mean: Double
    /// The standard deviation of MMD^2 over the subsets (population, ddof 0).
    public let std: Double
    /// The number of subsets.
    public let subsets: Int
    /// m, the vectors per subset and side.
    public let subsetSize: Int

    /// KID between `a` (N_a, D) and `b` (N_b, D) over `subsets` subsets of at most `subsetSize`
    /// vectors, drawn with a generator seeded by `seed`.
    /// - Throws: ``MetricsError/tooFewSamples(what:count:needed:)`` when a side has fewer than 2 vectors.
    public init(_ a: Tensor, _ b: Tensor, subsets: Int = 100, subsetSize: Int = 1000, seed: UInt64 = 0) throws {
        precondition(a.rank == 2 && b.rank == 2 && a.shape.dims[1] == b.shape.dims[1],
                     "KernelInceptionDistance: features \(a.shape) and \(b.shape) must be (N, D) with equal D")
        precondition(subsets > 0 && subsetSize > 1,
                     "KernelInceptionDistance: \(subsets) subsets of \(subsetSize) (need >= 1 of >= 2)")
        let na = a.shape.dims[0], nb = b.shape.dims[0]
        let m = Swift.min(subsetSize, na, nb)
        guard m >= 2 else { throw MetricsError.tooFewSamples(what: "KID", count: Swift.min(na, nb), needed: 2) }
        self.subsets = subsets
        self.subsetSize = m
        if m == na && m == nb {
            mean = KernelInceptionDistance.mmd2Unbiased(a, b)
            std = 0
            return
        }
        var rng = RandomGenerator(seed: seed)
        var values: [Double] = []
        for _ in 0..<subsets {
            let x = a.gatherRows(KernelInceptionDistance.sample(m, of: na, using: &rng))
            let y = b.gatherRows(KernelInceptionDistance.sample(m, of: nb, using: &rng))
            values.append(KernelInceptionDistance.mmd2Unbiased(x, y))
        }
        let mu = values.reduce(0, +) / Double(values.count)
        mean = mu
        std = (values.reduce(0) { $0 + ($1 - mu) * ($1 - mu) } / Double(values.count)).squareRoot()
    }

    /// The unbiased MMD^2 between `x` (m, D) and `y` (n, D) with the cubic polynomial kernel
    /// (the diagonal terms of the within-set sums are left out).
    public static func mmd2Unbiased(_ x: Tensor, _ y: Tensor) -> Double {
        precondition(x.rank == 2 && y.rank == 2 && x.shape.dims[1] == y.shape.dims[1],
                     "mmd2Unbiased: features \(x.shape) and \(y.shape) must be (N, D) with equal D")
        let m = x.shape.dims[0], n = y.shape.dims[0]
        precondition(m >= 2 && n >= 2, "mmd2Unbiased: need at least 2 vectors per side, got \(x.shape) and \(y.shape)")
        let xx = kernelSum(x, x, skipDiagonal: true)
        let yy = kernelSum(y, y, skipDiagonal: true)
        let xy = kernelSum(x, y, skipDiagonal: false)
        return xx / Double(m * (m - 1)) + yy / Double(n * (n - 1)) - 2 * xy / Double(m * n)
    }

    /// `sum_{i, j} (x_i . y_j / D + 1)^3`, without `i == j` when `skipDiagonal`.
    static func kernelSum(_ x: Tensor, _ y: Tensor, skipDiagonal: Bool) -> Double {
        let d = x.shape.dims[1]
        let (m, n) = (x.shape.dims[0], y.shape.dims[0])
        // The Gram matrix in fp32 whatever the training precision (never the bf16 kernel).
        precondition(d > 0, "kernelSum: features \(x.shape) have no dimensions")
        var gram = Tensor(uninitialized: [m, n])
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeBufferPointer { yp in
                gram.withUnsafeMutableBufferPointer { gp in
                    Gemm.sgemmFullPrecision(transposeB: true, m: m, n: n, k: d, a: xp.baseAddress!, b: yp.baseAddress!,
                                            c: gp.baseAddress!)
                }
            }
        }
        let scale = 1 / Double(d)
        return gram.withUnsafeBufferPointer { g in
            var total = 0.0
            for i in 0..<m {
                var row = 0.0
                for j in 0..<n where !(skipDiagonal && i == j) {
                    let k = Double(g[i * n + j]) * scale + 1
                    row += k * k * k
                }
                total += row
            }
            return total
        }
    }

    /// `count` distinct indices from `0..<n` (partial Fisher-Yates).
    static func sample(_ count: Int, of n: Int, using rng: inout RandomGenerator) -> [Int] {
        var pool = Array(0..<n)
        for i in 0..<count {
            let j = i + rng.nextInt(below: n - i)
            pool.swapAt(i, j)
        }
        return Array(pool.prefix(count))
    }
}

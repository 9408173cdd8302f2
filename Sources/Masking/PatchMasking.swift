import Tensor

/// Drops `int(ratio * N)` patches per item, chosen uniformly at random (the reference
/// `RandomMaskingGenerator`). On a 16x16 grid at ratio 0.9: 230 dropped, 26 kept.
public struct PatchMasking: MaskingStrategy, CustomStringConvertible {
    /// Fraction of the patches to drop, in `[0, 1]`; the count is truncated as Python's `int`.
    public let ratio: Double

    /// Random patch masking at `ratio` (in `[0, 1]`).
    public init(ratio: Double) {
        precondition(ratio >= 0 && ratio <= 1, "PatchMasking: ratio \(ratio) is not in [0, 1]")
        self.ratio = ratio
    }

    /// Number of patches this strategy drops per item on the grid.
    public func maskedCount(gridHeight: Int, gridWidth: Int) -> Int {
        pythonIntProduct(ratio, gridHeight * gridWidth)
    }

    /// Draws one mask per batch item from `rng`.
    public func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
                         using rng: inout RandomGenerator) -> Mask {
        checkGrid("PatchMasking", gridHeight, gridWidth, batchSize)
        let n = gridHeight * gridWidth
        let k = maskedCount(gridHeight: gridHeight, gridWidth: gridWidth)
        var kept: [[Int]] = [], dropped: [[Int]] = []
        for _ in 0..<batchSize {
            let d = sampleSortedSubset(k, of: n, using: &rng)
            dropped.append(d)
            kept.append(complement(d, n))
        }
        return Mask(trusted: kept, dropped: dropped, patchCount: n)
    }

    /// `patch(<ratio>)`.
    public var description: String { "patch(\(ratio))" }
}

/// The ascending indices of `0..<n` not in the ascending list `sorted`.
func complement(_ sorted: [Int], _ n: Int) -> [Int] {
    var out: [Int] = []
    out.reserveCapacity(n - sorted.count)
    var j = 0
    for i in 0..<n {
        if j < sorted.count && sorted[j] == i { j += 1 } else { out.append(i) }
    }
    return out
}

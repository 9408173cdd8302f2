import Tensor

/// Keeps one `c x c` square of patches at a uniformly random position and drops everything else
/// (the reference `CropMaskingGenerator`). The square's size is either fixed or derived from a
/// mask ratio as `c = floor(sqrt((1 - ratio) * N))`, which gives the reference ablation configs'
/// `MASK_CROP_SIZE` on the 16x16 grid: 15, 11 and 5 at ratios 0.1, 0.5 and 0.9.
public struct CropMasking: MaskingStrategy, CustomStringConvertible {
    /// How the side of the kept square is chosen.
    public enum Size: Sendable, Equatable {
        /// A fixed side, in patches.
        case fixed(Int)
        /// `floor(sqrt((1 - ratio) * N))` for the grid at hand (at least 1).
        case ratio(Double)
    }

    /// How the side of the kept square is chosen.
    public let size: Size

    /// Keeps a `cropSize x cropSize` square (cropSize >= 1).
    public init(cropSize: Int) {
        precondition(cropSize >= 1, "CropMasking: crop size \(cropSize) must be at least 1")
        size = .fixed(cropSize)
    }

    /// Keeps a square of about `(1 - ratio) * N` patches (ratio in `[0, 1)`).
    public init(ratio: Double) {
        precondition(ratio >= 0 && ratio < 1, "CropMasking: ratio \(ratio) is not in [0, 1)")
        size = .ratio(ratio)
    }

    /// Side of the kept square on a `gridHeight x gridWidth` grid.
    public func cropSize(gridHeight: Int, gridWidth: Int) -> Int {
        switch size {
        case .fixed(let c): return c
        case .ratio(let r):
            let c = Int(((1 - r) * Double(gridHeight * gridWidth)).squareRoot().rounded(.down))
            return Swift.max(1, Swift.min(c, gridHeight, gridWidth))
        }
    }

    /// Number of patches this strategy drops per item on the grid.
    public func maskedCount(gridHeight: Int, gridWidth: Int) -> Int {
        let c = cropSize(gridHeight: gridHeight, gridWidth: gridWidth)
        return gridHeight * gridWidth - c * c
    }

    /// Throws when the kept square is larger than the grid (a fixed crop size only: a ratio's
    /// square always fits).
    public func validate(gridHeight: Int, gridWidth: Int) throws {
        let c = cropSize(gridHeight: gridHeight, gridWidth: gridWidth)
        guard c <= gridHeight && c <= gridWidth else {
            throw MaskingError.unfitGrid(strategy: description, gridHeight: gridHeight, gridWidth: gridWidth,
                                         problem: "the kept \(c)x\(c) square does not fit inside it")
        }
    }

    /// Draws one mask per batch item from `rng`.
    public func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
                         using rng: inout RandomGenerator) -> Mask {
        checkGrid("CropMasking", gridHeight, gridWidth, batchSize)
        let c = cropSize(gridHeight: gridHeight, gridWidth: gridWidth)
        precondition(c <= gridHeight && c <= gridWidth,
                     "CropMasking: crop \(c)x\(c) does not fit the grid \(gridHeight)x\(gridWidth)")
        let n = gridHeight * gridWidth
        var kept: [[Int]] = [], dropped: [[Int]] = []
        for _ in 0..<batchSize {
            let top = rng.nextInt(below: gridHeight - c + 1)
            let left = rng.nextInt(below: gridWidth - c + 1)
            let square = (top..<(top + c)).flatMap { r in (left..<(left + c)).map { r * gridWidth + $0 } }
            kept.append(square)
            dropped.append(complement(square, n))
        }
        return Mask(trusted: kept, dropped: dropped, patchCount: n)
    }

    /// `crop<c>` or `crop(<ratio>)`.
    public var description: String {
        switch size {
        case .fixed(let c): return "crop\(c)"
        case .ratio(let r): return "crop(\(r))"
        }
    }
}

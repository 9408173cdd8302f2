import Tensor

/// Keeps every patch (fine-tuning and training from scratch). Draws nothing from the generator.
public struct NoMasking: MaskingStrategy, CustomStringConvertible {
    /// No masking.
    public init() {}

    /// Number of patches this strategy drops per item on the grid.
    public func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { 0 }

    /// Draws one mask per batch item from `rng`.
    public func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
                         using rng: inout RandomGenerator) -> Mask {
        checkGrid("NoMasking", gridHeight, gridWidth, batchSize)
        return Mask.none(batchSize: batchSize, patchCount: gridHeight * gridWidth)
    }

    /// `none`.
    public var description: String { "none" }
}

import Tensor

/// Keeps every patch (fine-tuning and training from scratch). Draws nothing from the generator.
public struct NoMasking: MaskingStrategy, CustomStringConvertible {
    /// No masking.
    public init() {}

    public func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { 0 }

    public func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
                         using rng: inout RandomGenerator) -> Mask {
        checkGrid("NoMasking", gridHeight, gridWidth, batchSize)
        return Mask.none(batchSize: batchSize, patchCount: gridHeight * gridWidth)
    }

    /// `none`.
    public var description: String { "none" }
}

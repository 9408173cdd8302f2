// The Masking module: which patches of each image a masked pre-training step drops.
//
// MaskDM pre-training drops most patch tokens (MAE-style, no mask token) and trains only on the
// visible ones. A `MaskingStrategy` draws a `Mask` for a batch: every item keeps the same number
// of patches, listed in raster order (a trainer asks for one image at a time, each with its own
// generator). Built-ins reproduce the reference generators
// (`datasets/masking_generator.py`): `PatchMasking`, `BlockMasking`, `CropMasking`, `NoMasking`.
//
// ```swift
// var rng = RandomGenerator(seed: 0)
// let strategy = BlockMasking(blockSize: 4, ratio: 0.9)
// let mask = strategy.makeMask(gridHeight: 16, gridWidth: 16, batchSize: 8, using: &rng)   // (try, through `any MaskingStrategy`)
// mask.visibleCount            // 32 (2 of the 16 4x4 blocks)
// mask.visible[0]              // sorted patch indices of item 0
// let parsed = try maskingStrategy(named: "block4", ratio: 0.9)   // same strategy, from a config
// ```
import Tensor

/// A rule that picks, for each item of a batch, which patches of a `gridHeight x gridWidth` patch
/// grid are dropped. Implement it to add your own strategy:
///
/// ```swift
/// struct LeftHalfMasking: MaskingStrategy {
///     func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { gridHeight * (gridWidth / 2) }
///     func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
///                   using rng: inout RandomGenerator) throws -> Mask {
///         let left = (0..<gridHeight).flatMap { r in (0..<gridWidth / 2).map { r * gridWidth + $0 } }
///         return try Mask(checkedDropped: Array(repeating: left, count: batchSize), patchCount: gridHeight * gridWidth)
///     }
/// }
/// ```
/// Contract: every item of the returned mask drops exactly `maskedCount(gridHeight:gridWidth:)`
/// patches; draws come only from `rng`, so a seed reproduces the masks. A strategy that only
/// works on some grids says so in ``validate(gridHeight:gridWidth:)``, which a trainer calls
/// before its first step (the default accepts every grid).
public protocol MaskingStrategy: Sendable {
    /// Number of patches dropped per item on a `gridHeight x gridWidth` grid.
    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int

    /// Throws ``MaskingError/unfitGrid(strategy:gridHeight:gridWidth:problem:)`` when this strategy
    /// cannot mask a `gridHeight x gridWidth` patch grid (a block size that does not divide it, a
    /// crop larger than it), so a run stops with a message before it starts rather than at its
    /// first step. The default implementation accepts every grid.
    func validate(gridHeight: Int, gridWidth: Int) throws

    /// Draws one mask per batch item for a `gridHeight x gridWidth` patch grid.
    ///
    /// It may throw (the built-ins do not): a strategy of your own that builds its mask with
    /// ``Mask/init(checkedVisible:patchCount:)`` or ``Mask/init(checkedDropped:patchCount:)``
    /// turns a mistake (a patch outside the grid or kept twice) into an error that stops a
    /// training run after its checkpoint, naming the strategy, instead of stopping the program.
    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask
}

extension MaskingStrategy {
    /// Accepts every grid (strategies with limits override it).
    public func validate(gridHeight: Int, gridWidth: Int) throws {}

    /// The check a training run makes before its first step: the strategy can mask the grid
    /// (``validate(gridHeight:gridWidth:)``) and keeps at least one patch visible (a mask that
    /// drops every patch leaves no token to learn from). Throws
    /// ``MaskingError/unfitGrid(strategy:gridHeight:gridWidth:problem:)`` naming the problem.
    public func validateForTraining(gridHeight: Int, gridWidth: Int) throws {
        let name = String(describing: self)
        guard gridHeight >= 1 && gridWidth >= 1 else {
            throw MaskingError.unfitGrid(strategy: name, gridHeight: gridHeight, gridWidth: gridWidth, problem: "the grid has no patches")
        }
        try validate(gridHeight: gridHeight, gridWidth: gridWidth)
        let patches = gridHeight * gridWidth, dropped = maskedCount(gridHeight: gridHeight, gridWidth: gridWidth)
        guard dropped >= 0 && dropped <= patches else {
            throw MaskingError.unfitGrid(strategy: name, gridHeight: gridHeight, gridWidth: gridWidth,
                                         problem: "its maskedCount is \(dropped), not a count from 0 to \(patches)")
        }
        guard dropped < patches else {
            throw MaskingError.unfitGrid(
                strategy: name, gridHeight: gridHeight, gridWidth: gridWidth,
                problem: "it drops all \(patches) patches; keep at least one patch visible (a lower ratio)")
        }
    }

    /// Number of patches kept per item on a `gridHeight x gridWidth` grid.
    public func visibleCount(gridHeight: Int, gridWidth: Int) -> Int {
        gridHeight * gridWidth - maskedCount(gridHeight: gridHeight, gridWidth: gridWidth)
    }

    /// Draws one mask per batch item for a square `gridSize x gridSize` grid.
    public func makeMask(gridSize: Int, batchSize: Int, using rng: inout RandomGenerator) throws -> Mask {
        try makeMask(gridHeight: gridSize, gridWidth: gridSize, batchSize: batchSize, using: &rng)
    }
}

/// `int(ratio * count)` as Python computes it: the Float64 product truncated toward zero
/// (so `int(0.9 * 256) == 230`).
@inlinable
func pythonIntProduct(_ ratio: Double, _ count: Int) -> Int {
    Int((ratio * Double(count)).rounded(.towardZero))
}

/// `k` distinct integers drawn uniformly from `0..<n`, sorted ascending (partial Fisher-Yates).
func sampleSortedSubset(_ k: Int, of n: Int, using rng: inout RandomGenerator) -> [Int] {
    precondition(k >= 0 && k <= n, "sampleSortedSubset: cannot draw \(k) of \(n)")
    var pool = Array(0..<n)
    for i in 0..<k { pool.swapAt(i, i + rng.nextInt(below: n - i)) }
    return pool[0..<k].sorted()
}

func checkGrid(_ name: String, _ gridHeight: Int, _ gridWidth: Int, _ batchSize: Int) {
    precondition(gridHeight > 0 && gridWidth > 0 && batchSize >= 0,
                 "\(name): invalid grid \(gridHeight)x\(gridWidth) or batch size \(batchSize)")
}

import Tensor

/// Tiles the grid into non-overlapping `blockSize x blockSize` blocks and drops
/// `int(ratio * N) // (blockSize^2)` whole blocks per item, chosen uniformly (the reference
/// `RandomBlockMaskingGenerator`). MaskDM's main recipe is `BlockMasking(blockSize: 4, ratio: 0.9)`:
/// on a 64x64 grid 230 of 256 blocks (3,680 patches) are dropped, 416 kept; on 16x16, 14 of 16.
public struct BlockMasking: MaskingStrategy, CustomStringConvertible {
    /// Side of a square block, in patches (b).
    public let blockSize: Int
    /// Fraction of the patches to drop, in `[0, 1]`, rounded down to whole blocks.
    public let ratio: Double

    /// Block masking with `blockSize x blockSize` blocks at `ratio` (in `[0, 1]`).
    public init(blockSize: Int, ratio: Double) {
        precondition(blockSize >= 1, "BlockMasking: block size \(blockSize) must be at least 1")
        precondition(ratio >= 0 && ratio <= 1, "BlockMasking: ratio \(ratio) is not in [0, 1]")
        self.blockSize = blockSize
        self.ratio = ratio
    }

    /// Number of whole blocks dropped per item: `int(ratio * N) // (b * b)`.
    public func maskedBlockCount(gridHeight: Int, gridWidth: Int) -> Int {
        pythonIntProduct(ratio, gridHeight * gridWidth) / (blockSize * blockSize)
    }

    /// Number of patches this strategy drops per item on the grid.
    public func maskedCount(gridHeight: Int, gridWidth: Int) -> Int {
        maskedBlockCount(gridHeight: gridHeight, gridWidth: gridWidth) * blockSize * blockSize
    }

    /// Throws unless `blockSize` divides both sides of the grid (the blocks tile it exactly).
    public func validate(gridHeight: Int, gridWidth: Int) throws {
        guard gridHeight % blockSize == 0 && gridWidth % blockSize == 0 else {
            throw MaskingError.unfitGrid(strategy: description, gridHeight: gridHeight, gridWidth: gridWidth,
                                         problem: "\(blockSize)x\(blockSize) blocks must tile it (both sides a multiple of \(blockSize))")
        }
    }

    /// Draws one mask per batch item from `rng`.
    public func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int,
                         using rng: inout RandomGenerator) -> Mask {
        checkGrid("BlockMasking", gridHeight, gridWidth, batchSize)
        let b = blockSize
        precondition(gridHeight % b == 0 && gridWidth % b == 0,
                     "BlockMasking: grid \(gridHeight)x\(gridWidth) is not divisible by block size \(b)")
        let blocksAcross = gridWidth / b
        let blockCount = (gridHeight / b) * blocksAcross
        let k = maskedBlockCount(gridHeight: gridHeight, gridWidth: gridWidth)
        let n = gridHeight * gridWidth
        var kept: [[Int]] = [], dropped: [[Int]] = []
        for _ in 0..<batchSize {
            var isDropped = [Bool](repeating: false, count: n)
            for block in sampleSortedSubset(k, of: blockCount, using: &rng) {
                let top = (block / blocksAcross) * b, left = (block % blocksAcross) * b
                for r in top..<(top + b) { for c in left..<(left + b) { isDropped[r * gridWidth + c] = true } }
            }
            dropped.append((0..<n).filter { isDropped[$0] })
            kept.append((0..<n).filter { !isDropped[$0] })
        }
        return Mask(trusted: kept, dropped: dropped, patchCount: n)
    }

    /// `block<b>(<ratio>)`.
    public var description: String { "block\(blockSize)(\(ratio))" }
}

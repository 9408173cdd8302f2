// Deliberately not @testable: only the public API.
import Masking
import Tensor
import Testing

/// A user-defined strategy, written outside the library: keeps the patches of one random row.
struct KeepOneRowMasking: MaskingStrategy {
    func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { (gridHeight - 1) * gridWidth }

    func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) -> Mask {
        let rows = (0..<batchSize).map { _ -> [Int] in
            let r = rng.nextInt(below: gridHeight)
            return (0..<gridWidth).map { r * gridWidth + $0 }
        }
        return Mask(visible: rows, patchCount: gridHeight * gridWidth)
    }
}

/// Generic code over the protocol, as a trainer would use it.
func drawMasks<S: MaskingStrategy>(_ s: S, grid: Int, batches: Int, seed: UInt64) throws -> [Mask] {
    var rng = RandomGenerator(seed: seed)
    return try (0..<batches).map { _ in try s.makeMask(gridSize: grid, batchSize: 4, using: &rng) }
}

@Suite struct CustomStrategyTests {
    @Test func customStrategyWorksThroughTheProtocol() throws {
        let masks = try drawMasks(KeepOneRowMasking(), grid: 8, batches: 3, seed: 1)
        for m in masks {
            #expect(m.visibleCount == 8 && m.droppedCount == 56)
            for b in 0..<4 {
                let row = m.visible[b][0] / 8
                #expect(m.visible[b] == Array((row * 8)..<(row * 8 + 8)))
                #expect(m.tokenMask[b][0] == false)
            }
        }
        #expect(try masks == drawMasks(KeepOneRowMasking(), grid: 8, batches: 3, seed: 1))
        let existential: any MaskingStrategy = KeepOneRowMasking()
        #expect(existential.visibleCount(gridHeight: 8, gridWidth: 8) == 8)
    }

    /// The checked initialisers throw what the trapping ones stop on, naming the item and patch.
    @Test func checkedMasksThrowInsteadOfStopping() throws {
        #expect(throws: MaskingError.invalidMask("item 1 keeps patch 2 twice")) { try Mask(checkedVisible: [[0, 1], [2, 2]], patchCount: 4) }
        #expect(throws: MaskingError.invalidMask("item 0 keeps patch 4, outside 0..<4")) { try Mask(checkedVisible: [[4]], patchCount: 4) }
        #expect(throws: MaskingError.invalidMask("item 1 keeps 1 patches but item 0 keeps 2; every item must keep the same number")) {
            try Mask(checkedVisible: [[0, 1], [2]], patchCount: 4)
        }
        #expect(throws: MaskingError.invalidMask("item 1 drops 1 patches but item 0 drops 2; every item must drop the same number")) {
            try Mask(checkedDropped: [[0, 1], [2]], patchCount: 4)
        }
        #expect(try Mask(checkedVisible: [[3, 1], [0, 2]], patchCount: 4) == Mask(visible: [[1, 3], [0, 2]], patchCount: 4))
        var rng = RandomGenerator(seed: 0)
        let existential: any MaskingStrategy = KeepOneRowMasking()
        #expect(try existential.makeMask(gridHeight: 4, gridWidth: 4, batchSize: 2, using: &rng).visibleCount == 4)
    }
}

import Tensor
import Testing
@testable import Masking

/// Geometry, randomness and layout of the built-in strategies.
@Suite struct MaskShapeTests {
    /// Visible and dropped are ascending, disjoint and cover 0..<N.
    func checkRasterOrder(_ m: Mask) {
        for b in 0..<m.batchSize {
            #expect(m.visible[b] == m.visible[b].sorted())
            #expect(m.dropped[b] == m.dropped[b].sorted())
            #expect((m.visible[b] + m.dropped[b]).sorted() == Array(0..<m.patchCount))
        }
    }

    @Test(arguments: [2, 4, 8])
    func blockMasksAreUnionsOfWholeBlocks(_ b: Int) throws {
        var rng = RandomGenerator(seed: UInt64(b))
        let grid = 16
        let m = try BlockMasking(blockSize: b, ratio: 0.5).makeMask(gridSize: grid, batchSize: 6, using: &rng)
        checkRasterOrder(m)
        for item in 0..<6 {
            let dropped = Set(m.dropped[item])
            var droppedBlocks = 0
            for br in 0..<(grid / b) {
                for bc in 0..<(grid / b) {
                    let cells = (0..<b).flatMap { r in (0..<b).map { c in (br * b + r) * grid + bc * b + c } }
                    let n = cells.filter { dropped.contains($0) }.count
                    #expect(n == 0 || n == b * b, "block (\(br), \(bc)) is partly dropped")
                    if n > 0 { droppedBlocks += 1 }
                }
            }
            #expect(droppedBlocks == 128 / (b * b))
        }
    }

    @Test(arguments: [1, 5, 11, 16])
    func cropKeepsOneContiguousSquare(_ c: Int) throws {
        var rng = RandomGenerator(seed: 11)
        let grid = 16
        let m = try CropMasking(cropSize: c).makeMask(gridSize: grid, batchSize: 8, using: &rng)
        checkRasterOrder(m)
        for item in 0..<8 {
            let kept = m.visible[item]
            #expect(kept.count == c * c)
            let top = kept[0] / grid, left = kept[0] % grid
            let expected = (top..<(top + c)).flatMap { r in (left..<(left + c)).map { r * grid + $0 } }
            #expect(kept == expected)
            #expect(top + c <= grid && left + c <= grid)
        }
    }

    @Test func cropPositionsAreUniform() throws {
        // A 2x2 crop on a 3x3 grid has 4 positions; 4000 draws -> about 1000 each.
        var rng = RandomGenerator(seed: 5)
        let m = try CropMasking(cropSize: 2).makeMask(gridSize: 3, batchSize: 4000, using: &rng)
        var hist: [Int: Int] = [:]
        for item in 0..<m.batchSize { hist[m.visible[item][0], default: 0] += 1 }
        #expect(Set(hist.keys) == [0, 1, 3, 4])
        for (_, n) in hist { #expect(abs(n - 1000) < 120) }
    }

    @Test func patchMaskingIsUniformOverPatches() throws {
        // 4x4 grid at 50%: every patch dropped in about half of 4000 items.
        var rng = RandomGenerator(seed: 9)
        let m = try PatchMasking(ratio: 0.5).makeMask(gridSize: 4, batchSize: 4000, using: &rng)
        checkRasterOrder(m)
        var freq = [Int](repeating: 0, count: 16)
        for item in 0..<m.batchSize { for p in m.dropped[item] { freq[p] += 1 } }
        for f in freq { #expect(abs(f - 2000) < 150) }
    }

    @Test func blockMaskingIsUniformOverBlocks() throws {
        // 4 blocks of 2x2 on a 4x4 grid, 1 dropped per item (ratio 0.25): about 1000 each.
        var rng = RandomGenerator(seed: 10)
        let m = try BlockMasking(blockSize: 2, ratio: 0.25).makeMask(gridSize: 4, batchSize: 4000, using: &rng)
        var hist: [Int: Int] = [:]
        for item in 0..<m.batchSize { hist[m.dropped[item][0], default: 0] += 1 }
        #expect(Set(hist.keys) == [0, 2, 8, 10])
        for (_, n) in hist { #expect(abs(n - 1000) < 120) }
    }

    @Test func reproducibleForASeedAndDifferentAcrossItems() throws {
        let strategies: [any MaskingStrategy] = [
            PatchMasking(ratio: 0.5), BlockMasking(blockSize: 2, ratio: 0.5), CropMasking(cropSize: 8),
        ]
        for s in strategies {
            var r1 = RandomGenerator(seed: 42), r2 = RandomGenerator(seed: 42), r3 = RandomGenerator(seed: 43)
            let a = try s.makeMask(gridSize: 16, batchSize: 8, using: &r1)
            let b = try s.makeMask(gridSize: 16, batchSize: 8, using: &r2)
            let c = try s.makeMask(gridSize: 16, batchSize: 8, using: &r3)
            #expect(a == b)
            #expect(a != c)
            #expect(Set(a.dropped).count >= 6, "\(s): items of one batch should differ")
            // The next batch from the same generator differs from the first.
            let next = try s.makeMask(gridSize: 16, batchSize: 8, using: &r1)
            #expect(next != a)
        }
    }

    @Test func noMaskingKeepsEverythingAndDrawsNothing() throws {
        var rng = RandomGenerator(seed: 1)
        let before = rng
        let m = try NoMasking().makeMask(gridSize: 4, batchSize: 2, using: &rng)
        #expect(rng == before)
        #expect(m == Mask.none(batchSize: 2, patchCount: 16))
        #expect(m.visibleCount == 16 && m.droppedCount == 0)
        #expect(m.visible[1] == Array(0..<16))
    }

    @Test func ratioDerivedCropMatchesReferenceConfigs() throws {
        // configs/ablation/pretrain/crop/celeba_{10,50,90}p.yml: MASK_CROP_SIZE 15, 11, 5.
        #expect(CropMasking(ratio: 0.1).cropSize(gridHeight: 16, gridWidth: 16) == 15)
        #expect(CropMasking(ratio: 0.5).cropSize(gridHeight: 16, gridWidth: 16) == 11)
        #expect(CropMasking(ratio: 0.9).cropSize(gridHeight: 16, gridWidth: 16) == 5)
    }
}

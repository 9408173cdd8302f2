import Foundation
import Tensor
import Testing
@testable import Masking

/// The `Mask` value: construction, validation, token-mask layout and gather indices.
@Suite struct MaskValueTests {
    @Test func initFromDroppedSortsAndComplements() throws {
        let m = Mask(dropped: [[3, 0], [1, 2]], patchCount: 4)
        #expect(m.batchSize == 2 && m.patchCount == 4)
        #expect(m.dropped == [[0, 3], [1, 2]])
        #expect(m.visible == [[1, 2], [0, 3]])
        #expect(m.visibleCount == 2 && m.droppedCount == 2)
        #expect(m == Mask(visible: [[2, 1], [3, 0]], patchCount: 4))
        #expect(m.isDropped(item: 0, patch: 3) && !m.isDropped(item: 0, patch: 1))
    }

    @Test func tokenMaskLayout() throws {
        let m = Mask(dropped: [[0, 3], [1, 2]], patchCount: 4)
        // (B, 1+N), column 0 = time token never dropped, token i+1 = patch i, true = dropped.
        #expect(m.tokenMask == [[false, true, false, false, true], [false, false, true, true, false]])
        #expect(m.tokenMaskBytes == [0, 1, 0, 0, 1, 0, 0, 1, 1, 0])
        #expect(try Mask(tokenMask: m.tokenMask) == m)
        #expect(try Mask(tokenMask: m.tokenMaskBytes, batchSize: 2) == m)
    }

    @Test func tokenMaskRoundTripForRandomMasks() throws {
        var rng = RandomGenerator(seed: 2)
        let m = try BlockMasking(blockSize: 4, ratio: 0.9).makeMask(gridSize: 16, batchSize: 4, using: &rng)
        let tm = m.tokenMask
        #expect(tm.count == 4 && tm.allSatisfy { $0.count == 257 && !$0[0] })
        #expect(tm.allSatisfy { $0.filter { $0 }.count == 224 })
        #expect(try Mask(tokenMask: tm) == m)
    }

    @Test func invalidTokenMasksThrow() throws {
        #expect(throws: MaskingError.invalidTokenMask("row 1 drops the time token (column 0)")) {
            try Mask(tokenMask: [[false, true, false], [true, false, true]])
        }
        #expect(throws: MaskingError.self) { try Mask(tokenMask: [[false, true, false], [false, false, false]]) }
        #expect(throws: MaskingError.self) { try Mask(tokenMask: [[false, true, false], [false, true]]) }
        #expect(throws: MaskingError.self) { try Mask(tokenMask: []) }
        #expect(throws: MaskingError.self) { try Mask(tokenMask: [0, 1, 0, 1, 0], batchSize: 2) }
        let message = "\(MaskingError.invalidTokenMask("row 1 drops 0 patches, row 0 drops 1"))"
        #expect(message == "invalid token mask: row 1 drops 0 patches, row 0 drops 1")
    }

    /// A trap says why, in release builds too (the library's `precondition` prints its message,
    /// where the standard library's drops it under `-O`).
    @Test func unequalDroppedCountsTrapWithTheirMessage() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.standardErrorContent]) {
            _ = Mask(dropped: [[0], [0, 1]], patchCount: 4)
        }
        let stderr = String(decoding: result?.standardErrorContent ?? [], as: UTF8.self)
        #expect(stderr.contains("Fatal error: Mask(dropped:): invalid mask: item 1 drops 2 patches but item 0 drops 1")
                && stderr.contains("Mask.swift"), "\(stderr)")
    }

    @Test func gatherIndices() throws {
        let m = Mask(dropped: [[0, 3], [1, 2]], patchCount: 4)
        #expect(m.keptTokenIndices(item: 0) == [0, 2, 3])
        #expect(m.keptTokenIndices(item: 1) == [0, 1, 4])
        #expect(m.flatVisiblePatchRows == [1, 2, 4, 7])
        #expect(m.flatKeptTokenRows == [0, 2, 3, 5, 6, 9])
        // Gathering rows of a (B*N, C) matrix picks the visible patches in raster order.
        let patches = Tensor((0..<8).map(Float.init), shape: [8, 1])
        #expect(patches.gatherRows(m.flatVisiblePatchRows).scalars == [1, 2, 4, 7])
    }

    @Test func parserNamesAndErrors() throws {
        #expect(try maskingStrategy(named: "none", ratio: 0.9) is NoMasking)
        let p = try #require(try maskingStrategy(named: "patch", ratio: 0.5) as? PatchMasking)
        #expect(p.ratio == 0.5)
        let b = try #require(try maskingStrategy(named: "Block4", ratio: 0.9) as? BlockMasking)
        #expect(b.blockSize == 4 && b.ratio == 0.9)
        let c = try #require(try maskingStrategy(named: "crop8", ratio: 0.9) as? CropMasking)
        #expect(c.size == .fixed(8))
        let cr = try #require(try maskingStrategy(named: "crop", ratio: 0.5) as? CropMasking)
        #expect(cr.size == .ratio(0.5))
        #expect("\(b)" == "block4(0.9)" && "\(c)" == "crop8")
        for bad in ["blob", "block", "blockx", ""] {
            #expect(throws: MaskingError.unknownStrategy(bad)) { try maskingStrategy(named: bad, ratio: 0.5) }
        }
        // A size below 1 says so.
        #expect(throws: MaskingError.unknownStrategy("block0 (the block size must be at least 1)")) { try maskingStrategy(named: "block0", ratio: 0.5) }
        #expect(throws: MaskingError.unknownStrategy("crop-1 (the crop size must be at least 1)")) { try maskingStrategy(named: "crop-1", ratio: 0.5) }
        for json in [#"{"type": "block", "block_size": 0, "ratio": 0.5}"#, #"{"type": "crop", "crop_size": -2}"#] {
            #expect(throws: DecodingError.self) { try JSONDecoder().decode(MaskSpec.self, from: Data(json.utf8)) }
        }
        #expect(throws: MaskingError.invalidRatio(strategy: "patch", ratio: 1.5)) {
            try maskingStrategy(named: "patch", ratio: 1.5)
        }
        #expect(throws: MaskingError.self) { try maskingStrategy(named: "crop", ratio: 1) }
        #expect(throws: MaskingError.self) { try maskingStrategy(named: "block2", ratio: .nan) }
    }
}

import Foundation
import Tensor
import Testing
@testable import Masking

/// `MaskSpec`: names parse to the strategies the reference generators implement, and JSON keeps them.
@Suite struct MaskSpecTests {
    @Test func namesParseToTypedCasesAndBack() throws {
        #expect(try MaskSpec(name: "block4", ratio: 0.9) == .block(size: 4, ratio: 0.9))
        #expect(try MaskSpec(name: "patch", ratio: 0.5) == .patch(ratio: 0.5))
        #expect(try MaskSpec(name: "crop8", ratio: 0) == .crop(size: 8))
        #expect(try MaskSpec(name: "crop", ratio: 0.9) == .cropRatio(ratio: 0.9))
        #expect(try MaskSpec(name: "block2", ratio: 0) == MaskSpec.none)
        #expect(throws: MaskingError.self) { try MaskSpec(name: "stripes", ratio: 0.5) }
        #expect(throws: MaskingError.self) { try MaskSpec(name: "block4", ratio: 1.5) }
        for spec: MaskSpec in [.none, .patch(ratio: 0.3), .block(size: 2, ratio: 0.5), .crop(size: 5), .cropRatio(ratio: 0.1)] {
            #expect(try MaskSpec(name: spec.name, ratio: spec.ratio ?? 0) == spec, "\(spec)")
        }
    }

    @Test func strategiesDropWhatTheSpecSays() throws {
        // 16x16 grid: block4 at 0.9 drops int(0.9 * 256) // 16 = 14 blocks -> 32 visible (MaskDM's 64 px case).
        #expect(try MaskSpec.block(size: 4, ratio: 0.9).strategy().visibleCount(gridHeight: 16, gridWidth: 16) == 32)
        #expect(try MaskSpec.patch(ratio: 0.5).strategy().visibleCount(gridHeight: 8, gridWidth: 8) == 32)
        #expect(try MaskSpec.crop(size: 3).strategy().visibleCount(gridHeight: 8, gridWidth: 8) == 9)
        #expect(throws: MaskingError.self) { try MaskSpec.custom(name: "mine").strategy() }
    }

    @Test func jsonUsesTheDescribeKeysAndRoundTrips() throws {
        let data = try JSONEncoder().encode(MaskSpec.block(size: 4, ratio: 0.9))
        let object = try JSONSerialization.jsonObject(with: data) as? [String: Any]
        #expect(object?["type"] as? String == "block" && object?["block_size"] as? Int == 4 && object?["ratio"] as? Double == 0.9)
        for spec: MaskSpec in [.none, .patch(ratio: 0.3), .block(size: 2, ratio: 0.5), .crop(size: 5), .cropRatio(ratio: 0.1), .custom(name: "x")] {
            #expect(try JSONDecoder().decode(MaskSpec.self, from: JSONEncoder().encode(spec)) == spec)
        }
        #expect(throws: DecodingError.self) { try JSONDecoder().decode(MaskSpec.self, from: Data(#"{"type": "stripes"}"#.utf8)) }
    }

    @Test func describingACustomStrategyRecordsItsDescription() {
        struct Rows: MaskingStrategy, CustomStringConvertible {
            func maskedCount(gridHeight: Int, gridWidth: Int) -> Int { gridWidth }
            func makeMask(gridHeight: Int, gridWidth: Int, batchSize: Int, using rng: inout RandomGenerator) -> Mask {
                Mask(dropped: Array(repeating: Array(0..<gridWidth), count: batchSize), patchCount: gridHeight * gridWidth)
            }
            var description: String { "first-row" }
        }
        #expect(MaskSpec(describing: Rows()) == .custom(name: "first-row"))
        #expect(MaskSpec(describing: BlockMasking(blockSize: 2, ratio: 0.5)) == .block(size: 2, ratio: 0.5))
    }

    /// `validate(gridHeight:gridWidth:)`: block sizes must tile the grid and fixed crops fit
    /// inside it; everything else (and any custom strategy, by default) accepts every grid.
    @Test func strategiesSayWhichGridsTheyCanMask() throws {
        #expect(throws: MaskingError.unfitGrid(strategy: "block4(0.9)", gridHeight: 7, gridWidth: 8,
                                               problem: "4x4 blocks must tile it (both sides a multiple of 4)")) {
            try BlockMasking(blockSize: 4, ratio: 0.9).validate(gridHeight: 7, gridWidth: 8)
        }
        #expect(throws: MaskingError.self) { try BlockMasking(blockSize: 4, ratio: 0.9).validate(gridHeight: 8, gridWidth: 6) }
        try BlockMasking(blockSize: 4, ratio: 0.9).validate(gridHeight: 8, gridWidth: 16)
        #expect(throws: MaskingError.unfitGrid(strategy: "crop5", gridHeight: 4, gridWidth: 8,
                                               problem: "the kept 5x5 square does not fit inside it")) {
            try CropMasking(cropSize: 5).validate(gridHeight: 4, gridWidth: 8)
        }
        try CropMasking(cropSize: 4).validate(gridHeight: 4, gridWidth: 8)
        try CropMasking(ratio: 0.1).validate(gridHeight: 3, gridWidth: 9)
        try PatchMasking(ratio: 0.9).validate(gridHeight: 7, gridWidth: 5)
        try NoMasking().validate(gridHeight: 1, gridWidth: 1)
        // Training also needs one visible patch; `validate` alone accepts a mask that drops all.
        try PatchMasking(ratio: 1).validate(gridHeight: 4, gridWidth: 4)
        #expect(throws: MaskingError.unfitGrid(strategy: "patch(1.0)", gridHeight: 4, gridWidth: 4,
                                               problem: "it drops all 16 patches; keep at least one patch visible (a lower ratio)")) {
            try PatchMasking(ratio: 1).validateForTraining(gridHeight: 4, gridWidth: 4)
        }
        #expect(throws: MaskingError.self) { try BlockMasking(blockSize: 4, ratio: 0.9).validateForTraining(gridHeight: 7, gridWidth: 8) }
        try PatchMasking(ratio: 0.99).validateForTraining(gridHeight: 16, gridWidth: 16)
        try NoMasking().validateForTraining(gridHeight: 1, gridWidth: 1)
        let message = "\(MaskingError.unfitGrid(strategy: "block4(0.9)", gridHeight: 7, gridWidth: 7, problem: "p"))"
        #expect(message == "masking strategy 'block4(0.9)' cannot mask a 7x7 patch grid: p")
    }
}

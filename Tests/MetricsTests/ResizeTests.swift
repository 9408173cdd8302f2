import Foundation
import Tensor
import Testing
@testable import Metrics

@Suite struct ResizeTests {
    /// `F.interpolate(mode="bilinear", align_corners=False)` on up, down, mixed, identity and
    /// to-one-pixel cases.
    @Test func bilinearMatchesTorch() throws {
        let file = try SafetensorsFile(contentsOf: Fixtures.url("resize.safetensors"))
        for i in 0..<5 {
            let x = try file.tensor("x\(i)"), expected = try file.tensor("y\(i)")
            let (_, _, oh, ow) = expected.shape.dims4()
            let y = x.interpolatedBilinear(height: oh, width: ow)
            #expect(y.shape == expected.shape)
            #expect(y.maxAbsDifference(expected) < 2e-6, "case \(i): \(x.shape) -> \(oh)x\(ow)")
        }
    }

    @Test func taps() {
        // 2 -> 4: src = 0.5 * (dst + 0.5) - 0.5 = -0.25 (clamped to 0), 0.25, 0.75, 1.25 (last pixel).
        let taps = LinearTaps.axis(inSize: 2, outSize: 4)
        #expect(taps.map(\.index0) == [0, 0, 0, 1])
        #expect(taps.map(\.index1) == [1, 1, 1, 1])
        #expect(taps.map(\.weight1) == [0, 0.25, 0.75, 0.25])
        // Same size: the identity.
        let same = LinearTaps.axis(inSize: 5, outSize: 5)
        #expect(same.map(\.index0) == [0, 1, 2, 3, 4] && same.allSatisfy { $0.weight1 == 0 })
    }

    /// The channel-major preprocessing of a (B, 3, H, W) batch is the resize, transposed.
    @Test func channelMajorPreprocessing() {
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randomUniform([2, 3, 9, 7], low: -1, high: 1, using: &rng)
        let y = x.interpolatedBilinear(height: 299, width: 299)                       // (2, 3, 299, 299)
        let z = withExtendedLifetime(x.storage) {
            FIDPreprocessing.channelMajor(planes: UnsafePointer(x.storage.base), batch: 2, height: 9, width: 7)
        }
        #expect(z.shape == [3, 2, 299, 299])
        #expect(z.maxAbsDifference(y.permuted([1, 0, 2, 3])) == 0)
    }
}

import Foundation
import ImageIO
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

    /// Images larger than 299 are resized from the rows and columns the taps read only: the same
    /// values as converting and resizing the whole image, for RGB, RGBA (composited) and grey.
    @Test func largeImagesResizeFromTheUsedPixelsOnly() {
        var rng = RandomGenerator(seed: 4)
        func image(_ w: Int, _ h: Int, _ c: Int) -> Image {
            Image(width: w, height: h, channels: c, pixels: (0..<(w * h * c)).map { _ in UInt8(truncatingIfNeeded: rng.next() >> 56) })
        }
        let images = [image(700, 650, 4), image(1200, 5, 1), image(640, 480, 3), image(299, 1000, 3), image(37, 41, 3)]
        let batch = FIDPreprocessing.channelMajor(images)                                 // (3, 5, 299, 299)
        for (i, img) in images.enumerated() {
            let whole = FIDPreprocessing.rgb(img).tensor().reshaped([1, 3, img.height, img.width])
            let want = whole.interpolatedBilinear(height: 299, width: 299)                // (1, 3, 299, 299)
            let planes = FIDPreprocessing.planes(img)
            #expect(planes == want.scalars, "\(img.width)x\(img.height)x\(img.channels)")
            for c in 0..<3 {
                let start = (c * images.count + i) * 299 * 299
                #expect(Array(batch.scalars[start..<(start + 299 * 299)]) == Array(planes[(c * 299 * 299)..<((c + 1) * 299 * 299)]))
            }
        }
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

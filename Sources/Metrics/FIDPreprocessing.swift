// Images -> the network's channel-major (3, B, 299, 299) input in [-1, 1], resized bilinearly.
import ImageIO
import Tensor

/// pytorch-fid's preprocessing: RGB in [-1, 1] (`v / 255 * 2 - 1`), bilinear resize to 299x299
/// with `align_corners=False` and no antialiasing (``Tensor/interpolatedBilinear(height:width:)``),
/// written channel-major for the network.
public enum FIDPreprocessing {
    /// The background transparent pixels are composited on.
    public static let background: RGBColor = (255, 255, 255)

    /// The RGB image the network sees: RGBA composited on white, grey replicated.
    public static func rgb(_ image: Image) -> Image {
        image.channels == 4 ? image.composited(on: background) : image.rgb()
    }

    /// `images` (any sizes) -> (3, B, 299, 299) in [-1, 1]; parallel over images.
    static func channelMajor(_ images: [Image]) -> Tensor {
        let b = images.count, side = FIDInceptionV3.inputSize, outPlane = side * side
        var out = Tensor(uninitialized: [3, b, side, side])
        let o = SendablePointer(out.mutablePointer())
        parallelFor(b) { range in
            for i in range { resize(images[i], to: o + i * outPlane, planeStride: b * outPlane) }
        }
        return out
    }

    /// One image's three 299 x 299 planes in [-1, 1], channel after channel (3 x 299 x 299 values).
    static func planes(_ image: Image) -> [Float] {
        let outPlane = FIDInceptionV3.inputSize * FIDInceptionV3.inputSize
        var out = [Float](repeating: 0, count: 3 * outPlane)
        out.withUnsafeMutableBufferPointer { resize(image, to: $0.baseAddress!, planeStride: outPlane) }
        return out
    }

    /// Writes `image`'s resized planes: channel c at `out + c * planeStride`. The bilinear resize
    /// reads at most two input rows and columns per output pixel, so only those pixels (at most
    /// 598 x 598) are composited and converted to floats, with the taps renumbered to them: the
    /// same values as resizing the whole image, without a full-size copy of a large photo.
    static func resize(_ image: Image, to out: UnsafeMutablePointer<Float>, planeStride: Int) {
        let side = FIDInceptionV3.inputSize
        let rows = LinearTaps.axis(inSize: image.height, outSize: side)
        let cols = LinearTaps.axis(inSize: image.width, outSize: side)
        let (usedRows, rowTaps) = compact(rows), (usedCols, colTaps) = compact(cols)
        // The used pixels as a small image, then RGB and [-1, 1] planes as for the whole image.
        let c = image.channels, w = usedCols.count, h = usedRows.count
        var gathered = [UInt8](repeating: 0, count: w * h * c)
        image.pixels.withUnsafeBufferPointer { src in
            for (y, row) in usedRows.enumerated() {
                for (x, col) in usedCols.enumerated() {
                    for k in 0..<c { gathered[(y * w + x) * c + k] = src[(row * image.width + col) * c + k] }
                }
            }
        }
        let small = rgb(Image(width: w, height: h, channels: c, pixels: gathered))
        let planes = small.tensor()                                   // (3, h, w) in [-1, 1]
        withExtendedLifetime(planes.storage) {
            let p = UnsafePointer(planes.storage.base)
            for ch in 0..<3 {
                Kernels.bilinearResizePlane(out: out + ch * planeStride, input: p + ch * w * h, width: w,
                                            rows: rowTaps, columns: colTaps)
            }
        }
    }

    /// The source indices `taps` read, ascending, and the taps renumbered to positions in them.
    private static func compact(_ taps: [LinearTaps]) -> (used: [Int], taps: [LinearTaps]) {
        let used = Array(Set(taps.flatMap { [$0.index0, $0.index1] })).sorted()
        let position = Dictionary(uniqueKeysWithValues: used.enumerated().map { ($1, $0) })
        return (used, taps.map { LinearTaps(index0: position[$0.index0]!, index1: position[$0.index1]!,
                                            weight0: $0.weight0, weight1: $0.weight1) })
    }

    /// `batch` images (B, 3, H, W) at `planes` in [-1, 1] -> (3, B, 299, 299); parallel over planes.
    static func channelMajor(planes: UnsafePointer<Float>, batch b: Int, height h: Int, width w: Int) -> Tensor {
        let side = FIDInceptionV3.inputSize, outPlane = side * side
        let rows = LinearTaps.axis(inSize: h, outSize: side), cols = LinearTaps.axis(inSize: w, outSize: side)
        var out = Tensor(uninitialized: [3, b, side, side])
        let o = SendablePointer(out.mutablePointer()), x = SendablePointer(planes)
        parallelFor(b * 3) { range in
            for p in range {
                let i = p / 3, c = p % 3
                Kernels.bilinearResizePlane(out: o + (c * b + i) * outPlane, input: x + p * h * w, width: w,
                                            rows: rows, columns: cols)
            }
        }
        return out
    }
}

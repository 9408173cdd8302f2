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
            for i in range {
                let rgb = FIDPreprocessing.rgb(images[i])
                let planes = rgb.tensor()                              // (3, H, W) in [-1, 1]
                let rows = LinearTaps.axis(inSize: rgb.height, outSize: side)
                let cols = LinearTaps.axis(inSize: rgb.width, outSize: side)
                withExtendedLifetime(planes.storage) {
                    let p = UnsafePointer(planes.storage.base), plane = rgb.height * rgb.width
                    for c in 0..<3 {
                        Kernels.bilinearResizePlane(out: o + (c * b + i) * outPlane, input: p + c * plane,
                                                    width: rgb.width, rows: rows, columns: cols)
                    }
                }
            }
        }
        return out
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

// Bilinear resampling as PyTorch's `F.interpolate(x, size, mode='bilinear', align_corners=False)`
// (no antialias): what pytorch-fid applies before the Inception network.
import Tensor

/// The two source taps and weights of one output coordinate along one axis.
struct LinearTaps: Sendable {
    /// The first source index.
    let index0: Int
    /// The second source index (`index0 + 1`, or `index0` at the last input pixel).
    let index1: Int
    /// The weight of `index0` (`1 - lambda`).
    let weight0: Float
    /// The weight of `index1` (`lambda`).
    let weight1: Float

    /// The taps of every output coordinate `0..<outSize` for an input axis of `inSize`, with
    /// PyTorch's half-pixel mapping in Float32: `scale = in / out`,
    /// `src = max(scale * (dst + 0.5) - 0.5, 0)`, `i0 = min(floor(src), in - 1)`,
    /// `lambda = clamp(src - i0, 0, 1)`, `i1 = i0 + 1` unless `i0` is the last pixel.
    static func axis(inSize: Int, outSize: Int) -> [LinearTaps] {
        let scale = Float(inSize) / Float(outSize)
        return (0..<outSize).map { dst in
            let src = Swift.max(scale * (Float(dst) + 0.5) - 0.5, 0)
            let i0 = Swift.min(Int(src.rounded(.down)), inSize - 1)
            let lambda = Swift.min(Swift.max(src - Float(i0), 0), 1)
            let i1 = i0 < inSize - 1 ? i0 + 1 : i0
            return LinearTaps(index0: i0, index1: i1, weight0: 1 - lambda, weight1: lambda)
        }
    }
}

extension Kernels {
    /// Bilinear resampling of one (H, W) plane to (OH, OW), as PyTorch's CPU kernel evaluates it:
    /// `out = (x00 w0 + x01 w1) h0 + (x10 w0 + x11 w1) h1` with the taps of ``LinearTaps``.
    ///
    /// `input` (H, W) -> `out` (OH, OW); `rows` has OH taps over H, `columns` OW taps over W.
    static func bilinearResizePlane(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, width: Int,
                                    rows: [LinearTaps], columns: [LinearTaps]) {
        let ow = columns.count
        columns.withUnsafeBufferPointer { cols in
            for (y, r) in rows.enumerated() {
                let line0 = input + r.index0 * width, line1 = input + r.index1 * width, o = out + y * ow
                for x in 0..<ow {
                    let c = cols[x]
                    let top = line0[c.index0] * c.weight0 + line0[c.index1] * c.weight1
                    let bottom = line1[c.index0] * c.weight0 + line1[c.index1] * c.weight1
                    o[x] = top * r.weight0 + bottom * r.weight1
                }
            }
        }
    }
}

extension Tensor {
    /// Bilinear resize of an NCHW batch, as `torch.nn.functional.interpolate(x, size=(height, width),
    /// mode="bilinear", align_corners=False)` without antialiasing (half-pixel centres, edge
    /// pixels repeated; downscaling reads only the two nearest pixels per axis).
    ///
    /// `self` (B, C, H, W) -> (B, C, height, width).
    /// ```swift
    /// let x299 = x.interpolatedBilinear(height: 299, width: 299)
    /// ```
    public func interpolatedBilinear(height: Int, width: Int) -> Tensor {
        precondition(rank == 4, "interpolatedBilinear: input \(shape) must be (B, C, H, W)")
        let (b, c, h, w) = shape.dims4()
        precondition(height > 0 && width > 0 && h > 0 && w > 0,
                     "interpolatedBilinear: cannot resize \(shape) to \(height)x\(width)")
        let rows = LinearTaps.axis(inSize: h, outSize: height), cols = LinearTaps.axis(inSize: w, outSize: width)
        var out = Tensor(uninitialized: [b, c, height, width])
        let o = SendablePointer(out.mutablePointer()), inPlane = h * w, outPlane = height * width
        withExtendedLifetime(storage) {
            let x = SendablePointer(storage.base)
            parallelFor(b * c) { planes in
                for p in planes {
                    Kernels.bilinearResizePlane(out: o + p * outPlane, input: x + p * inPlane, width: w,
                                                rows: rows, columns: cols)
                }
            }
        }
        return out
    }
}

import Tensor

extension Image {
    /// The image as a (C, H, W) tensor in [-1, 1]: `x = v / 255 * 2 - 1`.
    public func tensor() -> Tensor {
        var out = Tensor(uninitialized: [channels, height, width])
        let plane = width * height, c = channels
        out.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for i in 0..<plane {
                    for k in 0..<c { dst[k * plane + i] = Float(src[i * c + k]) / 255 * 2 - 1 }
                }
            }
        }
        return out
    }

    /// An image from a (C, H, W) tensor in [-1, 1] with C = 1, 3 or 4: `v = round(clamp((x + 1) / 2 * 255, 0, 255))`.
    /// NaN becomes 0.
    public init(tensor: Tensor) {
        let (c, h, w) = tensor.shape.dims3()
        precondition(c == 1 || c == 3 || c == 4, "Image(tensor:): expected (C, H, W) with C in 1, 3, 4, got \(tensor.shape)")
        var pixels = [UInt8](repeating: 0, count: c * h * w)
        let plane = h * w
        tensor.withUnsafeBufferPointer { src in
            for k in 0..<c {
                for i in 0..<plane { pixels[i * c + k] = quantize(src[k * plane + i]) }
            }
        }
        self.init(width: w, height: h, channels: c, pixels: pixels)
    }

    /// Stacks images of one size into a (B, 3, H, W) tensor in [-1, 1]; each image is first
    /// converted with ``rgb()`` (grey replicated, alpha dropped: composite RGBA images first).
    public static func batch(_ images: [Image]) -> Tensor {
        precondition(!images.isEmpty, "Image.batch: no images")
        let w = images[0].width, h = images[0].height
        var out = Tensor(uninitialized: [images.count, 3, h, w])
        let plane = w * h
        out.withUnsafeMutableBufferPointer { dst in
            for (b, image) in images.enumerated() {
                precondition(image.width == w && image.height == h,
                             "Image.batch: image \(b) is \(image.width)x\(image.height), image 0 is \(w)x\(h)")
                let rgb = image.rgb()
                rgb.pixels.withUnsafeBufferPointer { src in
                    let base = b * 3 * plane
                    for i in 0..<plane {
                        for k in 0..<3 { dst[base + k * plane + i] = Float(src[i * 3 + k]) / 255 * 2 - 1 }
                    }
                }
            }
        }
        return out
    }

    /// Splits a (B, C, H, W) tensor in [-1, 1] into B images (see ``init(tensor:)``).
    public static func images(fromBatch batch: Tensor) -> [Image] {
        let (b, c, h, w) = batch.shape.dims4()
        precondition(c == 1 || c == 3 || c == 4, "Image.images(fromBatch:): expected C in 1, 3, 4, got \(batch.shape)")
        let size = c * h * w
        return batch.withUnsafeBufferPointer { src in
            (0..<b).map { i in
                Image(tensor: Tensor(Array(src[(i * size)..<((i + 1) * size)]), shape: [c, h, w]))
            }
        }
    }
}

/// [-1, 1] -> [0, 255]: `(x + 1) / 2 * 255`, rounded half away from zero, clamped; NaN -> 0.
@inline(__always)
private func quantize(_ x: Float) -> UInt8 {
    let v = ((x + 1) / 2 * 255).rounded()
    if !(v > 0) { return 0 }
    return v >= 255 ? 255 : UInt8(v)
}

import Tensor

/// An 8-bit RGB colour, e.g. `(255, 255, 255)` for white.
public typealias RGBColor = (r: UInt8, g: UInt8, b: UInt8)

extension Image {
    /// The image flattened onto an opaque `background`, as RGB.
    ///
    /// Each channel becomes `(a * c + (255 - a) * bg) / 255`, rounded; images without alpha are
    /// only converted to RGB (grey replicated).
    public func composited(on background: RGBColor) -> Image {
        guard channels == 4 else { return rgb() }
        let bg = [Int(background.r), Int(background.g), Int(background.b)]
        var out = [UInt8](repeating: 0, count: width * height * 3)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(width * height) {
                    let a = Int(src[4 * i + 3])
                    for c in 0..<3 {
                        dst[3 * i + c] = UInt8((a * Int(src[4 * i + c]) + (255 - a) * bg[c] + 127) / 255)
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// The image as RGB, as PIL's `convert("RGB")`: grey is replicated, alpha is dropped
    /// (use ``composited(on:)`` to blend transparent pixels onto a background instead).
    public func rgb() -> Image {
        if channels == 3 { return self }
        var out = [UInt8](repeating: 0, count: width * height * 3)
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<(width * height) {
                    if c == 1 {
                        dst[3 * i] = src[i]; dst[3 * i + 1] = src[i]; dst[3 * i + 2] = src[i]
                    } else {
                        dst[3 * i] = src[c * i]; dst[3 * i + 1] = src[c * i + 1]; dst[3 * i + 2] = src[c * i + 2]
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: 3, pixels: out)
    }

    /// The image as grey, with PIL's ITU-R 601-2 luma `(299 R + 587 G + 114 B) / 1000` (alpha dropped).
    public func grey() -> Image {
        if channels == 1 { return self }
        var out = [UInt8](repeating: 0, count: width * height)
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            for i in 0..<(width * height) {
                let luma = 299 * Int(src[c * i]) + 587 * Int(src[c * i + 1]) + 114 * Int(src[c * i + 2])
                out[i] = UInt8((luma + 500) / 1000)
            }
        }
        return Image(width: width, height: height, channels: 1, pixels: out)
    }

    /// The image centred on a larger canvas filled with `fill` (`channels` samples; default all
    /// zero, i.e. black or fully transparent). Odd margins put the extra pixel right / bottom.
    public func padded(toWidth newWidth: Int, height newHeight: Int, fill: [UInt8]? = nil) -> Image {
        precondition(newWidth >= width && newHeight >= height,
                     "padded: \(newWidth)x\(newHeight) is smaller than the image \(width)x\(height)")
        let fillColor = fill ?? [UInt8](repeating: 0, count: channels)
        precondition(fillColor.count == channels,
                     "padded: fill has \(fillColor.count) samples, the image has \(channels) channels")
        var out = Image(width: newWidth, height: newHeight, color: fillColor)
        let left = (newWidth - width) / 2, top = (newHeight - height) / 2
        let row = width * channels
        out.withUnsafeMutablePixels { dst in
            pixels.withUnsafeBufferPointer { src in
                for y in 0..<height {
                    let d = ((top + y) * newWidth + left) * channels
                    for i in 0..<row { dst[d + i] = src[y * row + i] }
                }
            }
        }
        return out
    }

    /// The image centred on a square canvas whose side is the longer side (see ``padded(toWidth:height:fill:)``).
    public func paddedToSquare(fill: [UInt8]? = nil) -> Image {
        let side = max(width, height)
        return padded(toWidth: side, height: side, fill: fill)
    }
}

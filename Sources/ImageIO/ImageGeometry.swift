import Tensor

extension Image {
    /// The `width` x `height` rectangle whose top-left corner is (`x`, `y`); it must lie inside the image.
    public func cropped(x: Int, y: Int, width cropWidth: Int, height cropHeight: Int) -> Image {
        precondition(x >= 0 && y >= 0 && cropWidth >= 0 && cropHeight >= 0
                     && x + cropWidth <= width && y + cropHeight <= height,
                     "cropped: rectangle (x \(x), y \(y), \(cropWidth)x\(cropHeight)) outside \(width)x\(height)")
        var out = [UInt8](repeating: 0, count: cropWidth * cropHeight * channels)
        let row = cropWidth * channels
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for r in 0..<cropHeight {
                    let s = ((y + r) * width + x) * channels
                    for i in 0..<row { dst[r * row + i] = src[s + i] }
                }
            }
        }
        return Image(width: cropWidth, height: cropHeight, channels: channels, pixels: out)
    }

    /// Each pixel repeated as a `factor` x `factor` square (nearest-neighbour enlargement: no new
    /// colours, so a small sample stays exactly what the network drew). `factor` must be >= 1.
    public func enlarged(by factor: Int) -> Image {
        precondition(factor >= 1, "enlarged: factor must be at least 1, got \(factor)")
        let (outWidth, o1) = width.multipliedReportingOverflow(by: factor)
        let (outHeight, o2) = height.multipliedReportingOverflow(by: factor)
        precondition(!o1 && !o2 && !(outWidth.multipliedReportingOverflow(by: outHeight).overflow),
                     "enlarged: \(width)x\(height) times \(factor) does not fit in memory")
        if factor == 1 { return self }
        var out = [UInt8](repeating: 0, count: outWidth * outHeight * channels)
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let outRow = outWidth * channels
                for y in 0..<height {
                    let first = y * factor * outRow
                    for x in 0..<width {
                        for c in 0..<channels {
                            let v = src[(y * width + x) * channels + c]
                            for k in 0..<factor { dst[first + ((x * factor + k) * channels) + c] = v }
                        }
                    }
                    for r in 1..<factor {                                   // the row's copies
                        for i in 0..<outRow { dst[first + r * outRow + i] = dst[first + i] }
                    }
                }
            }
        }
        return Image(width: outWidth, height: outHeight, channels: channels, pixels: out)
    }

    /// The centred `width` x `height` rectangle; the offset is `round((W - w) / 2)` (half to
    /// even), as torchvision's `CenterCrop`.
    public func centerCropped(width cropWidth: Int, height cropHeight: Int) -> Image {
        let left = Int((Double(width - cropWidth) / 2).rounded(.toNearestOrEven))
        let top = Int((Double(height - cropHeight) / 2).rounded(.toNearestOrEven))
        return cropped(x: left, y: top, width: cropWidth, height: cropHeight)
    }

    /// Resized so that the shorter side is `size`; the longer side is `Int(size * long / short)`
    /// (truncated, as torchvision's `Resize(size)`).
    public func resizedShortSide(to size: Int, filter: ResizeFilter = .area) -> Image {
        let (w, h) = shortSideSize(size)
        return resized(width: w, height: h, filter: filter)
    }

    /// The size ``resizedShortSide(to:filter:)`` resizes to.
    private func shortSideSize(_ size: Int) -> (width: Int, height: Int) {
        precondition(size > 0 && width > 0 && height > 0,
                     "resizedShortSide: cannot resize \(width)x\(height) to short side \(size)")
        return width <= height ? (size, max(1, size * height / width)) : (max(1, size * width / height), size)
    }

    /// A `size` x `size` image: short side resized to `size`, then centre-cropped. Only the
    /// cropped square is computed (the same pixels), so a long thin strip costs what its
    /// square costs.
    public func resizedAndCenterCropped(to size: Int, filter: ResizeFilter = .area) -> Image {
        let (w, h) = shortSideSize(size)
        if w == width && h == height { return centerCropped(width: size, height: size) }
        let left = Int((Double(w - size) / 2).rounded(.toNearestOrEven))
        let top = Int((Double(h - size) / 2).rounded(.toNearestOrEven))
        return resampled(width: w, height: h, filter: filter, x: left, y: top, windowWidth: size, windowHeight: size)
    }

    /// The image mirrored left to right.
    public func flippedHorizontally() -> Image {
        var out = pixels
        let c = channels
        pixels.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for y in 0..<height {
                    for x in 0..<width {
                        let s = (y * width + x) * c, d = (y * width + (width - 1 - x)) * c
                        for k in 0..<c { dst[d + k] = src[s + k] }
                    }
                }
            }
        }
        return Image(width: width, height: height, channels: channels, pixels: out)
    }
}

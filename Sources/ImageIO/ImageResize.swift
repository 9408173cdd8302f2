/// How ``Image/resized(width:height:filter:)`` computes output pixels.
public enum ResizeFilter: Sendable {
    /// Area averaging: each output pixel is the mean of the input rectangle it covers, input pixels
    /// cut by the rectangle's edge weighted by the covered fraction (as OpenCV's `INTER_AREA` when
    /// shrinking). For integer factors this equals PIL's `BOX` filter. When enlarging it is
    /// nearest-neighbour with a linear blend where an output pixel straddles two input pixels.
    case area
    /// Antialiased bilinear, as PIL's `BILINEAR`: a triangle filter whose support is widened by
    /// the downscale factor when shrinking (plain bilinear interpolation when enlarging).
    case bilinear
}

/// Per-output-pixel filter taps along one axis: output `i` reads inputs `start[i] ..< start[i] + count[i]`
/// with weights `weights[i * stride ..< i * stride + count[i]]` (which sum to 1).
struct ResampleTaps {
    var start: [Int] = []
    var count: [Int] = []
    var weights: [Float] = []
    var stride = 0

    init(inputSize: Int, outputSize: Int, filter: ResizeFilter) {
        let scale = Double(inputSize) / Double(outputSize)
        var rows: [(Int, [Double])] = []
        rows.reserveCapacity(outputSize)
        for i in 0..<outputSize {
            switch filter {
            case .area:
                let lo = Double(i) * scale, hi = Double(i + 1) * scale
                let first = max(0, Int(lo.rounded(.down))), last = min(inputSize, Int(hi.rounded(.up)))
                var w: [Double] = []
                for j in first..<max(first + 1, last) {
                    w.append(max(0, min(hi, Double(j + 1)) - max(lo, Double(j))))
                }
                rows.append((first, w))
            case .bilinear:
                let filterScale = max(scale, 1), support = filterScale
                let center = (Double(i) + 0.5) * scale
                let first = max(0, Int(center - support + 0.5))
                let last = min(inputSize, Int(center + support + 0.5))
                var w: [Double] = []
                for j in first..<max(first + 1, last) {
                    w.append(max(0, 1 - abs((Double(j) - center + 0.5) / filterScale)))
                }
                rows.append((first, w))
            }
        }
        stride = rows.map(\.1.count).max() ?? 0
        weights = [Float](repeating: 0, count: stride * outputSize)
        for (i, row) in rows.enumerated() {
            let total = row.1.reduce(0, +)
            let count = min(row.1.count, inputSize - row.0)
            start.append(min(row.0, inputSize - 1))
            self.count.append(count)
            for k in 0..<count { weights[i * stride + k] = Float(total > 0 ? row.1[k] / total : 1) }
        }
    }
}

extension Image {
    /// The image resampled to `width` x `height` with `filter` (area averaging by default).
    ///
    /// Separable: rows first, then columns, in Float32; one rounding to 8 bits at the end. RGBA is
    /// filtered with premultiplied alpha, so transparent pixels do not bleed their colour.
    public func resized(width newWidth: Int, height newHeight: Int, filter: ResizeFilter = .area) -> Image {
        precondition(newWidth > 0 && newHeight > 0 && width > 0 && height > 0,
                     "resized: cannot resize \(width)x\(height) to \(newWidth)x\(newHeight)")
        if newWidth == width && newHeight == height { return self }
        let c = channels, alpha = channels == 4
        // src is (H, W, C) in Float, premultiplied when there is alpha.
        var src = [Float](repeating: 0, count: width * height * c)
        pixels.withUnsafeBufferPointer { p in
            for i in 0..<(width * height) {
                let a: Float = alpha ? Float(p[i * c + 3]) / 255 : 1
                for k in 0..<c { src[i * c + k] = (alpha && k < 3) ? Float(p[i * c + k]) * a : Float(p[i * c + k]) }
            }
        }
        let horizontal = ResampleTaps(inputSize: width, outputSize: newWidth, filter: filter)
        let vertical = ResampleTaps(inputSize: height, outputSize: newHeight, filter: filter)
        // mid is (H, newW, C).
        var mid = [Float](repeating: 0, count: height * newWidth * c)
        src.withUnsafeBufferPointer { s in
            mid.withUnsafeMutableBufferPointer { m in
                for y in 0..<height {
                    for x in 0..<newWidth {
                        let j0 = horizontal.start[x], n = horizontal.count[x], wo = x * horizontal.stride
                        for k in 0..<c {
                            var acc: Float = 0
                            for t in 0..<n { acc += horizontal.weights[wo + t] * s[(y * width + j0 + t) * c + k] }
                            m[(y * newWidth + x) * c + k] = acc
                        }
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: newWidth * newHeight * c)
        let row = newWidth * c
        mid.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                var acc = [Float](repeating: 0, count: row)
                for y in 0..<newHeight {
                    let j0 = vertical.start[y], n = vertical.count[y], wo = y * vertical.stride
                    for i in 0..<row { acc[i] = 0 }
                    for t in 0..<n {
                        let w = vertical.weights[wo + t], base = (j0 + t) * row
                        for i in 0..<row { acc[i] += w * m[base + i] }
                    }
                    for x in 0..<newWidth {
                        let a = alpha ? acc[x * c + 3] : 255
                        for k in 0..<c {
                            var v = acc[x * c + k]
                            if alpha && k < 3 { v = a > 0 ? v * 255 / a : 0 }
                            o[y * row + x * c + k] = UInt8(min(255, max(0, v.rounded())))
                        }
                    }
                }
            }
        }
        return Image(width: newWidth, height: newHeight, channels: c, pixels: out)
    }
}

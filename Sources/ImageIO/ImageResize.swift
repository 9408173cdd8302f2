import Tensor

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

/// Per-output-pixel filter taps along one axis, for the outputs `outputs` (all by default): the
/// k-th of them reads inputs `start[k] ..< start[k] + count[k]` with weights
/// `weights[k * stride ..< k * stride + count[k]]` (which sum to 1).
struct ResampleTaps {
    var start: [Int] = []
    var count: [Int] = []
    var weights: [Float] = []
    var stride = 0

    init(inputSize: Int, outputSize: Int, filter: ResizeFilter, outputs: Range<Int>? = nil) {
        let scale = Double(inputSize) / Double(outputSize)
        let outputs = outputs ?? 0..<outputSize
        var rows: [(Int, [Double])] = []
        rows.reserveCapacity(outputs.count)
        for i in outputs {
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
        weights = [Float](repeating: 0, count: stride * outputs.count)
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
        return resampled(width: newWidth, height: newHeight, filter: filter, x: 0, y: 0, windowWidth: newWidth, windowHeight: newHeight)
    }

    /// The `windowWidth` x `windowHeight` rectangle at (`x`, `y`) of the image resampled to
    /// `width` x `height`: the same pixels as `resized(...)` then `cropped(...)`, but only the
    /// window is computed, reading only the input rows it needs and never the whole image as
    /// floats (a 1 x 1,000,000 strip resized to a short side of 16 would be 16 x 16,000,000).
    func resampled(width newWidth: Int, height newHeight: Int, filter: ResizeFilter,
                   x x0: Int, y y0: Int, windowWidth w: Int, windowHeight h: Int) -> Image {
        precondition(x0 >= 0 && y0 >= 0 && w > 0 && h > 0 && x0 + w <= newWidth && y0 + h <= newHeight,
                     "resampled: window (\(x0), \(y0), \(w)x\(h)) outside \(newWidth)x\(newHeight)")
        let c = channels, alpha = channels == 4
        // Taps of the window's columns and rows only.
        let horizontal = ResampleTaps(inputSize: width, outputSize: newWidth, filter: filter, outputs: x0..<(x0 + w))
        let vertical = ResampleTaps(inputSize: height, outputSize: newHeight, filter: filter, outputs: y0..<(y0 + h))
        // The input rows the window's output rows read.
        let firstRow = (0..<h).map { vertical.start[$0] }.min()!
        let endRow = (0..<h).map { vertical.start[$0] + vertical.count[$0] }.max()!
        // mid is (endRow - firstRow, w, C): those rows resampled horizontally, the window's
        // columns only, from the 8-bit pixels (premultiplied when there is alpha).
        var mid = [Float](repeating: 0, count: (endRow - firstRow) * w * c)
        pixels.withUnsafeBufferPointer { p in
            mid.withUnsafeMutableBufferPointer { m in
                for yi in firstRow..<endRow {
                    for x in 0..<w {
                        let j0 = horizontal.start[x], n = horizontal.count[x], wo = x * horizontal.stride
                        for k in 0..<c {
                            var acc: Float = 0
                            for t in 0..<n {
                                let i = yi * width + j0 + t
                                let a: Float = alpha ? Float(p[i * c + 3]) / 255 : 1
                                let v = (alpha && k < 3) ? Float(p[i * c + k]) * a : Float(p[i * c + k])
                                acc += horizontal.weights[wo + t] * v
                            }
                            m[((yi - firstRow) * w + x) * c + k] = acc
                        }
                    }
                }
            }
        }
        var out = [UInt8](repeating: 0, count: w * h * c)
        let row = w * c
        mid.withUnsafeBufferPointer { m in
            out.withUnsafeMutableBufferPointer { o in
                var acc = [Float](repeating: 0, count: row)
                for y in 0..<h {
                    let j0 = vertical.start[y], n = vertical.count[y], wo = y * vertical.stride
                    for i in 0..<row { acc[i] = 0 }
                    for t in 0..<n {
                        let wt = vertical.weights[wo + t], base = (j0 + t - firstRow) * row
                        for i in 0..<row { acc[i] += wt * m[base + i] }
                    }
                    for x in 0..<w {
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
        return Image(width: w, height: h, channels: c, pixels: out)
    }
}

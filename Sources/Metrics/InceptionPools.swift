// The 3x3 poolings of the Inception graph, specialised (separable row/column passes); the
// general pooling kernels of the Tensor module are their reference in the tests.
import Tensor

extension Kernels {
    /// 3x3 pooling over `planes` (H, W) planes with stride `stride` and padding `padding`
    /// (0 or 1) on both axes: the maximum (padding ignored, i.e. -inf), or the average over the
    /// window's input pixels only (`count_include_pad=False`).
    ///
    /// input (planes, H, W) -> out (planes, OH, OW), `OH = (H + 2 padding - 3) / stride + 1`.
    static func pool3x3(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>, planes: Int,
                        height h: Int, width w: Int, stride: Int, padding: Int, average: Bool) {
        precondition(stride >= 1 && (padding == 0 || padding == 1) && h + 2 * padding >= 3 && w + 2 * padding >= 3,
                     "pool3x3: bad geometry \(h)x\(w), stride \(stride), padding \(padding)")
        let oh = (h + 2 * padding - 3) / stride + 1, ow = (w + 2 * padding - 3) / stride + 1
        let o = SendablePointer(out), x = SendablePointer(input)
        parallelFor(planes, grain: Swift.max(1, 16_384 / Swift.max(1, h * w))) { range in
            // Column reduction of the (up to) three input rows of one output row.
            let column = UnsafeMutablePointer<Float>.allocate(capacity: w)
            defer { column.deallocate() }
            for p in range {
                let plane = x.base + p * h * w, op = o.base + p * oh * ow
                for y in 0..<oh {
                    let r0 = Swift.max(0, y * stride - padding), r1 = Swift.min(h, y * stride - padding + 3)
                    column.update(from: plane + r0 * w, count: w)
                    for r in (r0 + 1)..<r1 {
                        let line = plane + r * w
                        if average {
                            for i in 0..<w { column[i] += line[i] }
                        } else {
                            for i in 0..<w { column[i] = line[i] > column[i] ? line[i] : column[i] }
                        }
                    }
                    let rows = Float(r1 - r0), orow = op + y * ow
                    if average {
                        averageRow(orow, column, width: w, outWidth: ow, stride: stride, padding: padding, rows: rows)
                    } else {
                        maximumRow(orow, column, width: w, outWidth: ow, stride: stride, padding: padding)
                    }
                }
            }
        }
    }

    /// One output row of a 3x3 average from the column sums of its input rows: the window's sum
    /// over its in-image columns divided by `rows * columns` (padding excluded).
    @inline(__always)
    private static func averageRow(_ out: UnsafeMutablePointer<Float>, _ column: UnsafeMutablePointer<Float>,
                                   width w: Int, outWidth ow: Int, stride: Int, padding: Int, rows: Float) {
        // Interior outputs (whole window inside) first, as one branch-free loop.
        let first = padding > 0 ? 1 : 0, last = w - 3 + padding >= 0 ? (w - 3 + padding) / stride : -1
        if first <= last {
            let divisor = rows * 3
            for xo in first...last {
                let c = column + xo * stride - padding
                out[xo] = (c[0] + c[1] + c[2]) / divisor
            }
        }
        for xo in 0..<ow where xo < first || xo > last {
            let c0 = Swift.max(0, xo * stride - padding), c1 = Swift.min(w, xo * stride - padding + 3)
            var v: Float = 0
            for c in c0..<c1 { v += column[c] }
            out[xo] = v / (rows * Float(c1 - c0))
        }
    }

    /// One output row of a 3x3 maximum from the column maxima of its input rows.
    @inline(__always)
    private static func maximumRow(_ out: UnsafeMutablePointer<Float>, _ column: UnsafeMutablePointer<Float>,
                                   width w: Int, outWidth ow: Int, stride: Int, padding: Int) {
        let first = padding > 0 ? 1 : 0, last = w - 3 + padding >= 0 ? (w - 3 + padding) / stride : -1
        if first <= last {
            for xo in first...last {
                let c = column + xo * stride - padding
                let m = c[0] > c[1] ? c[0] : c[1]
                out[xo] = c[2] > m ? c[2] : m
            }
        }
        for xo in 0..<ow where xo < first || xo > last {
            let c0 = Swift.max(0, xo * stride - padding), c1 = Swift.min(w, xo * stride - padding + 3)
            var v = column[c0]
            for c in (c0 + 1)..<c1 where column[c] > v { v = column[c] }
            out[xo] = v
        }
    }
}

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
                        combine(column, plane + r * w, count: w, average: average)
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

    /// `column[i] += line[i]` (average) or `column[i] = max(line[i], column[i])`, 8 lanes at a time.
    @inline(__always)
    private static func combine(_ column: UnsafeMutablePointer<Float>, _ line: UnsafePointer<Float>, count w: Int, average: Bool) {
        var i = 0
        while i + 8 <= w {
            let a = UnsafeRawPointer(column + i).loadUnaligned(as: SIMD8<Float>.self)
            let b = UnsafeRawPointer(line + i).loadUnaligned(as: SIMD8<Float>.self)
            // The scalar loop's max: line[i] > column[i] ? line[i] : column[i] (NaN keeps column's).
            let v = average ? a + b : a.replacing(with: b, where: b .> a)
            UnsafeMutableRawPointer(column + i).storeBytes(of: v, as: SIMD8<Float>.self)
            i += 8
        }
        while i < w {
            column[i] = average ? column[i] + line[i] : (line[i] > column[i] ? line[i] : column[i])
            i += 1
        }
    }

    /// The outputs of a row of `count` outside the interior `first...last` (all of them when the
    /// interior is empty): the window's edge columns, without walking the interior.
    @inline(__always)
    private static func forEachEdge(first: Int, last: Int, count: Int, _ body: (Int) -> Void) {
        if first > last {
            for xo in 0..<count { body(xo) }
            return
        }
        for xo in 0..<Swift.min(first, count) { body(xo) }
        for xo in Swift.min(count, last + 1)..<count { body(xo) }
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
            var xo = first
            if stride == 1 {
                // (c[0] + c[1]) + c[2], divided: the scalar loop's operations, 8 outputs at a time.
                let d = SIMD8<Float>(repeating: divisor)
                while xo + 8 <= last + 1 {
                    let c = UnsafeRawPointer(column + xo - padding)
                    let v = (c.loadUnaligned(as: SIMD8<Float>.self) + c.loadUnaligned(fromByteOffset: 4, as: SIMD8<Float>.self))
                        + c.loadUnaligned(fromByteOffset: 8, as: SIMD8<Float>.self)
                    UnsafeMutableRawPointer(out + xo).storeBytes(of: v / d, as: SIMD8<Float>.self)
                    xo += 8
                }
            }
            while xo <= last {
                let c = column + xo * stride - padding
                out[xo] = (c[0] + c[1] + c[2]) / divisor
                xo += 1
            }
        }
        forEachEdge(first: first, last: last, count: ow) { xo in
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
            var xo = first
            if stride == 1 {
                while xo + 8 <= last + 1 {
                    let c = UnsafeRawPointer(column + xo - padding)
                    let c0 = c.loadUnaligned(as: SIMD8<Float>.self), c1 = c.loadUnaligned(fromByteOffset: 4, as: SIMD8<Float>.self)
                    let c2 = c.loadUnaligned(fromByteOffset: 8, as: SIMD8<Float>.self)
                    let m = c1.replacing(with: c0, where: c0 .> c1)                  // c0 > c1 ? c0 : c1
                    UnsafeMutableRawPointer(out + xo).storeBytes(of: m.replacing(with: c2, where: c2 .> m), as: SIMD8<Float>.self)
                    xo += 8
                }
            }
            while xo <= last {
                let c = column + xo * stride - padding
                let m = c[0] > c[1] ? c[0] : c[1]
                out[xo] = c[2] > m ? c[2] : m
                xo += 1
            }
        }
        forEachEdge(first: first, last: last, count: ow) { xo in
            let c0 = Swift.max(0, xo * stride - padding), c1 = Swift.min(w, xo * stride - padding + 3)
            var v = column[c0]
            for c in (c0 + 1)..<c1 where column[c] > v { v = column[c] }
            out[xo] = v
        }
    }
}

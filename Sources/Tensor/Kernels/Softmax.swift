import CKernels
import Foundation

extension Kernels {
    /// Row softmax. x, y: (R, C). y may alias x.
    public static func softmaxForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        let xs = SendablePointer(x), ys = SendablePointer(y)
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { r in
            for i in r { softmaxRow(xs.base + i * cols, ys.base + i * cols, cols, scale: 1) }
        }
    }

    /// Softmax of one row of `scale * x` in place into `y`; returns log-sum-exp of the scaled row.
    @inline(__always) @discardableResult
    static func softmaxRow(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        if usesAVX2Kernels { return maskdm_softmax_row_avx2(x, y, Int32(n), scale) }
        return softmaxRowPortable(x, y, n, scale: scale)
    }

    /// ``softmaxRow(_:_:_:scale:)`` in portable Swift SIMD (the path on CPUs without AVX2).
    @inline(__always) @discardableResult
    static func softmaxRowPortable(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) -> Float {
        // The largest scale * x (either sign of scale), the shift that keeps every exponential <= 1.
        var j = 0
        var mv = SIMD16<Float>(repeating: -.infinity)
        while j + 16 <= n {
            mv = FastMath.max(mv, UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self) * scale)
            j += 16
        }
        var ms = mv.max()
        while j < n { ms = Swift.max(ms, x[j] * scale); j += 1 }
        let msv = SIMD16<Float>(repeating: ms)
        var sv = SIMD16<Float>(repeating: 0)
        j = 0
        while j + 16 <= n {
            let e = FastMath.exp(UnsafeRawPointer(x + j).loadUnaligned(as: SIMD16<Float>.self) * scale - msv)
            UnsafeMutableRawPointer(y + j).storeBytes(of: e, as: SIMD16<Float>.self)
            sv += e
            j += 16
        }
        var s = sv.sum()
        while j < n { let e = Foundation.exp(x[j] * scale - ms); y[j] = e; s += e; j += 1 }
        let inv = 1 / s
        j = 0
        let iv = SIMD16<Float>(repeating: inv)
        while j + 16 <= n {
            let v = UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self) * iv
            UnsafeMutableRawPointer(y + j).storeBytes(of: v, as: SIMD16<Float>.self)
            j += 16
        }
        while j < n { y[j] *= inv; j += 1 }
        return ms + Foundation.log(s)
    }

    /// Softmax backward: dx += y * (dy - sum(dy * y)) per row. All (R, C).
    public static func softmaxBackward(dy: UnsafePointer<Float>, y: UnsafePointer<Float>,
                                       dx: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        let dys = SendablePointer(dy), ys = SendablePointer(y), dxs = SendablePointer(dx)
        parallelFor(rows, grain: Swift.max(1, 8192 / Swift.max(cols, 1))) { r in
            for i in r {
                let o = i * cols
                softmaxRowBackward(dys.base + o, ys.base + o, dxs.base + o, cols, scale: 1)
            }
        }
    }

    /// dx += scale * y * (dy - <dy, y>) for one row.
    @inline(__always)
    static func softmaxRowBackward(_ dy: UnsafePointer<Float>, _ y: UnsafePointer<Float>,
                                   _ dx: UnsafeMutablePointer<Float>, _ n: Int, scale: Float) {
        var dv = SIMD16<Float>(repeating: 0)
        var j = 0
        while j + 16 <= n {
            dv += UnsafeRawPointer(dy + j).loadUnaligned(as: SIMD16<Float>.self)
                * UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self)
            j += 16
        }
        var dot = dv.sum()
        while j < n { dot += dy[j] * y[j]; j += 1 }
        j = 0
        let dotv = SIMD16<Float>(repeating: dot)
        while j + 16 <= n {
            let yv = UnsafeRawPointer(y + j).loadUnaligned(as: SIMD16<Float>.self)
            let g = UnsafeRawPointer(dy + j).loadUnaligned(as: SIMD16<Float>.self)
            let cur = UnsafeRawPointer(dx + j).loadUnaligned(as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(dx + j).storeBytes(of: cur + scale * yv * (g - dotv), as: SIMD16<Float>.self)
            j += 16
        }
        while j < n { dx[j] += scale * y[j] * (dy[j] - dot); j += 1 }
    }
}

extension Naive {
    /// Reference row softmax in Double.
    public static func softmax(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, cols: Int) {
        for i in 0..<rows {
            let p = x + i * cols
            var m = -Double.infinity
            for j in 0..<cols { m = Swift.max(m, Double(p[j])) }
            var s = 0.0
            for j in 0..<cols { s += Foundation.exp(Double(p[j]) - m) }
            for j in 0..<cols { y[i * cols + j] = Float(Foundation.exp(Double(p[j]) - m) / s) }
        }
    }
}

extension Tensor {
    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        let c = shape.dims.last ?? 1
        var out = Tensor(uninitialized: shape)
        withExtendedLifetime(storage) {
            Kernels.softmaxForward(x: storage.base, y: out.mutablePointer(), rows: count / Swift.max(c, 1), cols: c)
        }
        return out
    }
}

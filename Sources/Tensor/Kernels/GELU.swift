import Foundation

extension Kernels {
    /// Exact GELU, `y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`. x, y: (N).
    public static func geluForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count n: Int) {
        let xs = SendablePointer(x), ys = SendablePointer(y)
        parallelFor((n + 15) / 16, grain: 512) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            var i = lo
            while i + 16 <= hi {
                let v = UnsafeRawPointer(xs.base + i).loadUnaligned(as: SIMD16<Float>.self)
                let g = 0.5 * v * (1 + FastMath.erf(v * 0.707_106_781_186_547_5))
                UnsafeMutableRawPointer(ys.base + i).storeBytes(of: g, as: SIMD16<Float>.self)
                i += 16
            }
            while i < hi { let v = xs[i]; ys[i] = 0.5 * v * (1 + Foundation.erf(v * 0.707_106_781_186_547_5)); i += 1 }
        }
    }

    /// GELU backward, accumulating: dx += dy * (Phi(x) + x phi(x)). All (N).
    public static func geluBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                    dx: UnsafeMutablePointer<Float>, count n: Int) {
        let dys = SendablePointer(dy), xs = SendablePointer(x), dxs = SendablePointer(dx)
        let invSqrt2Pi: Float = 0.398_942_280_401_432_7
        parallelFor((n + 15) / 16, grain: 512) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            var i = lo
            while i + 16 <= hi {
                let v = UnsafeRawPointer(xs.base + i).loadUnaligned(as: SIMD16<Float>.self)
                // erf(v / sqrt 2) comes with exp(-v^2 / 2), the Gaussian density's exponential.
                let (e, gauss) = FastMath.erfAndGaussian(v * 0.707_106_781_186_547_5)
                let cdf = 0.5 * (1 + e)
                let pdf = invSqrt2Pi * gauss
                let g = UnsafeRawPointer(dys.base + i).loadUnaligned(as: SIMD16<Float>.self)
                let cur = UnsafeRawPointer(dxs.base + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(dxs.base + i).storeBytes(of: cur + g * (cdf + v * pdf), as: SIMD16<Float>.self)
                i += 16
            }
            while i < hi {
                let v = xs[i]
                let cdf = 0.5 * (1 + Foundation.erf(v * 0.707_106_781_186_547_5))
                dxs[i] += dys[i] * (cdf + v * invSqrt2Pi * Foundation.exp(-0.5 * v * v))
                i += 1
            }
        }
    }
}

extension Naive {
    /// Reference exact GELU in Double.
    public static func gelu(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { let v = Double(x[i]); y[i] = Float(0.5 * v * (1 + Foundation.erf(v / 2.0.squareRoot()))) }
    }
}

extension Tensor {
    /// Exact (erf) GELU elementwise, as `torch.nn.functional.gelu` with `approximate='none'`.
    public func gelu() -> Tensor {
        var out = Tensor(uninitialized: shape)
        withExtendedLifetime(storage) { Kernels.geluForward(x: storage.base, y: out.mutablePointer(), count: count) }
        return out
    }
}

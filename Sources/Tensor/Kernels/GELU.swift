import CKernels
import Foundation

extension Kernels {
    /// Exact GELU, `y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2))`. x, y: (N); y may be x (in place).
    /// On AVX2 + FMA CPUs the chunks run the C kernel (same maths, 8-wide fused multiply-adds), 16
    /// wide when the selected GEMM kernel is an AVX-512 one (the same values).
    public static func geluForward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count n: Int) {
        let xs = SendablePointer(x), ys = SendablePointer(y)
        let wide = usesAVX512Kernels
        parallelFor((n + 15) / 16, grain: 512) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            if wide {
                maskdm_gelu_forward_avx512(xs.base + lo, ys.base + lo, hi - lo)
            } else if usesAVX2Kernels {
                maskdm_gelu_forward_avx2(xs.base + lo, ys.base + lo, hi - lo)
            } else {
                geluForwardPortable(x: xs.base + lo, y: ys.base + lo, count: hi - lo)
            }
        }
    }

    /// ``geluForward(x:y:count:)`` on one thread in portable Swift SIMD (the path on CPUs without
    /// AVX2; tests check the C kernel against it).
    static func geluForwardPortable(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, count n: Int) {
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            let g = 0.5 * v * (1 + FastMath.erf(v * 0.707_106_781_186_547_5))
            UnsafeMutableRawPointer(y + i).storeBytes(of: g, as: SIMD16<Float>.self)
            i += 16
        }
        while i < n { let v = x[i]; y[i] = 0.5 * v * (1 + Foundation.erf(v * 0.707_106_781_186_547_5)); i += 1 }
    }

    /// GELU backward, accumulating: dx += dy * (Phi(x) + x phi(x)); with `accumulate: false` it
    /// assigns dx = dy * (Phi(x) + x phi(x)) instead (dx may then hold anything, even NaN, and the
    /// result equals accumulating into zeros). All (N). On AVX2 + FMA CPUs the chunks run the C
    /// kernel, 16 lanes wide when the selected GEMM kernel is an AVX-512 one (the same values).
    public static func geluBackward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                    dx: UnsafeMutablePointer<Float>, count n: Int, accumulate: Bool = true) {
        let dys = SendablePointer(dy), xs = SendablePointer(x), dxs = SendablePointer(dx)
        let wide = usesAVX512Kernels
        parallelFor((n + 15) / 16, grain: 512) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            if wide {
                maskdm_gelu_backward_avx512(dys.base + lo, xs.base + lo, dxs.base + lo, hi - lo, accumulate ? 1 : 0)
            } else if usesAVX2Kernels {
                maskdm_gelu_backward_avx2(dys.base + lo, xs.base + lo, dxs.base + lo, hi - lo, accumulate ? 1 : 0)
            } else {
                geluBackwardPortable(dy: dys.base + lo, x: xs.base + lo, dx: dxs.base + lo, count: hi - lo, accumulate: accumulate)
            }
        }
    }

    /// ``geluBackward(dy:x:dx:count:accumulate:)`` on one thread in portable Swift SIMD.
    static func geluBackwardPortable(dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
                                     dx: UnsafeMutablePointer<Float>, count n: Int, accumulate: Bool = true) {
        let invSqrt2Pi: Float = 0.398_942_280_401_432_7
        var i = 0
        while i + 16 <= n {
            let v = UnsafeRawPointer(x + i).loadUnaligned(as: SIMD16<Float>.self)
            // erf(v / sqrt 2) comes with exp(-v^2 / 2), the Gaussian density's exponential.
            let (e, gauss) = FastMath.erfAndGaussian(v * 0.707_106_781_186_547_5)
            let cdf = 0.5 * (1 + e)
            let pdf = invSqrt2Pi * gauss
            let g = UnsafeRawPointer(dy + i).loadUnaligned(as: SIMD16<Float>.self)
            let cur = accumulate ? UnsafeRawPointer(dx + i).loadUnaligned(as: SIMD16<Float>.self) : SIMD16<Float>(repeating: 0)
            UnsafeMutableRawPointer(dx + i).storeBytes(of: cur + g * (cdf + v * pdf), as: SIMD16<Float>.self)
            i += 16
        }
        while i < n {
            let v = x[i]
            let cdf = 0.5 * (1 + Foundation.erf(v * 0.707_106_781_186_547_5))
            dx[i] = (accumulate ? dx[i] : 0) + dy[i] * (cdf + v * invSqrt2Pi * Foundation.exp(-0.5 * v * v))
            i += 1
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

    /// ``gelu()`` in place (copying the storage first if another tensor shares it).
    public mutating func geluInPlace() {
        let p = mutablePointer()
        Kernels.geluForward(x: p, y: p, count: count)
    }
}

/// Vectorised transcendental functions on `SIMD16<Float>` built only from operations that the
/// baseline x86-64 target (SSE2) has: add, multiply, divide, compare, bit casts and integer shifts.
/// Relative error is below 2e-7 for `exp` over its range and below 5e-7 absolute for `erf`.
public enum FastMath {
    /// The 16-lane Float vector these functions work on.
    public typealias V = SIMD16<Float>

    /// 1.5 * 2^23: adding it rounds a float of magnitude < 2^22 to the nearest integer.
    @usableFromInline static let roundMagic: Float = 12_582_912.0

    /// `e^x`, lanewise. Inputs are clamped to [-87.3, 88.7]; below that the result is ~1e-38.
    @inlinable @inline(__always)
    public static func exp(_ x: V) -> V {
        let xc = clamp(x, -87.3, 88.7)
        let shifted = xc * 1.442_695_040_888_963_4 + roundMagic
        let n = shifted - roundMagic                           // round(x / ln 2)
        var r = xc - n * 0.693_359_375
        r = r + n * 2.121_944_400_546_905_8e-4                 // r = x - n ln2 (Cody-Waite)
        var y: V = V(repeating: 1.987_569_150_0e-4)
        y = y * r + 1.398_199_950_7e-3
        y = y * r + 8.333_451_907_3e-3
        y = y * r + 4.166_579_589_4e-2
        y = y * r + 1.666_666_545_9e-1
        y = y * r + 5.000_000_120_1e-1
        y = y * (r * r) + r + 1
        // 2^n from the integer sitting in the low mantissa bits of `shifted`.
        let ni = SIMD16<Int32>(truncatingIfNeeded: shifted.bitPattern(as: UInt32.self))
            &- SIMD16<Int32>(repeating: Int32(bitPattern: roundMagic.bitPattern))
        let pow2 = V(bitPattern: SIMD16<UInt32>(truncatingIfNeeded: (ni &+ 127) &<< 23))
        return y * pow2
    }

    /// The error function, lanewise (Abramowitz & Stegun 7.1.26 refined; |error| < 5e-7).
    @inlinable @inline(__always)
    public static func erf(_ x: V) -> V { erfAndGaussian(x).erf }

    /// `erf(x)` and `exp(-x^2)` (the Gaussian factor erf's approximation needs anyway), lanewise:
    /// GELU's backward uses both and so pays for one exponential, not two.
    @inlinable @inline(__always)
    public static func erfAndGaussian(_ x: V) -> (erf: V, gaussian: V) {
        let ax = abs(x)
        let t = 1 / (1 + 0.327_591_1 * ax)
        var p: V = V(repeating: 1.061_405_429)
        p = p * t - 1.453_152_027
        p = p * t + 1.421_413_741
        p = p * t - 0.284_496_736
        p = p * t + 0.254_829_592
        p = p * t
        let g = exp(-ax * ax)
        let e = 1 - p * g
        return (e.replacing(with: -e, where: x .< 0), g)
    }

    /// Hyperbolic tangent, lanewise, as `1 - 2 / (e^{2x} + 1)`.
    @inlinable @inline(__always)
    public static func tanh(_ x: V) -> V {
        let e = exp(2 * x)
        return 1 - 2 / (e + 1)
    }

    /// Lanewise maximum. (`pointwiseMax` and `clamped` are not vectorised by the compiler on the
    /// baseline target: they become per-lane loops through the stack; a compare and blend is.)
    @inlinable @inline(__always)
    public static func max(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .> a) }

    /// Lanewise minimum (vectorised compare and blend).
    @inlinable @inline(__always)
    public static func min(_ a: V, _ b: V) -> V { a.replacing(with: b, where: b .< a) }

    /// Lanewise clamp into [lo, hi] (vectorised compare and blend).
    @inlinable @inline(__always)
    public static func clamp(_ x: V, _ lo: Float, _ hi: Float) -> V {
        min(max(x, V(repeating: lo)), V(repeating: hi))
    }

    /// Lanewise absolute value via the sign bit.
    @inlinable @inline(__always)
    public static func abs(_ x: V) -> V {
        V(bitPattern: x.bitPattern(as: UInt32.self) & SIMD16<UInt32>(repeating: 0x7FFF_FFFF))
    }
}

extension SIMD16 where Scalar == Float {
    @inlinable @inline(__always)
    func bitPattern(as: UInt32.Type) -> SIMD16<UInt32> { unsafeBitCast(self, to: SIMD16<UInt32>.self) }
    @inlinable @inline(__always)
    init(bitPattern: SIMD16<UInt32>) { self = unsafeBitCast(bitPattern, to: SIMD16<Float>.self) }
}

import Foundation

// Elementwise maps and NumPy-broadcasting binary operators.

@usableFromInline let elementwiseGrain = 1 << 14

extension Tensor {
    /// Applies `simd` to 16-lane blocks and `scalar` to the tail, in parallel.
    @inline(__always)
    func mapElements(_ simd: (SIMD16<Float>) -> SIMD16<Float>, _ scalar: (Float) -> Float) -> Tensor {
        var out = Tensor(uninitialized: shape)
        let o = SendablePointer(out.mutablePointer())
        let x = SendablePointer(storage.base)
        let n = count
        withExtendedLifetime(storage) {
            parallelFor((n + 15) / 16, grain: elementwiseGrain / 16) { r in
                let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
                var i = lo
                while i + 16 <= hi {
                    let v = UnsafeRawPointer(x.base + i).loadUnaligned(as: SIMD16<Float>.self)
                    UnsafeMutableRawPointer(o.base + i).storeBytes(of: simd(v), as: SIMD16<Float>.self)
                    i += 16
                }
                while i < hi { o[i] = scalar(x[i]); i += 1 }
            }
        }
        return out
    }

    /// The sign elementwise: 1, -1, or 0 for zero (PyTorch `sign`; NaN gives 0).
    public func sign() -> Tensor {
        mapElements({ v in
            SIMD16<Float>(repeating: 0).replacing(with: 1, where: v .> 0).replacing(with: -1, where: v .< 0)
        }) { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
    }

    /// `e^x` elementwise (vectorised, relative error < 2e-7).
    public func exp() -> Tensor { mapElements(FastMath.exp) { Foundation.exp($0) } }
    /// Natural logarithm elementwise.
    public func log() -> Tensor { mapElements({ v in var r = v; for i in 0..<16 { r[i] = Foundation.log(v[i]) }; return r }) { Foundation.log($0) } }
    /// Square root elementwise.
    public func sqrt() -> Tensor { mapElements(Self.simdSqrt) { $0.squareRoot() } }
    /// `1 / sqrt(x)` elementwise.
    public func rsqrt() -> Tensor { mapElements({ 1 / Self.simdSqrt($0) }) { 1 / $0.squareRoot() } }

    /// Lanewise square root as scalar `sqrtss` per lane (`SIMD.squareRoot()` calls libm per lane).
    @inline(__always)
    static func simdSqrt(_ v: SIMD16<Float>) -> SIMD16<Float> {
        var r = v
        for i in 0..<16 { r[i] = v[i].squareRoot() }
        return r
    }
    /// Hyperbolic tangent elementwise (vectorised).
    public func tanh() -> Tensor { mapElements(FastMath.tanh) { Foundation.tanh($0) } }
    /// The error function elementwise (vectorised, |error| < 5e-7).
    public func erf() -> Tensor { mapElements(FastMath.erf) { Foundation.erf($0) } }
    /// Absolute value elementwise.
    public func abs() -> Tensor { mapElements(FastMath.abs) { Swift.abs($0) } }
    /// `x^p` elementwise (`p` = 2 and 0.5 take fast paths).
    public func pow(_ p: Float) -> Tensor {
        if p == 2 { return mapElements({ $0 * $0 }) { $0 * $0 } }
        if p == 0.5 { return sqrt() }
        return mapElements({ v in var r = v; for i in 0..<16 { r[i] = Foundation.pow(v[i], p) }; return r }) { Foundation.pow($0, p) }
    }
    /// Elementwise clamp into `[low, high]`.
    public func clamped(min low: Float, max high: Float) -> Tensor {
        precondition(low <= high, "clamped: min \(low) > max \(high)")
        return mapElements({ FastMath.clamp($0, low, high) }) { Swift.min(Swift.max($0, low), high) }
    }
    /// `a * x + b` elementwise.
    public func affine(scale a: Float, shift b: Float) -> Tensor { mapElements({ $0 * a + b }) { $0 * a + b } }
}

/// Result shape of broadcasting `a` against `b` with NumPy rules (trailing axes aligned).
public func broadcastShape(_ a: Shape, _ b: Shape) -> Shape {
    let r = max(a.rank, b.rank)
    var dims = [Int](repeating: 1, count: r)
    for i in 0..<r {
        let da = i < r - a.rank ? 1 : a.dims[i - (r - a.rank)]
        let db = i < r - b.rank ? 1 : b.dims[i - (r - b.rank)]
        precondition(da == db || da == 1 || db == 1, "cannot broadcast shapes \(a) and \(b)")
        dims[i] = da == 1 ? db : da
    }
    return Shape(dims)
}

extension Tensor {
    /// Broadcast strides of this tensor's shape inside `target` (0 along broadcast axes).
    func broadcastStrides(in target: Shape) -> [Int] {
        let offset = target.rank - rank
        let own = shape.strides
        return (0..<target.rank).map { i in
            i < offset || shape.dims[i - offset] == 1 ? 0 : own[i - offset]
        }
    }

    /// Binary elementwise operation with NumPy broadcasting.
    @inline(__always)
    func zipElements(_ other: Tensor, _ simd: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>,
                     _ scalar: (Float, Float) -> Float) -> Tensor {
        if shape == other.shape {
            var out = Tensor(uninitialized: shape)
            let o = SendablePointer(out.mutablePointer())
            let a = SendablePointer(storage.base), b = SendablePointer(other.storage.base)
            let n = count
            withExtendedLifetime((storage, other.storage)) {
                parallelFor((n + 15) / 16, grain: elementwiseGrain / 16) { r in
                    let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
                    var i = lo
                    while i + 16 <= hi {
                        let va = UnsafeRawPointer(a.base + i).loadUnaligned(as: SIMD16<Float>.self)
                        let vb = UnsafeRawPointer(b.base + i).loadUnaligned(as: SIMD16<Float>.self)
                        UnsafeMutableRawPointer(o.base + i).storeBytes(of: simd(va, vb), as: SIMD16<Float>.self)
                        i += 16
                    }
                    while i < hi { o[i] = scalar(a[i], b[i]); i += 1 }
                }
            }
            return out
        }
        if other.count == 1 {
            let s = other.storage.base[0], sv = SIMD16<Float>(repeating: s)
            return mapElements({ simd($0, sv) }) { scalar($0, s) }
        }
        let outShape = broadcastShape(shape, other.shape)
        if count == 1 && outShape == other.shape {
            let s = storage.base[0], sv = SIMD16<Float>(repeating: s)
            return other.mapElements({ simd(sv, $0) }) { scalar(s, $0) }
        }
        return broadcastGeneral(other, outShape, simd, scalar)
    }

    @inline(__always)
    func broadcastGeneral(_ other: Tensor, _ outShape: Shape,
                          _ simd: (SIMD16<Float>, SIMD16<Float>) -> SIMD16<Float>,
                          _ scalar: (Float, Float) -> Float) -> Tensor {
        var out = Tensor(uninitialized: outShape)
        let r = outShape.rank
        let sa = broadcastStrides(in: outShape), sb = other.broadcastStrides(in: outShape)
        let inner = outShape.dims[r - 1]
        let rows = outShape.count / Swift.max(inner, 1)
        let ia = sa[r - 1], ib = sb[r - 1]
        let dims = outShape.dims
        let o = SendablePointer(out.mutablePointer())
        let a = SendablePointer(storage.base), b = SendablePointer(other.storage.base)
        withExtendedLifetime((storage, other.storage)) {
            parallelFor(rows, grain: Swift.max(1, elementwiseGrain / Swift.max(inner, 1))) { range in
                for row in range {
                    // Offsets of this row in a and b.
                    var rem = row, offA = 0, offB = 0
                    for d in stride(from: r - 2, through: 0, by: -1) {
                        let idx = rem % dims[d]; rem /= dims[d]
                        offA += idx * sa[d]; offB += idx * sb[d]
                    }
                    let pa = a.base + offA, pb = b.base + offB, po = o.base + row * inner
                    var j = 0
                    if ia == 1 && ib == 1 {
                        while j + 16 <= inner {
                            let va = UnsafeRawPointer(pa + j).loadUnaligned(as: SIMD16<Float>.self)
                            let vb = UnsafeRawPointer(pb + j).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(po + j).storeBytes(of: simd(va, vb), as: SIMD16<Float>.self)
                            j += 16
                        }
                    } else if ia == 1 && ib == 0 {
                        let vb = SIMD16<Float>(repeating: pb[0])
                        while j + 16 <= inner {
                            let va = UnsafeRawPointer(pa + j).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(po + j).storeBytes(of: simd(va, vb), as: SIMD16<Float>.self)
                            j += 16
                        }
                    } else if ia == 0 && ib == 1 {
                        let va = SIMD16<Float>(repeating: pa[0])
                        while j + 16 <= inner {
                            let vb = UnsafeRawPointer(pb + j).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(po + j).storeBytes(of: simd(va, vb), as: SIMD16<Float>.self)
                            j += 16
                        }
                    }
                    while j < inner { po[j] = scalar(pa[j * ia], pb[j * ib]); j += 1 }
                }
            }
        }
        return out
    }

    /// Elementwise sum with broadcasting.
    public static func + (a: Tensor, b: Tensor) -> Tensor { a.zipElements(b, { $0 + $1 }) { $0 + $1 } }
    /// Elementwise difference with broadcasting.
    public static func - (a: Tensor, b: Tensor) -> Tensor { a.zipElements(b, { $0 - $1 }) { $0 - $1 } }
    /// Elementwise product with broadcasting.
    public static func * (a: Tensor, b: Tensor) -> Tensor { a.zipElements(b, { $0 * $1 }) { $0 * $1 } }
    /// Elementwise quotient with broadcasting.
    public static func / (a: Tensor, b: Tensor) -> Tensor { a.zipElements(b, { $0 / $1 }) { $0 / $1 } }
    /// Elementwise maximum with broadcasting.
    public func maximum(_ b: Tensor) -> Tensor { zipElements(b, FastMath.max) { Swift.max($0, $1) } }
    /// Elementwise minimum with broadcasting.
    public func minimum(_ b: Tensor) -> Tensor { zipElements(b, FastMath.min) { Swift.min($0, $1) } }
    /// Elementwise `a^b` with broadcasting.
    public func pow(_ b: Tensor) -> Tensor {
        zipElements(b, { x, y in var r = x; for i in 0..<16 { r[i] = Foundation.pow(x[i], y[i]) }; return r }) { Foundation.pow($0, $1) }
    }

    /// Adds the scalar `s` to every element.
    public static func + (a: Tensor, s: Float) -> Tensor { a.mapElements({ $0 + s }) { $0 + s } }
    /// Subtracts the scalar `s` from every element.
    public static func - (a: Tensor, s: Float) -> Tensor { a.mapElements({ $0 - s }) { $0 - s } }
    /// Multiplies every element by the scalar `s`.
    public static func * (a: Tensor, s: Float) -> Tensor { a.mapElements({ $0 * s }) { $0 * s } }
    /// Divides every element by the scalar `s` (as a product with `1 / s`).
    public static func / (a: Tensor, s: Float) -> Tensor { a * (1 / s) }
    /// Adds the scalar `s` to every element.
    public static func + (s: Float, a: Tensor) -> Tensor { a + s }
    /// Subtracts every element from the scalar `s`.
    public static func - (s: Float, a: Tensor) -> Tensor { a.mapElements({ s - $0 }) { s - $0 } }
    /// Multiplies every element by the scalar `s`.
    public static func * (s: Float, a: Tensor) -> Tensor { a * s }
    /// Divides the scalar `s` by every element.
    public static func / (s: Float, a: Tensor) -> Tensor { a.mapElements({ s / $0 }) { s / $0 } }
    /// Elementwise negation.
    public static prefix func - (a: Tensor) -> Tensor { a.mapElements({ -$0 }) { -$0 } }

    /// Adds `b` elementwise in place (shapes must match).
    public static func += (a: inout Tensor, b: Tensor) { a.addInPlace(b) }
    /// Subtracts `b` elementwise in place (shapes must match).
    public static func -= (a: inout Tensor, b: Tensor) { a.addInPlace(b, scale: -1) }
    /// Multiplies every element by the scalar `s` in place.
    public static func *= (a: inout Tensor, s: Float) { a.scaleInPlace(s) }

    /// `self += scale * b` in place (same shape), without allocating.
    public mutating func addInPlace(_ b: Tensor, scale: Float = 1) {
        precondition(shape == b.shape, "addInPlace: \(shape) vs \(b.shape)")
        let o = SendablePointer(mutablePointer())
        let x = SendablePointer(b.storage.base)
        let n = count
        withExtendedLifetime(b.storage) {
            parallelFor(n, grain: elementwiseGrain) { r in
                for i in r { o[i] += scale * x[i] }
            }
        }
    }

    /// `self *= s` in place.
    public mutating func scaleInPlace(_ s: Float) {
        let o = SendablePointer(mutablePointer())
        parallelFor(count, grain: elementwiseGrain) { r in for i in r { o[i] *= s } }
    }

    /// Sets every element to `value` in place.
    public mutating func fill(_ value: Float) {
        let p = mutablePointer()
        p.update(repeating: value, count: count)
    }
}

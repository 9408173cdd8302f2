import CKernels

/// The arithmetic of PyTorch's AdamW step, for one parameter element: decoupled weight decay,
/// the two moments, and the bias-corrected update, with the constants of one step.
public struct AdamWStepConstants: Sendable {
    /// `1 - lr * weight_decay`.
    public var decay: Float
    /// The first moment's decay, `beta1`.
    public var beta1: Float
    /// The second moment's decay, `beta2`.
    public var beta2: Float
    /// The denominator's `eps`.
    public var eps: Float
    /// `lr / (1 - beta1^t)`, computed in double as PyTorch does.
    public var stepSize: Float
    /// `sqrt(1 - beta2^t)`.
    public var biasCorrection2Root: Float
    /// Gradients are multiplied by this first when it is below 1 (fused gradient clipping).
    public var gradientScale: Float

    /// The constants of an update.
    public init(decay: Float, beta1: Float, beta2: Float, eps: Float, stepSize: Float, biasCorrection2Root: Float,
                gradientScale: Float = 1) {
        self.decay = decay; self.beta1 = beta1; self.beta2 = beta2; self.eps = eps
        self.stepSize = stepSize; self.biasCorrection2Root = biasCorrection2Root; self.gradientScale = gradientScale
    }
}

/// Whole-arena optimizer passes: AdamW, the EMA's interpolation, the gradient norm and scaling.
extension Kernels {
    /// One AdamW update of the elements `range` of the parameter, gradient and moment arenas, in
    /// torch's operation order (`exp_avg.lerp_(grad, 1 - beta1)`,
    /// `exp_avg_sq.mul_(beta2).addcmul_(grad, grad, 1 - beta2)`, then the step). Threaded; on
    /// AVX2 CPUs each chunk runs the C pass (8 lanes, the same bits as the portable Swift one).
    ///
    /// With `shadow`, the same pass also updates an EMA of the parameters from the new values:
    /// `shadow += shadowWeight * (p - shadow)`, or `shadow = p` when `shadowWeight` is nil (the
    /// EMA's warm-up copies). The result is bit-identical to ``lerp(_:toward:weight:count:)``
    /// after the update, without reading the parameters a second time.
    public static func adamW(parameters: UnsafeMutablePointer<Float>, gradients: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, range: Range<Int>,
                             _ k: AdamWStepConstants, shadow: UnsafeMutablePointer<Float>? = nil, shadowWeight: Float? = nil) {
        let p = SendablePointer(parameters), g = SendablePointer(gradients)
        let mp = SendablePointer(m), vp = SendablePointer(v)
        let sp = shadow.map { SendablePointer($0) }
        let constants = maskdm_adamw_constants(gradient_scale: k.gradientScale, decay: k.decay, one_minus_beta1: 1 - k.beta1,
                                               beta2: k.beta2, one_minus_beta2: 1 - k.beta2, eps: k.eps,
                                               step_size: k.stepSize, bias_correction2_root: k.biasCorrection2Root,
                                               shadow_weight: shadowWeight ?? 1,
                                               shadow_mode: shadow == nil ? 0 : shadowWeight == nil ? 1 : 2)
        parallelFor((range.count + 15) / 16, grain: 1 << 11) { r in
            let lo = range.lowerBound + r.lowerBound * 16
            let hi = Swift.min(range.lowerBound + r.upperBound * 16, range.upperBound)
            if usesAVX2Kernels {
                var c = constants
                maskdm_adamw_avx2(p.base + lo, g.base + lo, mp.base + lo, vp.base + lo, sp.map { $0.base + lo }, hi - lo, &c)
            } else {
                adamWPortable(p.base, g.base, mp.base, vp.base, sp?.base, lo..<hi, constants)
            }
        }
    }

    /// ``adamW(parameters:gradients:m:v:range:_:shadow:shadowWeight:)`` on one thread in portable
    /// Swift SIMD (the path on CPUs without AVX2; tests check the C pass against it bit for bit).
    static func adamWPortable(_ p: UnsafeMutablePointer<Float>, _ g: UnsafePointer<Float>, _ mp: UnsafeMutablePointer<Float>,
                              _ vp: UnsafeMutablePointer<Float>, _ sp: UnsafeMutablePointer<Float>?, _ range: Range<Int>,
                              _ k: maskdm_adamw_constants) {
        let scaled = k.gradient_scale < 1, gs = k.gradient_scale, decay = k.decay, c1 = k.one_minus_beta1
        let b2 = k.beta2, c2 = k.one_minus_beta2, e = k.eps, stepSize = k.step_size, bc2Sqrt = k.bias_correction2_root
        let copyToShadow = k.shadow_mode == 1, sw = k.shadow_weight
        var i = range.lowerBound
        while i + 16 <= range.upperBound {
            var gi = UnsafeRawPointer(g + i).loadUnaligned(as: SIMD16<Float>.self)
            if scaled { gi *= gs }
            var pi = UnsafeRawPointer(p + i).loadUnaligned(as: SIMD16<Float>.self)
            var mi = UnsafeRawPointer(mp + i).loadUnaligned(as: SIMD16<Float>.self)
            var vi = UnsafeRawPointer(vp + i).loadUnaligned(as: SIMD16<Float>.self)
            pi *= decay
            mi += c1 * (gi - mi)
            vi = vi * b2 + c2 * gi * gi
            var root = vi
            for l in 0..<16 { root[l] = vi[l].squareRoot() }
            pi -= stepSize * mi / (root / bc2Sqrt + e)
            UnsafeMutableRawPointer(p + i).storeBytes(of: pi, as: SIMD16<Float>.self)
            if let sp {
                var si = pi
                if !copyToShadow {
                    si = UnsafeRawPointer(sp + i).loadUnaligned(as: SIMD16<Float>.self)
                    si += sw * (pi - si)
                }
                UnsafeMutableRawPointer(sp + i).storeBytes(of: si, as: SIMD16<Float>.self)
            }
            UnsafeMutableRawPointer(mp + i).storeBytes(of: mi, as: SIMD16<Float>.self)
            UnsafeMutableRawPointer(vp + i).storeBytes(of: vi, as: SIMD16<Float>.self)
            i += 16
        }
        while i < range.upperBound {
            let gi = scaled ? g[i] * gs : g[i]
            p[i] *= decay
            mp[i] += c1 * (gi - mp[i])
            vp[i] = vp[i] * b2 + c2 * gi * gi
            p[i] -= stepSize * mp[i] / (vp[i].squareRoot() / bc2Sqrt + e)
            if let sp { sp[i] = copyToShadow ? p[i] : sp[i] + sw * (p[i] - sp[i]) }
            i += 1
        }
    }

    /// `x[i] += weight * (target[i] - x[i])` for `i < count` (an EMA update), 16 lanes at a time.
    public static func lerp(_ x: UnsafeMutablePointer<Float>, toward target: UnsafePointer<Float>, weight w: Float,
                            count n: Int) {
        let s = SendablePointer(x), o = SendablePointer(target)
        parallelFor((n + 15) / 16, grain: 1 << 11) { r in
            let lo = r.lowerBound * 16, hi = Swift.min(r.upperBound * 16, n)
            var i = lo
            while i + 16 <= hi {
                let sv = UnsafeRawPointer(s.base + i).loadUnaligned(as: SIMD16<Float>.self)
                let ov = UnsafeRawPointer(o.base + i).loadUnaligned(as: SIMD16<Float>.self)
                UnsafeMutableRawPointer(s.base + i).storeBytes(of: sv + w * (ov - sv), as: SIMD16<Float>.self)
                i += 16
            }
            while i < hi { s[i] += w * (o[i] - s[i]); i += 1 }
        }
    }

    /// `sum x[i]^2` over `count` values: Float partial sums over blocks of 4,096, combined in
    /// Double in block order (deterministic for a given count, whatever the thread count).
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        blockSumOfSquares(UnsafeMutablePointer(mutating: x), adding: nil, count: n)
    }

    /// `dst[i] += src[i]` for `i < count`, returning the sum of squares of the result: the sum of
    /// ``add(_:into:count:)`` and the norm of ``sumOfSquares(_:count:)`` in one pass over memory,
    /// with the same value, bit for bit, as those two calls (e.g. summing the last replica's
    /// gradient arena into the first while taking the norm for clipping).
    public static func addSumOfSquares(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>,
                                       count n: Int) -> Double {
        blockSumOfSquares(dst, adding: src, count: n)
    }

    /// The blocks of ``sumOfSquares(_:count:)``, each first adding `src` into `x` when given.
    private static func blockSumOfSquares(_ x: UnsafeMutablePointer<Float>, adding src: UnsafePointer<Float>?,
                                          count n: Int) -> Double {
        let g = SendablePointer(x), s = src.map { SendablePointer($0) }
        let block = 4096
        let blocks = (n + block - 1) / block
        var partial = [Double](repeating: 0, count: blocks)
        partial.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            let out = SendablePointer(base)
            parallelFor(blocks, grain: 16) { r in
                for bi in r {
                    let lo = bi * block, hi = Swift.min(lo + block, n)
                    var acc = SIMD16<Float>(repeating: 0)
                    var i = lo
                    while i + 16 <= hi {
                        var v = UnsafeRawPointer(g.base + i).loadUnaligned(as: SIMD16<Float>.self)
                        if let s {
                            v += UnsafeRawPointer(s.base + i).loadUnaligned(as: SIMD16<Float>.self)
                            UnsafeMutableRawPointer(g.base + i).storeBytes(of: v, as: SIMD16<Float>.self)
                        }
                        acc += v * v
                        i += 16
                    }
                    var sum = Double(acc.sum())
                    while i < hi {
                        if let s { g[i] += s[i] }
                        sum += Double(g[i]) * Double(g[i])
                        i += 1
                    }
                    out[bi] = sum
                }
            }
        }
        return partial.reduce(0, +)
    }

    /// `x[i] *= factor` for `i < count`, in parallel.
    public static func scale(_ x: UnsafeMutablePointer<Float>, by factor: Float, count: Int) {
        let g = SendablePointer(x)
        parallelFor(count, grain: 1 << 16) { r in for i in r { g[i] *= factor } }
    }

    /// `dst[i] += src[i]` for `i < count`, in parallel chunks of 1M floats (e.g. summing the
    /// gradient arenas of per-thread replicas).
    public static func add(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        let d = SendablePointer(dst), s = SendablePointer(src)
        let chunk = 1 << 20
        parallelFor((n + chunk - 1) / chunk) { r in
            let lo = r.lowerBound * chunk, hi = Swift.min(r.upperBound * chunk, n)
            for i in lo..<hi { d[i] += s[i] }
        }
    }

    /// Copies `count` values in parallel chunks of 1M floats (a model-sized copy is memory-bound).
    public static func copy(_ src: UnsafePointer<Float>, into dst: UnsafeMutablePointer<Float>, count n: Int) {
        let d = SendablePointer(dst), s = SendablePointer(src)
        let chunk = 1 << 20
        parallelFor((n + chunk - 1) / chunk) { r in
            let lo = r.lowerBound * chunk, hi = Swift.min(r.upperBound * chunk, n)
            (d.base + lo).update(from: s.base + lo, count: hi - lo)
        }
    }
}

extension Naive {
    /// Reference AdamW: the scalar formula of `torch.optim.AdamW`, one element at a time; then,
    /// with `shadow`, the EMA update from the new weights (a copy when `shadowWeight` is nil).
    public static func adamW(parameters p: UnsafeMutablePointer<Float>, gradients g: UnsafePointer<Float>,
                             m: UnsafeMutablePointer<Float>, v: UnsafeMutablePointer<Float>, range: Range<Int>,
                             _ k: AdamWStepConstants, shadow: UnsafeMutablePointer<Float>? = nil, shadowWeight: Float? = nil) {
        for i in range {
            let gi = k.gradientScale < 1 ? g[i] * k.gradientScale : g[i]
            p[i] *= k.decay
            m[i] += (1 - k.beta1) * (gi - m[i])
            v[i] = v[i] * k.beta2 + (1 - k.beta2) * gi * gi
            p[i] -= k.stepSize * m[i] / (v[i].squareRoot() / k.biasCorrection2Root + k.eps)
        }
        guard let shadow else { return }
        for i in range { shadow[i] = shadowWeight.map { shadow[i] + $0 * (p[i] - shadow[i]) } ?? p[i] }
    }

    /// Reference sum of squares, in Double.
    public static func sumOfSquares(_ x: UnsafePointer<Float>, count: Int) -> Double {
        (0..<count).reduce(0.0) { $0 + Double(x[$1]) * Double(x[$1]) }
    }
}

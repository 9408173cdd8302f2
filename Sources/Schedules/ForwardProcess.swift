import Tensor

extension NoiseSchedule {
    /// Noises clean images to step `t` (one step per batch item):
    /// x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps over the whole image, with the coefficients
    /// rounded to Float32 from Float64 as the reference buffers are.
    /// `x0`, `noise`: (B, ...) of equal shape; `t`: B steps in `0..<T`. Returns (B, ...).
    public func qSample(x0: Tensor, t: [Int], noise: Tensor) -> Tensor {
        checkBatch("qSample", x0, t, noise)
        let (a, b) = signalAndNoiseScales(t)
        return perItemAffine(x0, a, noise, b)
    }

    /// sqrt(ab_t) and sqrt(1 - ab_t) per item, rounded to Float32 from Float64.
    func signalAndNoiseScales(_ t: [Int]) -> (signal: [Float], noise: [Float]) {
        (t.map { Float(alphaBar($0).squareRoot()) }, t.map { Float((1 - alphaBar($0)).squareRoot()) })
    }

    /// The clean image implied by a noise prediction, x0 = sqrt(1/ab_t) x_t - sqrt(1/ab_t - 1) eps
    /// (Float32 coefficients from Float64), optionally clamped to [-1, 1].
    /// `xt`, `eps`: (B, ...); `t`: B steps in `0..<T`.
    public func predictX0(xt: Tensor, t: [Int], eps: Tensor, clip: Bool = false) -> Tensor {
        checkBatch("predictX0", xt, t, eps)
        let a = t.map { Float((1 / alphaBar($0)).squareRoot()) }
        let b = t.map { -Float((1 / alphaBar($0) - 1).squareRoot()) }
        let x0 = perItemAffine(xt, a, eps, b)
        return clip ? x0.clamped(min: -1, max: 1) : x0
    }

    /// The noise implied by a clean-image estimate, eps = (sqrt(1/ab_t) x_t - x0) / sqrt(1/ab_t - 1).
    /// `xt`, `x0`: (B, ...); `t`: B steps in `0..<T`.
    public func predictEps(xt: Tensor, t: [Int], x0: Tensor) -> Tensor {
        checkBatch("predictEps", xt, t, x0)
        let a = t.map { Float((1 / alphaBar($0)).squareRoot() / (1 / alphaBar($0) - 1).squareRoot()) }
        let b = t.map { -Float(1 / (1 / alphaBar($0) - 1).squareRoot()) }
        return perItemAffine(xt, a, x0, b)
    }

    private func checkBatch(_ op: String, _ x: Tensor, _ t: [Int], _ y: Tensor) {
        precondition(x.shape == y.shape, "\(op): shapes \(x.shape) and \(y.shape) differ")
        precondition(x.rank >= 1 && x.shape[0] == t.count,
                     "\(op): \(t.count) steps for a batch of shape \(x.shape)")
        for s in t { precondition(s >= 0 && s < timesteps, "\(op): step \(s) outside 0..<\(timesteps)") }
    }
}

/// out[b, i] = a[b] * x[b, i] + c[b] * y[b, i] in Float32. x, y: (B, ...).
func perItemAffine(_ x: Tensor, _ a: [Float], _ y: Tensor, _ c: [Float]) -> Tensor {
    let batch = a.count
    let inner = batch == 0 ? 0 : x.count / batch
    var out = Tensor(uninitialized: x.shape)
    let o = out.mutablePointer()
    withExtendedLifetime(out) {
        x.withUnsafeBufferPointer { px in
            y.withUnsafeBufferPointer { py in
                for b in 0..<batch {
                    let ab = a[b], cb = c[b]
                    for i in (b * inner)..<((b + 1) * inner) { o[i] = ab * px[i] + cb * py[i] }
                }
            }
        }
    }
    return out
}

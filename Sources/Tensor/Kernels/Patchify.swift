extension Kernels {
    /// Patchify `B C (h p1) (w p2) -> B (h w) (p1 p2 C)`. x: (B, C, H, W), out: (B, N, P*P*C).
    /// With `accumulate`, adds into `out` instead of overwriting.
    public static func patchify(x: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                batch: Int, channels: Int, height: Int, width: Int, patch p: Int,
                                accumulate: Bool = false) {
        let gh = height / p, gw = width / p
        let xs = SendablePointer(x), os = SendablePointer(out)
        parallelFor(batch * gh, grain: 1) { r in
            for bh in r {
                let b = bh / gh, hi = bh % gh
                for wi in 0..<gw {
                    let tok = os.base + ((b * gh + hi) * gw + wi) * p * p * channels
                    for p1 in 0..<p {
                        for p2 in 0..<p {
                            let dst = tok + (p1 * p + p2) * channels
                            let src = xs.base + ((b * channels) * height + hi * p + p1) * width + wi * p + p2
                            for c in 0..<channels {
                                let v = src[c * height * width]
                                if accumulate { dst[c] += v } else { dst[c] = v }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Unpatchify `B (h w) (p1 p2 C) -> B C (h p1) (w p2)`, the inverse of ``patchify``.
    /// tokens: (B, N, P*P*C), out: (B, C, H, W). With `accumulate`, adds into `out`.
    public static func unpatchify(tokens: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>,
                                  batch: Int, channels: Int, height: Int, width: Int, patch p: Int,
                                  accumulate: Bool = false) {
        let gh = height / p, gw = width / p
        let ts = SendablePointer(tokens), os = SendablePointer(out)
        parallelFor(batch * gh, grain: 1) { r in
            for bh in r {
                let b = bh / gh, hi = bh % gh
                for wi in 0..<gw {
                    let tok = ts.base + ((b * gh + hi) * gw + wi) * p * p * channels
                    for p1 in 0..<p {
                        for p2 in 0..<p {
                            let src = tok + (p1 * p + p2) * channels
                            let dst = os.base + ((b * channels) * height + hi * p + p1) * width + wi * p + p2
                            for c in 0..<channels {
                                if accumulate { dst[c * height * width] += src[c] } else { dst[c * height * width] = src[c] }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// `B C (h p1) (w p2) -> B (h w) (p1 p2 C)`: (B, C, H, W) to (B, N, P*P*C).
    public func patchified(patch p: Int) -> Tensor {
        let (b, c, h, w) = shape.dims4()
        precondition(p > 0 && h % p == 0 && w % p == 0, "patchified: image \(shape) not divisible by patch \(p)")
        var out = Tensor(uninitialized: [b, (h / p) * (w / p), p * p * c])
        withExtendedLifetime(storage) {
            Kernels.patchify(x: storage.base, out: out.mutablePointer(), batch: b, channels: c, height: h, width: w, patch: p)
        }
        return out
    }

    /// `B (h w) (p1 p2 C) -> B C (h p1) (w p2)`: (B, N, P*P*C) to (B, C, H, W).
    public func unpatchified(patch p: Int, channels c: Int, height h: Int, width w: Int) -> Tensor {
        let (b, n, d) = shape.dims3()
        precondition(h % p == 0 && w % p == 0 && n == (h / p) * (w / p) && d == p * p * c,
                     "unpatchified: tokens \(shape) do not fit (C, H, W) = (\(c), \(h), \(w)) with patch \(p)")
        var out = Tensor(uninitialized: [b, c, h, w])
        withExtendedLifetime(storage) {
            Kernels.unpatchify(tokens: storage.base, out: out.mutablePointer(), batch: b, channels: c, height: h, width: w, patch: p)
        }
        return out
    }
}

// Naive twins of the convolution and pooling kernels: direct loops, one thread, no im2col.

extension Naive {
    /// Direct 7-loop convolution; same contract as ``Kernels/conv2dForward(out:input:weight:bias:_:)``.
    public static func conv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     _ g: Conv2dGeometry) {
        let (cin, h, w, cout) = (g.inChannels, g.height, g.width, g.outChannels)
        let (kh, kw) = g.kernel, oh = g.outHeight, ow = g.outWidth
        for b in 0..<g.batch {
            for co in 0..<cout {
                for y in 0..<oh {
                    for x in 0..<ow {
                        var s: Float = bias?[co] ?? 0
                        for ci in 0..<cin {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let iy = y * g.stride.height - g.padding.height + ki
                                    let ix = x * g.stride.width - g.padding.width + kj
                                    if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                                    s += input[((b * cin + ci) * h + iy) * w + ix]
                                        * weight[((co * cin + ci) * kh + ki) * kw + kj]
                                }
                            }
                        }
                        out[((b * cout + co) * oh + y) * ow + x] = s
                    }
                }
            }
        }
    }

    /// Direct convolution backward; same contract as
    /// ``Kernels/conv2dBackward(dInput:dWeight:dBias:dOut:input:weight:_:)`` (accumulates).
    public static func conv2dBackward(dInput: UnsafeMutablePointer<Float>?,
                                      dWeight: UnsafeMutablePointer<Float>?,
                                      dBias: UnsafeMutablePointer<Float>?,
                                      dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      weight: UnsafePointer<Float>, _ g: Conv2dGeometry) {
        let (cin, h, w, cout) = (g.inChannels, g.height, g.width, g.outChannels)
        let (kh, kw) = g.kernel, oh = g.outHeight, ow = g.outWidth
        for b in 0..<g.batch {
            for co in 0..<cout {
                for y in 0..<oh {
                    for x in 0..<ow {
                        let d = dOut[((b * cout + co) * oh + y) * ow + x]
                        dBias?[co] += d
                        for ci in 0..<cin {
                            for ki in 0..<kh {
                                for kj in 0..<kw {
                                    let iy = y * g.stride.height - g.padding.height + ki
                                    let ix = x * g.stride.width - g.padding.width + kj
                                    if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                                    let xi = ((b * cin + ci) * h + iy) * w + ix
                                    let wi = ((co * cin + ci) * kh + ki) * kw + kj
                                    dInput?[xi] += d * weight[wi]
                                    dWeight?[wi] += d * input[xi]
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Calls `body(plane, y, x, iy, ix)` for every input pixel (iy, ix) inside the window of output
    /// (y, x), for every plane; padding positions are skipped.
    private static func forEachWindowPixel(_ g: Pool2dGeometry, _ body: (Int, Int, Int, Int, Int) -> Void) {
        for p in 0..<g.planes {
            for y in 0..<g.outHeight {
                for x in 0..<g.outWidth {
                    for ki in 0..<g.kernel.height {
                        for kj in 0..<g.kernel.width {
                            let iy = y * g.stride.height - g.padding.height + ki
                            let ix = x * g.stride.width - g.padding.width + kj
                            if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width { body(p, y, x, iy, ix) }
                        }
                    }
                }
            }
        }
    }

    /// Direct max pooling; same contract as ``Kernels/maxPool2dForward(out:indices:input:_:)``.
    public static func maxPool2dForward(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>,
                                        input: UnsafePointer<Float>, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth
        out.update(repeating: -.infinity, count: g.planes * ohw)
        indices.update(repeating: -1, count: g.planes * ohw)
        forEachWindowPixel(g) { p, y, x, iy, ix in
            let o = p * ohw + y * g.outWidth + x, v = input[p * hw + iy * g.width + ix]
            if indices[o] < 0 || v > out[o] { out[o] = v; indices[o] = Int32(iy * g.width + ix) }
        }
    }

    /// Direct max pooling backward; same contract as ``Kernels/maxPool2dBackward(dInput:dOut:indices:_:)``.
    public static func maxPool2dBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                         indices: UnsafePointer<Int32>, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth
        for p in 0..<g.planes {
            for i in 0..<ohw { dInput[p * hw + Int(indices[p * ohw + i])] += dOut[p * ohw + i] }
        }
    }

    /// The average-pooling divisor of output (y, x), computed from scratch.
    private static func divisor(_ g: Pool2dGeometry, _ y: Int, _ x: Int, countIncludePad: Bool) -> Float {
        var inside = 0, padded = 0
        for ki in 0..<g.kernel.height {
            for kj in 0..<g.kernel.width {
                let iy = y * g.stride.height - g.padding.height + ki
                let ix = x * g.stride.width - g.padding.width + kj
                if iy < g.height + g.padding.height && ix < g.width + g.padding.width { padded += 1 }
                if iy >= 0 && iy < g.height && ix >= 0 && ix < g.width { inside += 1 }
            }
        }
        return Float(countIncludePad ? padded : inside)
    }

    /// Direct average pooling; same contract as ``Kernels/avgPool2dForward(out:input:countIncludePad:_:)``.
    public static func avgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                        countIncludePad: Bool, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth
        out.update(repeating: 0, count: g.planes * ohw)
        forEachWindowPixel(g) { p, y, x, iy, ix in
            out[p * ohw + y * g.outWidth + x] += input[p * hw + iy * g.width + ix]
        }
        for p in 0..<g.planes {
            for y in 0..<g.outHeight {
                for x in 0..<g.outWidth {
                    out[p * ohw + y * g.outWidth + x] /= divisor(g, y, x, countIncludePad: countIncludePad)
                }
            }
        }
    }

    /// Direct average pooling backward; same contract as
    /// ``Kernels/avgPool2dBackward(dInput:dOut:countIncludePad:_:)`` (accumulates).
    public static func avgPool2dBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                         countIncludePad: Bool, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth
        forEachWindowPixel(g) { p, y, x, iy, ix in
            dInput[p * hw + iy * g.width + ix] += dOut[p * ohw + y * g.outWidth + x]
                / divisor(g, y, x, countIncludePad: countIncludePad)
        }
    }
}

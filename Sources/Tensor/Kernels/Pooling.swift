// Kept in Tensor, not moved to Metrics: the Inception-v3 is its only client (InceptionBlocks.swift
// for the non-3x3 cases, globalAvgPool2dForward, and the reference of the specialised pool3x3 in
// MetricsTests). Like every kernel here it has a naive twin (NaiveConvPool.swift), an accumulating
// backward and golden PyTorch tests in TensorTests (ConvPoolTests, GoldenConvPoolTests,
// golden_*_pool2d*.json); moving it would move those tests, fixtures and the golden harness too.

// 2-D max and average pooling over NCHW batches (PyTorch semantics, floor mode), and global average pooling.

/// The sizes of a 2-D pooling: input (B, C, H, W), output (B, C, OH, OW) with
/// `OH = (H + 2 PH - KH) / SH + 1` (floor mode, as PyTorch's default `ceil_mode=False`).
public struct Pool2dGeometry: Sendable, Equatable {
    /// B.
    public let batch: Int
    /// C.
    public let channels: Int
    /// H, the input height.
    public let height: Int
    /// W, the input width.
    public let width: Int
    /// (KH, KW).
    public let kernel: (height: Int, width: Int)
    /// (SH, SW).
    public let stride: (height: Int, width: Int)
    /// (PH, PW), at most half the kernel on each axis (as PyTorch requires).
    public let padding: (height: Int, width: Int)

    /// Checks the sizes (positive kernel and stride, padding at most half the kernel, non-empty output).
    public init(batch: Int, channels: Int, height: Int, width: Int,
                kernel: (Int, Int), stride: (Int, Int), padding: (Int, Int) = (0, 0)) {
        precondition(batch >= 0 && channels > 0 && height > 0 && width > 0,
                     "pool2d: bad sizes B=\(batch) C=\(channels) H=\(height) W=\(width)")
        precondition(kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0,
                     "pool2d: bad kernel \(kernel) or stride \(stride)")
        precondition(padding.0 >= 0 && padding.1 >= 0 && 2 * padding.0 <= kernel.0 && 2 * padding.1 <= kernel.1,
                     "pool2d: padding \(padding) must be between 0 and half the kernel \(kernel)")
        precondition(height + 2 * padding.0 >= kernel.0 && width + 2 * padding.1 >= kernel.1,
                     "pool2d: kernel \(kernel) larger than padded input (\(height), \(width)) with padding \(padding)")
        self.batch = batch; self.channels = channels; self.height = height; self.width = width
        self.kernel = (kernel.0, kernel.1); self.stride = (stride.0, stride.1); self.padding = (padding.0, padding.1)
    }

    /// OH.
    public var outHeight: Int { (height + 2 * padding.height - kernel.height) / stride.height + 1 }
    /// OW.
    public var outWidth: Int { (width + 2 * padding.width - kernel.width) / stride.width + 1 }
    /// B * C: the number of independent (H, W) planes.
    public var planes: Int { batch * channels }

    /// The window of output (y, x), clipped to the input, and its size counting padding
    /// (PyTorch's `count_include_pad` divisor).
    @inline(__always)
    func window(_ y: Int, _ x: Int) -> (rows: Range<Int>, cols: Range<Int>, paddedSize: Int) {
        let y0 = y * stride.height - padding.height, x0 = x * stride.width - padding.width
        let y1 = Swift.min(y0 + kernel.height, height + padding.height)
        let x1 = Swift.min(x0 + kernel.width, width + padding.width)
        let size = (y1 - y0) * (x1 - x0)
        return (Swift.max(y0, 0)..<Swift.min(y1, height), Swift.max(x0, 0)..<Swift.min(x1, width), size)
    }

    /// Equal when every size, kernel, stride and padding agrees.
    public static func == (a: Pool2dGeometry, b: Pool2dGeometry) -> Bool {
        a.batch == b.batch && a.channels == b.channels && a.height == b.height && a.width == b.width
            && a.kernel == b.kernel && a.stride == b.stride && a.padding == b.padding
    }
}

extension Kernels {
    /// Work items (planes) per parallel chunk for a pooling over `g`.
    static func poolGrain(_ g: Pool2dGeometry) -> Int {
        Swift.max(1, 32_768 / Swift.max(1, g.outHeight * g.outWidth * g.kernel.height * g.kernel.width))
    }

    /// Max pooling forward; padding counts as -inf. Also records, for each output, the flat index
    /// `iy * W + ix` of its maximum within its (H, W) plane (as `return_indices=True`; first maximum
    /// wins, NaN propagates).
    ///
    /// input (B, C, H, W) -> out (B, C, OH, OW), indices (B, C, OH, OW).
    public static func maxPool2dForward(out: UnsafeMutablePointer<Float>, indices: UnsafeMutablePointer<Int32>,
                                        input: UnsafePointer<Float>, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth, w = g.width
        let o = SendablePointer(out), ix = SendablePointer(indices), x = SendablePointer(input)
        parallelFor(g.planes, grain: poolGrain(g)) { planes in
            for p in planes {
                let plane = x.base + p * hw, op = o.base + p * ohw, ip = ix.base + p * ohw
                for y in 0..<g.outHeight {
                    for xo in 0..<g.outWidth {
                        let win = g.window(y, xo)
                        var best = -Float.infinity, arg = win.rows.lowerBound * w + win.cols.lowerBound
                        for iy in win.rows {
                            for jx in win.cols {
                                let v = plane[iy * w + jx]
                                if v > best || v.isNaN { best = v; arg = iy * w + jx }
                            }
                        }
                        op[y * g.outWidth + xo] = best
                        ip[y * g.outWidth + xo] = Int32(arg)
                    }
                }
            }
        }
    }

    /// Max pooling backward: adds each output gradient to its argmax input.
    ///
    /// dOut (B, C, OH, OW), indices (B, C, OH, OW) from the forward -> dInput (B, C, H, W) (`+=`).
    public static func maxPool2dBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                         indices: UnsafePointer<Int32>, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth
        let dx = SendablePointer(dInput), dy = SendablePointer(dOut), ix = SendablePointer(indices)
        parallelFor(g.planes, grain: Swift.max(1, 32_768 / Swift.max(1, ohw))) { planes in
            for p in planes {
                let plane = dx.base + p * hw, gp = dy.base + p * ohw, ip = ix.base + p * ohw
                for i in 0..<ohw { plane[Int(ip[i])] += gp[i] }
            }
        }
    }

    /// Average pooling forward. The divisor is the window size including padding when
    /// `countIncludePad` (PyTorch's default), else the number of input pixels in the window.
    ///
    /// input (B, C, H, W) -> out (B, C, OH, OW).
    public static func avgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                        countIncludePad: Bool, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth, w = g.width
        let o = SendablePointer(out), x = SendablePointer(input)
        parallelFor(g.planes, grain: poolGrain(g)) { planes in
            for p in planes {
                let plane = x.base + p * hw, op = o.base + p * ohw
                for y in 0..<g.outHeight {
                    for xo in 0..<g.outWidth {
                        let win = g.window(y, xo)
                        var s: Float = 0
                        for iy in win.rows {
                            for jx in win.cols { s += plane[iy * w + jx] }
                        }
                        let divisor = countIncludePad ? win.paddedSize : win.rows.count * win.cols.count
                        op[y * g.outWidth + xo] = s / Float(divisor)
                    }
                }
            }
        }
    }

    /// Average pooling backward: spreads each output gradient evenly over its window's input pixels.
    ///
    /// dOut (B, C, OH, OW) -> dInput (B, C, H, W) (`+=`).
    public static func avgPool2dBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                         countIncludePad: Bool, _ g: Pool2dGeometry) {
        let hw = g.height * g.width, ohw = g.outHeight * g.outWidth, w = g.width
        let dx = SendablePointer(dInput), dy = SendablePointer(dOut)
        parallelFor(g.planes, grain: poolGrain(g)) { planes in
            for p in planes {
                let plane = dx.base + p * hw, gp = dy.base + p * ohw
                for y in 0..<g.outHeight {
                    for xo in 0..<g.outWidth {
                        let win = g.window(y, xo)
                        let divisor = countIncludePad ? win.paddedSize : win.rows.count * win.cols.count
                        let v = gp[y * g.outWidth + xo] / Float(divisor)
                        for iy in win.rows {
                            for jx in win.cols { plane[iy * w + jx] += v }
                        }
                    }
                }
            }
        }
    }

    /// Global average pooling forward: the mean of each (H, W) plane.
    ///
    /// input (B, C, H, W) -> out (B, C) (viewed as (B, C, 1, 1) by ``Tensor/globalAvgPool2d()``).
    public static func globalAvgPool2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                              planes: Int, planeSize: Int) {
        let o = SendablePointer(out), x = SendablePointer(input), scale = 1 / Float(planeSize)
        parallelFor(planes, grain: Swift.max(1, 32_768 / Swift.max(1, planeSize))) { range in
            for p in range {
                let plane = x.base + p * planeSize
                var s: Float = 0
                for i in 0..<planeSize { s += plane[i] }
                o[p] = s * scale
            }
        }
    }

    /// Global average pooling backward: each plane's gradient spread evenly over the plane.
    ///
    /// dOut (B, C) -> dInput (B, C, H, W) (`+=`).
    public static func globalAvgPool2dBackward(dInput: UnsafeMutablePointer<Float>, dOut: UnsafePointer<Float>,
                                               planes: Int, planeSize: Int) {
        let dx = SendablePointer(dInput), dy = SendablePointer(dOut), scale = 1 / Float(planeSize)
        parallelFor(planes, grain: Swift.max(1, 32_768 / Swift.max(1, planeSize))) { range in
            for p in range {
                let plane = dx.base + p * planeSize, v = dy[p] * scale
                for i in 0..<planeSize { plane[i] += v }
            }
        }
    }
}

extension Tensor {
    /// The pooling geometry of an NCHW tensor; `stride` defaults to the kernel (as PyTorch).
    func poolGeometry(_ op: String, kernel: (Int, Int), stride: (Int, Int)?, padding: (Int, Int)) -> Pool2dGeometry {
        precondition(rank == 4, "\(op): input \(shape) must be (B, C, H, W)")
        let (b, c, h, w) = shape.dims4()
        return Pool2dGeometry(batch: b, channels: c, height: h, width: w,
                              kernel: kernel, stride: stride ?? kernel, padding: padding)
    }

    /// 2-D max pooling, as `torch.nn.functional.max_pool2d` (padding is -inf, floor mode).
    ///
    /// `self` (B, C, H, W) -> (B, C, OH, OW). `stride` defaults to `kernel`.
    public func maxPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0)) -> Tensor {
        maxPool2dWithIndices(kernel: kernel, stride: stride, padding: padding).output
    }

    /// 2-D max pooling that also returns each output's argmax as a flat index into its (H, W)
    /// plane (what ``Kernels/maxPool2dBackward(dInput:dOut:indices:_:)`` needs).
    ///
    /// `self` (B, C, H, W) -> output (B, C, OH, OW), indices B*C*OH*OW row-major.
    public func maxPool2dWithIndices(kernel: (Int, Int), stride: (Int, Int)? = nil,
                                     padding: (Int, Int) = (0, 0)) -> (output: Tensor, indices: [Int32]) {
        let g = poolGeometry("maxPool2d", kernel: kernel, stride: stride, padding: padding)
        var out = Tensor(uninitialized: [g.batch, g.channels, g.outHeight, g.outWidth])
        var indices = [Int32](repeating: 0, count: out.count)
        let o = out.mutablePointer()
        indices.withUnsafeMutableBufferPointer { ip in
            withExtendedLifetime(storage) {
                if let ib = ip.baseAddress { Kernels.maxPool2dForward(out: o, indices: ib, input: storage.base, g) }
            }
        }
        return (out, indices)
    }

    /// 2-D average pooling, as `torch.nn.functional.avg_pool2d` (floor mode). With
    /// `countIncludePad` the divisor counts padded zeros; without, only input pixels.
    ///
    /// `self` (B, C, H, W) -> (B, C, OH, OW). `stride` defaults to `kernel`.
    public func avgPool2d(kernel: (Int, Int), stride: (Int, Int)? = nil, padding: (Int, Int) = (0, 0),
                          countIncludePad: Bool = true) -> Tensor {
        let g = poolGeometry("avgPool2d", kernel: kernel, stride: stride, padding: padding)
        var out = Tensor(uninitialized: [g.batch, g.channels, g.outHeight, g.outWidth])
        let o = out.mutablePointer()
        withExtendedLifetime(storage) {
            Kernels.avgPool2dForward(out: o, input: storage.base, countIncludePad: countIncludePad, g)
        }
        return out
    }

    /// Global average pooling (adaptive average pooling to 1x1): the mean of each channel plane.
    ///
    /// `self` (B, C, H, W) -> (B, C, 1, 1).
    public func globalAvgPool2d() -> Tensor {
        precondition(rank == 4, "globalAvgPool2d: input \(shape) must be (B, C, H, W)")
        let (b, c, h, w) = shape.dims4()
        precondition(h * w > 0, "globalAvgPool2d: empty planes in \(shape)")
        var out = Tensor(uninitialized: [b, c, 1, 1])
        let o = out.mutablePointer()
        withExtendedLifetime(storage) {
            Kernels.globalAvgPool2dForward(out: o, input: storage.base, planes: b * c, planeSize: h * w)
        }
        return out
    }
}

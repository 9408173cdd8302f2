// Kept in Tensor, not moved to Metrics: the Inception-v3 is its only client, and only as the test
// reference for Metrics' own BatchNorm-folded conv (InceptionConv.swift). Like every kernel here it
// has a naive twin (NaiveConvPool.swift), an accumulating backward and golden PyTorch tests in
// TensorTests (ConvPoolTests, GoldenConvPoolTests, golden_conv2d*.json); moving it would move those
// tests, fixtures and the golden harness with it, for no gain in Metrics.

// 2-D convolution (NCHW, zero padding, no dilation or groups) by im2col + one GEMM per image.

/// The sizes of a 2-D convolution: input (B, Cin, H, W), weight (Cout, Cin, KH, KW),
/// output (B, Cout, OH, OW) with `OH = (H + 2 PH - KH) / SH + 1` (floor, as PyTorch).
public struct Conv2dGeometry: Sendable, Equatable {
    /// B.
    public let batch: Int
    /// Cin.
    public let inChannels: Int
    /// H, the input height.
    public let height: Int
    /// W, the input width.
    public let width: Int
    /// Cout.
    public let outChannels: Int
    /// (KH, KW).
    public let kernel: (height: Int, width: Int)
    /// (SH, SW).
    public let stride: (height: Int, width: Int)
    /// (PH, PW): zeros added on both sides of each spatial axis.
    public let padding: (height: Int, width: Int)

    /// Checks the sizes (positive kernel and stride, non-negative padding, non-empty output).
    public init(batch: Int, inChannels: Int, height: Int, width: Int, outChannels: Int,
                kernel: (Int, Int), stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)) {
        precondition(batch >= 0 && inChannels > 0 && outChannels > 0 && height > 0 && width > 0,
                     "conv2d: bad sizes B=\(batch) Cin=\(inChannels) H=\(height) W=\(width) Cout=\(outChannels)")
        precondition(kernel.0 > 0 && kernel.1 > 0 && stride.0 > 0 && stride.1 > 0 && padding.0 >= 0 && padding.1 >= 0,
                     "conv2d: bad kernel \(kernel), stride \(stride) or padding \(padding)")
        precondition(height + 2 * padding.0 >= kernel.0 && width + 2 * padding.1 >= kernel.1,
                     "conv2d: kernel \(kernel) larger than padded input (\(height), \(width)) with padding \(padding)")
        self.batch = batch; self.inChannels = inChannels; self.height = height; self.width = width
        self.outChannels = outChannels
        self.kernel = (kernel.0, kernel.1); self.stride = (stride.0, stride.1); self.padding = (padding.0, padding.1)
    }

    /// OH.
    public var outHeight: Int { (height + 2 * padding.height - kernel.height) / stride.height + 1 }
    /// OW.
    public var outWidth: Int { (width + 2 * padding.width - kernel.width) / stride.width + 1 }
    /// Cin * KH * KW: the GEMM inner dimension (one row of the weight matrix).
    public var patchSize: Int { inChannels * kernel.height * kernel.width }
    /// A 1x1 kernel with stride 1 and no padding: the input already is the im2col matrix.
    public var isPointwise: Bool {
        kernel == (1, 1) && stride == (1, 1) && padding == (0, 0)
    }

    /// Equal when every size, kernel, stride and padding agrees.
    public static func == (a: Conv2dGeometry, b: Conv2dGeometry) -> Bool {
        a.batch == b.batch && a.inChannels == b.inChannels && a.height == b.height && a.width == b.width
            && a.outChannels == b.outChannels && a.kernel == b.kernel && a.stride == b.stride
            && a.padding == b.padding
    }
}

extension Kernels {
    /// Convolution forward: `out = conv(input, weight) + bias`.
    ///
    /// input (B, Cin, H, W), weight (Cout, Cin, KH, KW), bias (Cout) or nil, out (B, Cout, OH, OW).
    /// Per image: im2col into (Cin*KH*KW, OH*OW) (parallel), then one `sgemm` (Cout, K) x (K, OH*OW).
    /// Pointwise convolutions use the input directly.
    public static func conv2dForward(out: UnsafeMutablePointer<Float>, input: UnsafePointer<Float>,
                                     weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                                     _ g: Conv2dGeometry) {
        let n = g.outHeight * g.outWidth, k = g.patchSize, cout = g.outChannels
        let inImage = g.inChannels * g.height * g.width, outImage = cout * n
        let col: UnsafeMutablePointer<Float>? = g.isPointwise ? nil : .allocate(capacity: k * n)
        defer { col?.deallocate() }
        for b in 0..<g.batch {
            let x = input + b * inImage, o = out + b * outImage
            var src = x
            if let col { im2col(x, into: col, g); src = UnsafePointer(col) }
            if let bias {
                for c in 0..<cout { (o + c * n).update(repeating: bias[c], count: n) }
            }
            Gemm.sgemm(m: cout, n: n, k: k, a: weight, b: src, beta: bias == nil ? 0 : 1, c: o)
        }
    }

    /// Convolution backward; accumulates (`+=`) into each gradient that is not nil.
    ///
    /// dOut (B, Cout, OH, OW), input (B, Cin, H, W), weight (Cout, Cin, KH, KW);
    /// dInput like input, dWeight like weight, dBias (Cout).
    /// Per image: dWeight += dOut_b (Cout, N) x col_b^T; dCol = weight^T x dOut_b, then col2im.
    public static func conv2dBackward(dInput: UnsafeMutablePointer<Float>?,
                                      dWeight: UnsafeMutablePointer<Float>?,
                                      dBias: UnsafeMutablePointer<Float>?,
                                      dOut: UnsafePointer<Float>, input: UnsafePointer<Float>,
                                      weight: UnsafePointer<Float>, _ g: Conv2dGeometry) {
        let n = g.outHeight * g.outWidth, k = g.patchSize, cout = g.outChannels
        let inImage = g.inChannels * g.height * g.width, outImage = cout * n
        if let dBias {
            let db = SendablePointer(dBias), dy = SendablePointer(dOut)
            parallelFor(cout, grain: Swift.max(1, 16_384 / Swift.max(1, n * g.batch))) { range in
                for c in range {
                    var s: Float = 0
                    for b in 0..<g.batch {
                        let row = dy.base + b * outImage + c * n
                        for p in 0..<n { s += row[p] }
                    }
                    db[c] += s
                }
            }
        }
        if dInput == nil && dWeight == nil { return }
        let pointwise = g.isPointwise
        let col: UnsafeMutablePointer<Float>? = pointwise || dWeight == nil ? nil : .allocate(capacity: k * n)
        let dCol: UnsafeMutablePointer<Float>? = pointwise || dInput == nil ? nil : .allocate(capacity: k * n)
        defer { col?.deallocate(); dCol?.deallocate() }
        for b in 0..<g.batch {
            let x = input + b * inImage, dy = dOut + b * outImage
            if let dWeight {
                var src = x
                if let col { im2col(x, into: col, g); src = UnsafePointer(col) }
                Gemm.sgemm(transposeB: true, m: cout, n: k, k: n, a: dy, b: src, beta: 1, c: dWeight)
            }
            if let dInput {
                let dx = dInput + b * inImage
                if let dCol {
                    Gemm.sgemm(transposeA: true, m: k, n: n, k: cout, a: weight, b: dy, beta: 0, c: dCol)
                    col2imAdd(UnsafePointer(dCol), into: dx, g)
                } else {
                    Gemm.sgemm(transposeA: true, m: k, n: n, k: cout, a: weight, b: dy, beta: 1, c: dx)
                }
            }
        }
    }

    /// The output columns `lo..<hi` whose input column `ow * SW - PW + kj` lies inside `0..<W`.
    @inline(__always)
    static func validColumns(_ kj: Int, _ g: Conv2dGeometry) -> (lo: Int, hi: Int) {
        let sw = g.stride.width, first = g.padding.width - kj, last = g.width - 1 + g.padding.width - kj
        let lo = first > 0 ? (first + sw - 1) / sw : 0
        let hi = last < 0 ? 0 : Swift.min(g.outWidth, last / sw + 1)
        return (Swift.min(lo, hi), hi)
    }

    /// One image (Cin, H, W) into columns (Cin*KH*KW, OH*OW); row `(c, ki, kj)` holds the input
    /// pixel under kernel tap (ki, kj) for every output position, zero where it falls in the padding.
    static func im2col(_ x: UnsafePointer<Float>, into col: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry) {
        let (kh, kw) = g.kernel, (sh, sw) = g.stride, (ph, pw) = g.padding
        let oh = g.outHeight, ow = g.outWidth, n = oh * ow, h = g.height, w = g.width
        let src = SendablePointer(x), dst = SendablePointer(col)
        parallelFor(g.patchSize, grain: Swift.max(1, 16_384 / Swift.max(1, n))) { rows in
            for r in rows {
                let c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw
                let (lo, hi) = validColumns(kj, g)
                let plane = src.base + c * h * w, out = dst.base + r * n
                for y in 0..<oh {
                    let row = out + y * ow, iy = y * sh - ph + ki
                    if iy < 0 || iy >= h { row.update(repeating: 0, count: ow); continue }
                    // line[j * sw] is the input under output column lo + j
                    let line = plane + iy * w + lo * sw - pw + kj, valid = row + lo
                    if lo > 0 { row.update(repeating: 0, count: lo) }
                    if sw == 1 {
                        valid.update(from: line, count: hi - lo)
                    } else {
                        for j in 0..<(hi - lo) { valid[j] = line[j * sw] }
                    }
                    if hi < ow { (row + hi).update(repeating: 0, count: ow - hi) }
                }
            }
        }
    }

    /// The adjoint of ``im2col(_:into:_:)``: adds columns (Cin*KH*KW, OH*OW) back into one image
    /// (Cin, H, W). Parallel over input channels, so concurrent writes never overlap.
    static func col2imAdd(_ col: UnsafePointer<Float>, into x: UnsafeMutablePointer<Float>, _ g: Conv2dGeometry) {
        let (kh, kw) = g.kernel, (sh, sw) = g.stride, (ph, pw) = g.padding
        let oh = g.outHeight, ow = g.outWidth, n = oh * ow, h = g.height, w = g.width
        let src = SendablePointer(col), dst = SendablePointer(x)
        parallelFor(g.inChannels, grain: Swift.max(1, 16_384 / Swift.max(1, n * kh * kw))) { channels in
            for c in channels {
                let plane = dst.base + c * h * w
                for ki in 0..<kh {
                    for kj in 0..<kw {
                        let (lo, hi) = validColumns(kj, g)
                        let rowBase = src.base + ((c * kh + ki) * kw + kj) * n
                        for y in 0..<oh {
                            let iy = y * sh - ph + ki
                            if iy < 0 || iy >= h { continue }
                            let row = rowBase + y * ow + lo, line = plane + iy * w + lo * sw - pw + kj
                            if sw == 1 {
                                for j in 0..<(hi - lo) { line[j] += row[j] }
                            } else {
                                for j in 0..<(hi - lo) { line[j * sw] += row[j] }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Tensor {
    /// 2-D convolution of an NCHW batch, as `torch.nn.functional.conv2d` (zero padding, no
    /// dilation, no groups).
    ///
    /// `self` (B, Cin, H, W), `weight` (Cout, Cin, KH, KW), `bias` (Cout) -> (B, Cout, OH, OW).
    /// ```swift
    /// let y = x.conv2d(weight: w, bias: b, stride: (2, 2), padding: (1, 1))
    /// ```
    public func conv2d(weight: Tensor, bias: Tensor?, stride: (Int, Int) = (1, 1),
                       padding: (Int, Int) = (0, 0)) -> Tensor {
        precondition(rank == 4 && weight.rank == 4 && shape.dims[1] == weight.shape.dims[1],
                     "conv2d: input \(shape) and weight \(weight.shape) need (B, Cin, H, W) and (Cout, Cin, KH, KW)")
        let (b, cin, h, w) = shape.dims4()
        let (cout, _, kh, kw) = weight.shape.dims4()
        if let bias {
            precondition(bias.shape == [cout], "conv2d: bias \(bias.shape) does not match weight \(weight.shape)")
        }
        let g = Conv2dGeometry(batch: b, inChannels: cin, height: h, width: w, outChannels: cout,
                               kernel: (kh, kw), stride: stride, padding: padding)
        var out = Tensor(uninitialized: [b, cout, g.outHeight, g.outWidth])
        let o = out.mutablePointer()
        withExtendedLifetime((storage, weight.storage, bias?.storage)) {
            Kernels.conv2dForward(out: o, input: storage.base, weight: weight.storage.base,
                                  bias: bias.map { UnsafePointer($0.storage.base) }, g)
        }
        return out
    }
}

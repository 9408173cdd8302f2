// One TF-Inception convolution unit (conv without bias -> BatchNorm eps 1e-3 -> ReLU) with the
// BatchNorm folded into the convolution, run on channel-major activations (C, B, H, W).
import Foundation
import Tensor

/// A convolution + BatchNorm + ReLU unit of the FID Inception-v3, folded at load time:
/// `w' = w * s`, `b' = beta - mean * s` with `s = gamma / sqrt(var + 1e-3)` (`gamma = 1`: the
/// TF-FID graph's BatchNorm has no scale).
///
/// Activations are channel-major, (C, B, H, W): a channel concat is then a contiguous write, and
/// one GEMM covers the whole batch (`(Cout, Cin*KH*KW) x (Cin*KH*KW, B*OH*OW)`).
struct FoldedConv: Sendable {
    /// The module name inside the network (`mixed_4.tower_1.conv_2`).
    let name: String
    /// Folded weights (Cout, Cin*KH*KW), row-major.
    let weight: Tensor
    /// Folded bias (Cout).
    let bias: Tensor
    /// Cin.
    let inChannels: Int
    /// Cout.
    let outChannels: Int
    /// (KH, KW).
    let kernel: (height: Int, width: Int)
    /// The stride (same on both axes in this network).
    let stride: Int
    /// (PH, PW), zeros on both sides.
    let padding: (height: Int, width: Int)

    /// BatchNorm epsilon of the TF-FID graph.
    static let batchNormEpsilon: Float = 1e-3

    /// Folds `weight` (Cout, Cin, KH, KW), `mean`, `variance`, `beta` and an optional `gamma`
    /// (all (Cout)) into one convolution with bias.
    init(name: String, weight: Tensor, mean: Tensor, variance: Tensor, beta: Tensor, gamma: Tensor?,
         stride: Int, padding: (Int, Int)) {
        precondition(weight.rank == 4, "FoldedConv \(name): weight \(weight.shape) must be (Cout, Cin, KH, KW)")
        let (cout, cin, kh, kw) = weight.shape.dims4()
        for (what, t) in [("mean", mean), ("var", variance), ("beta", beta)] + (gamma.map { [("gamma", $0)] } ?? []) {
            precondition(t.shape == [cout], "FoldedConv \(name): \(what) \(t.shape) does not match weight \(weight.shape)")
        }
        let k = cin * kh * kw
        var w = weight.reshaped([cout, k])
        var b = Tensor(uninitialized: [cout])
        let m = mean.scalars, v = variance.scalars, be = beta.scalars, g = gamma?.scalars
        w.withUnsafeMutableBufferPointer { wp in
            b.withUnsafeMutableBufferPointer { bp in
                for c in 0..<cout {
                    let s = (g?[c] ?? 1) / (v[c] + FoldedConv.batchNormEpsilon).squareRoot()
                    for i in 0..<k { wp[c * k + i] *= s }
                    bp[c] = be[c] - m[c] * s
                }
            }
        }
        self.name = name
        self.weight = w
        self.bias = b
        self.inChannels = cin
        self.outChannels = cout
        self.kernel = (kh, kw)
        self.stride = stride
        self.padding = (padding.0, padding.1)
    }

    /// (OH, OW) for an (H, W) input (floor, as PyTorch).
    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        ((height + 2 * padding.height - kernel.height) / stride + 1,
         (width + 2 * padding.width - kernel.width) / stride + 1)
    }

    /// True for a 1x1, stride-1, unpadded convolution: the input already is the GEMM operand.
    var isPointwise: Bool {
        kernel == (1, 1) && stride == 1 && padding == (0, 0)
    }

    /// The unit on a channel-major batch: `x` (Cin, B, H, W) -> (Cout, B, OH, OW).
    func callAsFunction(_ x: Tensor, workspace: ColumnWorkspace = ColumnWorkspace()) -> Tensor {
        let (c, b, h, w) = x.shape.dims4()
        precondition(c == inChannels, "FoldedConv \(name): input \(x.shape) needs \(inChannels) channels")
        let (oh, ow) = outputSize(height: h, width: w)
        var out = Tensor(uninitialized: [outChannels, b, oh, ow])
        let o = out.mutablePointer()
        withExtendedLifetime(x.storage) {
            forward(x.storage.base, batch: b, height: h, width: w, into: o, workspace: workspace)
        }
        return out
    }

    /// Columns budget for one im2col chunk (floats), to bound memory on the large early layers.
    static let columnBudget = 1 << 24

    /// The unit on raw buffers: `x` (Cin, B, H, W) -> `out` (Cout, B, OH, OW), contiguous.
    /// On the library's own kernels (AVX-512 or AVX2), one fp32 product whose im2col operand is
    /// packed straight from `x` (`Gemm.convolutionFullPrecision`). On a 2-core Xeon it measured
    /// 1.33x faster a batch than forming the matrix first on the AVX-512 kernel; on the AVX2 kernel
    /// 1.20x faster than forming it, and 1.09x faster than OpenBLAS's Haswell kernels on the formed
    /// matrix, which had been 9-15% ahead of the AVX2 kernel on a Zen 3 when both formed it (AVX2
    /// emulated on the Xeon; on a Zen 4 held to AVX2 the same way the two were level, 1.02x).
    /// On OpenBLAS, im2col over chunks of whole images + one GEMM per chunk. Every product is
    /// fp32 (`Gemm.sgemmFullPrecision` / `convolutionFullPrecision`, never the opt-in bf16
    /// kernel: FID features must not depend on the training precision). Then bias + ReLU: inside
    /// the convolution product (tile by tile), or as a pass over the output after the others.
    func forward(_ x: UnsafePointer<Float>, batch: Int, height: Int, width: Int,
                 into out: UnsafeMutablePointer<Float>, workspace: ColumnWorkspace) {
        let (oh, ow) = outputSize(height: height, width: width)
        precondition(oh > 0 && ow > 0, "FoldedConv \(name): input \(height)x\(width) is smaller than the kernel")
        let n = batch * oh * ow, k = inChannels * kernel.height * kernel.width
        let fused = withExtendedLifetime((weight.storage, bias.storage)) { () -> Bool in
            let wp = UnsafePointer(weight.storage.base)
            if isPointwise {
                Gemm.sgemmFullPrecision(m: outChannels, n: n, k: k, a: wp, b: x, c: out)
            } else if Gemm.hasConvolutionKernel {
                // The im2col matrix is packed straight from x, block by block, never formed; bias +
                // ReLU are applied to each tile as it is stored.
                let geometry = ConvolutionGeometry(channels: inChannels, batch: batch, height: height, width: width,
                                                   kernel: kernel, stride: stride, padding: padding)
                Gemm.convolutionFullPrecision(m: outChannels, weight: wp, input: x, geometry: geometry, into: out,
                                              biasReLU: bias.storage.base)
                return true
            } else {
                let perImage = k * oh * ow
                let chunk = Swift.max(1, Swift.min(batch, FoldedConv.columnBudget / Swift.max(perImage, 1)))
                let col = workspace.buffer(capacity: chunk * perImage)
                var b0 = 0
                while b0 < batch {
                    let nb = Swift.min(chunk, batch - b0)
                    im2col(x, batch: batch, height: height, width: width, images: b0..<(b0 + nb), into: col)
                    Gemm.sgemmFullPrecision(m: outChannels, n: nb * oh * ow, k: k, a: wp, b: col, c: out + b0 * oh * ow, ldc: n)
                    b0 += nb
                }
            }
            return false
        }
        if !fused {
            withExtendedLifetime(bias.storage) { Kernels.biasReLU(out, bias: bias.storage.base, rows: outChannels, columns: n) }
        }
    }

    /// Columns of `images` from channel-major `x` (Cin, B, H, W): row `(c, ki, kj)`, column
    /// `(image, oy, ox)`, zero where the tap falls in the padding. `col` is (Cin*KH*KW, nb*OH*OW).
    func im2col(_ x: UnsafePointer<Float>, batch: Int, height h: Int, width w: Int, images: Range<Int>,
                into col: UnsafeMutablePointer<Float>) {
        let (kh, kw) = kernel, s = stride, (ph, pw) = padding
        let (oh, ow) = outputSize(height: h, width: w)
        let nb = images.count, ohw = oh * ow, rows = inChannels * kh * kw, columns = nb * ohw
        let src = SendablePointer(x), dst = SendablePointer(col), b0 = images.lowerBound
        parallelFor(rows * nb, grain: Swift.max(1, 8_192 / Swift.max(ohw, 1))) { items in
            for item in items {
                let r = item / nb, j = item % nb
                let c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw
                let plane = src.base + (c * batch + b0 + j) * h * w
                let outImage = dst.base + r * columns + j * ohw
                // Output columns lo..<hi read inside the input: 0 <= ox * s - pw + kj < w.
                let lo = Swift.min(ow, Swift.max(0, (pw - kj + s - 1) / s))
                let hi = Swift.max(lo, Swift.min(ow, (w - 1 + pw - kj) >= 0 ? (w - 1 + pw - kj) / s + 1 : 0))
                for y in 0..<oh {
                    let row = outImage + y * ow, iy = y * s - ph + ki
                    if iy < 0 || iy >= h { row.update(repeating: 0, count: ow); continue }
                    if lo > 0 { row.update(repeating: 0, count: lo) }
                    let line = plane + iy * w - pw + kj
                    if s == 1 {
                        (row + lo).update(from: line + lo, count: hi - lo)
                    } else {
                        for ox in lo..<hi { row[ox] = line[ox * s] }
                    }
                    if hi < ow { (row + hi).update(repeating: 0, count: ow - hi) }
                }
            }
        }
    }
}

/// A reusable im2col buffer for one forward pass: a fresh 64 MB allocation per convolution
/// costs page faults on every call (glibc maps and unmaps blocks that large), measured at ~15% of
/// an Inception pass. Used from one thread at a time.
final class ColumnWorkspace {
    private var storage: UnsafeMutablePointer<Float>?
    private var capacity = 0

    /// At least `count` floats, valid until the next call or until the workspace is released.
    func buffer(capacity count: Int) -> UnsafeMutablePointer<Float> {
        if let storage, capacity >= count { return storage }
        storage?.deallocate()
        let fresh = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(count, 1))
        storage = fresh
        capacity = count
        return fresh
    }

    deinit { storage?.deallocate() }
}

// The operations and mixed blocks of the FID Inception-v3 on channel-major activations (C, B, H, W).
import Tensor

/// One step of a branch: a folded convolution unit or a 3x3-style pooling.
enum InceptionOp: Sendable {
    /// Conv + BatchNorm + ReLU.
    case conv(FoldedConv)
    /// Max pooling (padding counts as -inf).
    case maxPool(kernel: Int, stride: Int, padding: Int)
    /// Average pooling with `count_include_pad=False` (the divisor counts only input pixels),
    /// as the TF graph's pools inside the mixed blocks.
    case avgPool(kernel: Int, stride: Int, padding: Int)

    /// Output channels for `channels` input channels.
    func outChannels(_ channels: Int) -> Int {
        if case let .conv(c) = self { return c.outChannels }
        return channels
    }

    /// Output (OH, OW) for an (H, W) input.
    func outputSize(height: Int, width: Int) -> (height: Int, width: Int) {
        switch self {
        case let .conv(c): return c.outputSize(height: height, width: width)
        case let .maxPool(k, s, p), let .avgPool(k, s, p):
            return ((height + 2 * p - k) / s + 1, (width + 2 * p - k) / s + 1)
        }
    }

    /// Applies the step to `x` (C, B, H, W) and writes (C', B, OH, OW) contiguously at `out`.
    func forward(_ x: Tensor, into out: UnsafeMutablePointer<Float>, workspace: ColumnWorkspace) {
        let (c, b, h, w) = x.shape.dims4()
        withExtendedLifetime(x.storage) {
            let xp = UnsafePointer(x.storage.base)
            switch self {
            case let .conv(conv):
                precondition(c == conv.inChannels, "\(conv.name): input \(x.shape) needs \(conv.inChannels) channels")
                conv.forward(xp, batch: b, height: h, width: w, into: out, workspace: workspace)
            case let .maxPool(3, s, p) where p <= 1:
                Kernels.pool3x3(out: out, input: xp, planes: c * b, height: h, width: w, stride: s, padding: p, average: false)
            case let .avgPool(3, s, p) where p <= 1:
                Kernels.pool3x3(out: out, input: xp, planes: c * b, height: h, width: w, stride: s, padding: p, average: true)
            case let .maxPool(k, s, p):
                // (C, B) planes are independent, so the NCHW pooling kernels apply with C*B planes.
                let g = Pool2dGeometry(batch: c, channels: b, height: h, width: w,
                                       kernel: (k, k), stride: (s, s), padding: (p, p))
                let indices = UnsafeMutablePointer<Int32>.allocate(capacity: Swift.max(1, c * b * g.outHeight * g.outWidth))
                defer { indices.deallocate() }
                Kernels.maxPool2dForward(out: out, indices: indices, input: xp, g)
            case let .avgPool(k, s, p):
                let g = Pool2dGeometry(batch: c, channels: b, height: h, width: w,
                                       kernel: (k, k), stride: (s, s), padding: (p, p))
                Kernels.avgPool2dForward(out: out, input: xp, countIncludePad: false, g)
            }
        }
    }

    /// Applies the step to `x` (C, B, H, W) -> (C', B, OH, OW).
    func callAsFunction(_ x: Tensor, workspace: ColumnWorkspace = ColumnWorkspace()) -> Tensor {
        let (c, b, h, w) = x.shape.dims4()
        let (oh, ow) = outputSize(height: h, width: w)
        var out = Tensor(uninitialized: [outChannels(c), b, oh, ow])
        forward(x, into: out.mutablePointer(), workspace: workspace)
        return out
    }
}

/// A branch of a mixed block: `stem` applied in order, then each of `heads` on the stem's output
/// (the E blocks split a branch in two); without heads the stem's last step is the branch output.
struct InceptionBranch: Sendable {
    /// Steps applied in order.
    let stem: [InceptionOp]
    /// Parallel last steps on the stem's output (empty: none).
    let heads: [InceptionOp]

    /// A branch of steps applied in order.
    init(_ stem: [InceptionOp], heads: [InceptionOp] = []) {
        precondition(!stem.isEmpty, "InceptionBranch: empty stem")
        self.stem = stem
        self.heads = heads
    }

    /// The final steps whose outputs are concatenated, and the stem steps that precede them.
    var parts: (prefix: ArraySlice<InceptionOp>, finals: [InceptionOp]) {
        heads.isEmpty ? (stem.dropLast(), [stem[stem.count - 1]]) : (stem[...], heads)
    }
}

/// A mixed (inception) block: its branches run on the same input and are concatenated along channels.
struct InceptionBlock: Sendable {
    /// The module name (`mixed_9`).
    let name: String
    /// The branches in concatenation order.
    let branches: [InceptionBranch]

    /// `x` (C, B, H, W) -> (sum of branch channels, B, OH, OW).
    func callAsFunction(_ x: Tensor, workspace: ColumnWorkspace) -> Tensor {
        let (c, b, h, w) = x.shape.dims4()
        // Output size and channel count of every concatenated part.
        var parts: [(prefix: ArraySlice<InceptionOp>, finals: [InceptionOp])] = []
        var size: (height: Int, width: Int)?
        var total = 0
        for branch in branches {
            let p = branch.parts
            var ch = c, hw = (height: h, width: w)
            for op in p.prefix { ch = op.outChannels(ch); hw = op.outputSize(height: hw.height, width: hw.width) }
            for op in p.finals {
                let o = op.outputSize(height: hw.height, width: hw.width)
                if let s = size { precondition(s == o, "\(name): branch outputs of different sizes \(s) and \(o)") }
                size = o
                total += op.outChannels(ch)
            }
            parts.append(p)
        }
        guard let (oh, ow) = size else { preconditionFailure("\(name): no branches") }
        var out = Tensor(uninitialized: [total, b, oh, ow])
        let o = out.mutablePointer()
        var offset = 0
        for p in parts {
            var y = x
            for op in p.prefix { y = op(y, workspace: workspace) }
            for op in p.finals {
                op.forward(y, into: o + offset * b * oh * ow, workspace: workspace)
                offset += op.outChannels(y.shape.dims[0])
            }
        }
        return out
    }
}

import Tensor

/// Differentiable fused primitives. Each runs a forward kernel and, when a tape is given,
/// records a backward closure that accumulates into input and parameter gradients.
public enum Functional {
    /// `y = x W^T + b` over the last axis: x (..., IN), weight (OUT, IN) (or (OUT, ...) flattened to
    /// (OUT, IN), as a patch-embedding conv), bias (OUT) -> (..., OUT).
    public static func linear(_ x: Variable, weight: Parameter, bias: Parameter?, store: ParameterStore,
                              tape: Tape?) -> Variable {
        linear(concatenating: [x], weight: weight, bias: bias, store: store, tape: tape)
    }

    /// `y = concat(x_1, ..., x_n) W^T + b` without materialising the concatenation: each part
    /// (..., IN_i) multiplies its own column block of the weight (OUT, sum IN_i), and the backward
    /// pass routes each block's gradient to its part. U-ViT's skip connections use it with
    /// `[h, skip]`, which saves the (B, T, 2D) copy and keeps nothing extra alive for backward.
    public static func linear(concatenating parts: [Variable], weight: Parameter, bias: Parameter?,
                              store: ParameterStore, tape: Tape?) -> Variable {
        let outDim = weight.shape[0], inDim = weight.count / Swift.max(outDim, 1)
        precondition(!parts.isEmpty, "linear \(weight.name): no input")
        let widths = parts.map { $0.shape.dims.last ?? 1 }
        let lead = parts[0].shape.dims.dropLast()
        precondition(widths.reduce(0, +) == inDim && parts.allSatisfy { $0.shape.dims.dropLast() == lead },
                     "linear \(weight.name): inputs \(parts.map(\.shape)) do not concatenate to (..., \(inDim))")
        let rows = parts[0].value.count / Swift.max(widths[0], 1)
        var offsets = [0]
        for w in widths.dropLast() { offsets.append(offsets.last! + w) }
        var y = Tensor(uninitialized: Shape(Array(lead) + [outDim]))
        withExtendedLifetime(parts) {
            linearForward(parts.indices.map { (UnsafePointer(parts[$0].value.storage.base), widths[$0], offsets[$0]) }, rows: rows,
                          weight: weight, bias: bias, store: store, into: y.mutablePointer())
        }
        return Tape.record(y, inputs: parts, tracked: !store.isFrozen(weight), on: tape) { dy, tape in
            withExtendedLifetime(dy.storage) {
                let dyp = dy.storage.base
                biasBackward(dy: dyp, rows: rows, bias: bias, store: store)
                for (i, part) in parts.enumerated() {
                    withExtendedLifetime(part.value.storage) {
                        linearBackward(dy: dyp, input: part.value.storage.base, inputGradient: tape.gradientBuffer(for: part),
                                       rows: rows, width: widths[i], columnOffset: offsets[i],
                                       weight: weight, store: store)
                    }
                }
            }
        }
    }

    /// `y = LayerNorm(x) W^T + b` as one primitive that keeps only x and the row statistics for the
    /// backward pass: the normalised activations are recomputed there instead of being stored (in a
    /// transformer block this halves what the pre-norm branches keep alive).
    public static func layerNormLinear(_ x: Variable, normWeight: Parameter, normBias: Parameter, eps: Float = 1e-5,
                                       weight: Parameter, bias: Parameter?, store: ParameterStore,
                                       tape: Tape?) -> Variable {
        let c = normWeight.count, outDim = weight.shape[0]
        precondition(x.shape.dims.last == c && weight.count == outDim * c,
                     "layerNormLinear \(weight.name): input \(x.shape) does not end in \(c) or weight \(weight.shape) is not (OUT, \(c))")
        let rows = x.value.count / Swift.max(c, 1)
        let keep = tape != nil
        var mean = Tensor(uninitialized: [keep ? rows : 0]), rstd = Tensor(uninitialized: [keep ? rows : 0])
        func normalized(statistics: Bool) -> Tensor {
            var n = Tensor(uninitialized: x.shape)
            withExtendedLifetime(x.value.storage) {
                Kernels.layerNormForward(x: x.value.storage.base, weight: store.pointer(normWeight), bias: store.pointer(normBias),
                                         y: n.mutablePointer(), mean: statistics ? mean.mutablePointer() : nil,
                                         rstd: statistics ? rstd.mutablePointer() : nil, rows: rows, cols: c, eps: eps)
            }
            return n
        }
        var outDims = x.shape.dims
        outDims[outDims.count - 1] = outDim
        var y = Tensor(uninitialized: Shape(outDims))
        let n = normalized(statistics: keep)
        withExtendedLifetime(n.storage) {
            linearForward([(UnsafePointer(n.storage.base), c, 0)], rows: rows, weight: weight, bias: bias, store: store,
                          into: y.mutablePointer())
        }
        return Tape.record(y, inputs: [x], tracked: true, on: tape) { dy, tape in
            let n = normalized(statistics: false)            // bit-identical to the forward's
            var dn = Tensor(uninitialized: x.shape)               // assigned whole by the dx GEMM
            let dnp = dn.mutablePointer()
            withExtendedLifetime((dy.storage, n.storage, x.value.storage, mean.storage, rstd.storage)) {
                biasBackward(dy: dy.storage.base, rows: rows, bias: bias, store: store)
                linearBackward(dy: dy.storage.base, input: n.storage.base, inputGradient: (dnp, false), rows: rows, width: c,
                               columnOffset: 0, weight: weight, store: store)
                Kernels.layerNormBackward(dy: dnp, x: x.value.storage.base, weight: store.pointer(normWeight),
                                          mean: mean.storage.base, rstd: rstd.storage.base,
                                          dx: tape.gradientPointer(for: x), dweight: store.trainableGradient(normWeight),
                                          dbias: store.trainableGradient(normBias), rows: rows, cols: c)
            }
        }
    }

    /// `y = b + sum_i x_i W[:, off_i..<off_i+width_i]^T` into y (rows, OUT): one GEMM per input
    /// block, the first writing y with the bias (when present) added as it stores, the others
    /// accumulating into it.
    static func linearForward(_ blocks: [(input: UnsafePointer<Float>, width: Int, columnOffset: Int)], rows: Int,
                              weight: Parameter, bias: Parameter?, store: ParameterStore,
                              into y: UnsafeMutablePointer<Float>) {
        let outDim = weight.shape[0], inDim = weight.count / Swift.max(outDim, 1)
        for (i, block) in blocks.enumerated() {
            let biasRow = i == 0 ? bias.map { UnsafePointer(store.pointer($0)) } : nil
            if let packed = store.packedLinearWeight(weight, columnOffset: block.columnOffset, width: block.width, rows: rows) {
                Gemm.sgemm(m: rows, a: block.input, packedB: packed, beta: i == 0 ? 0 : 1, c: y, bias: biasRow)
                continue
            }
            Gemm.sgemm(transposeB: true, m: rows, n: outDim, k: block.width, a: block.input,
                       b: store.pointer(weight) + block.columnOffset, ldb: inDim,
                       beta: i == 0 ? 0 : 1, c: y, bias: biasRow)
        }
    }

    /// `db += sum over rows of dy` for a linear layer's (non-frozen) bias.
    static func biasBackward(dy: UnsafePointer<Float>, rows: Int, bias: Parameter?, store: ParameterStore) {
        guard let bias, let db = store.trainableGradient(bias) else { return }
        Kernels.accumulateColumnSums(dy, rows: rows, cols: bias.count, into: db)
    }

    /// The weight and input gradients of one input block of a linear layer:
    /// `dW[:, off..<off+width] += dy^T x` and `dx += dy W[:, off..<off+width]`. A gradient that
    /// holds nothing yet is assigned instead (GEMM beta 0: no zero fill, no read of it): `dx` when
    /// `inputGradient.accumulate` is false, `dW` when the block is the whole weight and
    /// ``ParameterStore/gradientForOverwrite(_:)`` says it was cleared.
    static func linearBackward(dy: UnsafePointer<Float>, input: UnsafePointer<Float>,
                               inputGradient: (pointer: UnsafeMutablePointer<Float>, accumulate: Bool)?,
                               rows: Int, width: Int, columnOffset: Int, weight: Parameter, store: ParameterStore) {
        let outDim = weight.shape[0], inDim = weight.count / Swift.max(outDim, 1)
        let dw = width == inDim ? store.gradientForOverwrite(weight) : store.trainableGradient(weight).map { ($0, true) }
        if let dw {
            Gemm.sgemm(transposeA: true, m: outDim, n: width, k: rows, a: dy, b: input,
                       beta: dw.accumulate ? 1 : 0, c: dw.pointer + columnOffset, ldc: inDim)
        }
        if let inputGradient {
            Gemm.sgemm(m: rows, n: width, k: outDim, a: dy, b: store.pointer(weight) + columnOffset, ldb: inDim,
                       beta: inputGradient.accumulate ? 1 : 0, c: inputGradient.pointer)
        }
    }

    /// Adds BEiT-style biases to a packed projection (..., 3D): `q` (D) to the first third, `v` (D)
    /// to the last third, nothing to the keys.
    public static func addQueryValueBias(_ x: Variable, q: Parameter, v: Parameter, store: ParameterStore,
                                         tape: Tape?) -> Variable {
        let d = q.count
        precondition(x.shape.dims.last == 3 * d && v.count == d, "addQueryValueBias: \(x.shape) is not (..., 3 x \(d))")
        let rows = x.value.count / (3 * d)
        var y = x.value
        let yp = y.mutablePointer()
        Kernels.addToRows(store.pointer(q), yp, rows: rows, cols: d, ld: 3 * d)
        Kernels.addToRows(store.pointer(v), yp + 2 * d, rows: rows, cols: d, ld: 3 * d)
        return Tape.record(y, inputs: [x], tracked: true, on: tape) { dy, tape in
            withExtendedLifetime(dy.storage) {
                let g = dy.storage.base
                if let gq = store.trainableGradient(q) { Kernels.accumulateColumnSums(g, rows: rows, cols: d, ld: 3 * d, into: gq) }
                if let gv = store.trainableGradient(v) {
                    Kernels.accumulateColumnSums(g + 2 * d, rows: rows, cols: d, ld: 3 * d, into: gv)
                }
            }
            tape.accumulate(dy, into: x)
        }
    }

    /// LayerNorm over the last axis with affine parameters (C).
    public static func layerNorm(_ x: Variable, weight: Parameter, bias: Parameter, eps: Float = 1e-5,
                                 store: ParameterStore, tape: Tape?) -> Variable {
        let c = weight.count
        precondition(x.shape.dims.last == c, "layerNorm \(weight.name): input \(x.shape) does not end in \(c)")
        let rows = x.value.count / c
        var y = Tensor(uninitialized: x.shape)
        let keep = tape != nil
        var mean = Tensor(uninitialized: [keep ? rows : 0]), rstd = Tensor(uninitialized: [keep ? rows : 0])
        withExtendedLifetime(x.value.storage) {
            Kernels.layerNormForward(x: x.value.storage.base, weight: store.pointer(weight), bias: store.pointer(bias),
                                     y: y.mutablePointer(), mean: keep ? mean.mutablePointer() : nil,
                                     rstd: keep ? rstd.mutablePointer() : nil, rows: rows, cols: c, eps: eps)
        }
        return Tape.record(y, inputs: [x], tracked: true, on: tape) { dy, tape in
            withExtendedLifetime((dy.storage, x.value.storage, mean.storage, rstd.storage)) {
                Kernels.layerNormBackward(dy: dy.storage.base, x: x.value.storage.base, weight: store.pointer(weight),
                                          mean: mean.storage.base, rstd: rstd.storage.base,
                                          dx: tape.gradientPointer(for: x), dweight: store.trainableGradient(weight),
                                          dbias: store.trainableGradient(bias), rows: rows, cols: c)
            }
        }
    }

    /// Exact (erf) GELU.
    ///
    /// Without a tape (inference), an input whose value nothing else holds (a layer's fresh output,
    /// passed straight in) is overwritten in place instead of allocating the output.
    public static func gelu(_ x: consuming Variable, tape: Tape?) -> Variable {
        guard let tape else {
            var value = takeValue(x)
            if value.isUniquelyReferenced {
                value.geluInPlace()
                return Variable(value)
            }
            return Variable(value.gelu())
        }
        return recordedGELU(x, tape: tape)
    }

    private static func recordedGELU(_ x: Variable, tape: Tape) -> Variable {
        let y = x.value.gelu()
        return Tape.record(y, inputs: [x], on: tape) { dy, tape in
            guard let dx = tape.gradientBuffer(for: x) else { return }
            withExtendedLifetime((dy.storage, x.value.storage)) {
                Kernels.geluBackward(dy: dy.storage.base, x: x.value.storage.base, dx: dx.pointer, count: dy.count,
                                     accumulate: dx.accumulate)
            }
        }
    }

    /// A variable's value, the variable given up: a value nothing else held stays uniquely
    /// referenced.
    private static func takeValue(_ v: consuming Variable) -> Tensor { v.value }

    /// Elementwise `a + b` of equal shapes (residual connections).
    ///
    /// Without a tape (inference), the sum goes in place into an input whose value nothing else
    /// holds (`b` first: a residual branch's fresh output), instead of a new tensor; the values
    /// are the same.
    public static func add(_ a: consuming Variable, _ b: consuming Variable, tape: Tape?) -> Variable {
        precondition(a.shape == b.shape, "add: \(a.shape) vs \(b.shape)")
        guard let tape else {
            var av = takeValue(a), bv = takeValue(b)
            if bv.isUniquelyReferenced {
                bv.addInPlace(av)   // b + a: the same sums as a + b
                return Variable(bv)
            }
            if av.isUniquelyReferenced {
                av.addInPlace(bv)
                return Variable(av)
            }
            return Variable(av + bv)
        }
        return recordedAdd(a, b, tape: tape)
    }

    private static func recordedAdd(_ a: Variable, _ b: Variable, tape: Tape) -> Variable {
        Tape.record(a.value + b.value, inputs: [a, b], on: tape) { dy, tape in
            tape.accumulate(dy, into: a)
            tape.accumulate(dy, into: b)
        }
    }

    /// Concatenation along the last axis: (..., CA) and (..., CB) -> (..., CA + CB).
    public static func concatLastAxis(_ a: Variable, _ b: Variable, tape: Tape?) -> Variable {
        let ca = a.shape.dims.last ?? 1, cb = b.shape.dims.last ?? 1
        let y = Tensor.concat([a.value, b.value], axis: -1)
        return Tape.record(y, inputs: [a, b], on: tape) { dy, tape in
            let parts = dy.split(sizes: [ca, cb], axis: -1)
            tape.accumulate(parts[0], into: a)
            tape.accumulate(parts[1], into: b)
        }
    }

    /// Multi-head self-attention core on a packed projection: qkv (B, T, 3 * NH * HS) laid out
    /// as (B, T, 3, NH, HS) -> (B, T, NH * HS), `softmax(Q K^T / sqrt(HS)) V` per head.
    public static func attention(_ qkv: Variable, heads: Int, tape: Tape?) -> Variable {
        let (b, t, d3) = qkv.shape.dims3()
        precondition(d3 % (3 * heads) == 0, "attention: qkv width \(d3) is not 3 x heads (\(heads)) x head size")
        let hs = d3 / (3 * heads)
        let s = AttentionShape(batch: b, heads: heads, tokens: t, headSize: hs)
        var y = Tensor(uninitialized: [b, t, heads * hs])
        let keep = tape != nil
        var lse = Tensor(uninitialized: [keep ? b * heads * t : 0])
        let scratch = TensorStorage(uninitializedCount: s.scratchCount)
        let base = qkv.value.storage.base
        withExtendedLifetime((qkv.value.storage, scratch)) {
            Kernels.attentionForward(q: .packedQKV(base, part: 0, heads: heads, tokens: t, headSize: hs),
                                     k: .packedQKV(base, part: 1, heads: heads, tokens: t, headSize: hs),
                                     v: .packedQKV(base, part: 2, heads: heads, tokens: t, headSize: hs),
                                     out: .tokenMajor(y.mutablePointer(), heads: heads, tokens: t, headSize: hs),
                                     lse: keep ? lse.mutablePointer() : nil, shape: s, scratch: scratch.mutableBase)
        }
        let output = y
        return Tape.record(y, inputs: [qkv], on: tape) { dy, tape in
            guard let (dqkv, accumulate) = tape.gradientBuffer(for: qkv) else { return }
            let scratch = TensorStorage(uninitializedCount: s.scratchCount)
            withExtendedLifetime((dy.storage, qkv.value.storage, lse.storage, output.storage, scratch)) {
                let base = qkv.value.storage.base
                func packed(_ p: UnsafeMutablePointer<Float>, _ part: Int) -> AttentionOperand {
                    .packedQKV(p, part: part, heads: heads, tokens: t, headSize: hs)
                }
                func packed(_ p: UnsafePointer<Float>, _ part: Int) -> AttentionOperand {
                    .packedQKV(p, part: part, heads: heads, tokens: t, headSize: hs)
                }
                Kernels.attentionBackward(dout: .tokenMajor(dy.storage.base, heads: heads, tokens: t, headSize: hs),
                                          out: .tokenMajor(output.storage.base, heads: heads, tokens: t, headSize: hs),
                                          q: packed(base, 0), k: packed(base, 1), v: packed(base, 2),
                                          lse: lse.storage.base, dq: packed(dqkv, 0), dk: packed(dqkv, 1),
                                          dv: packed(dqkv, 2), shape: s, scratch: scratch.mutableBase,
                                          accumulate: accumulate)
            }
        }
    }

    /// Builds the token sequence of a ViT with a prepended conditioning token and learned positions:
    /// `out[b, 0] = first[b] + pos[0]`, `out[b, 1 + i] = tokens[b, i] + pos[1 + positions[b][i]]`.
    /// tokens (B, NV, D) are the embedded (visible) patches, first (B, D) a constant (the time
    /// token), pos (1, 1 + N, D); `positions` (B lists of NV patch indices) is nil when all N
    /// patches are present in order. Result (B, 1 + NV, D).
    public static func prependTokenAndAddPositions(_ tokens: Variable, first: Tensor, position: Parameter,
                                                   positions: [[Int]]?, store: ParameterStore, tape: Tape?) -> Variable {
        let (b, nv, d) = tokens.shape.dims3()
        precondition(first.shape == [b, d], "prependToken: first token \(first.shape), expected (\(b), \(d))")
        let (_, np1, pd) = position.shape.dims3()
        precondition(pd == d, "prependToken: position embedding \(position.shape) width differs from tokens \(tokens.shape)")
        if let positions {
            precondition(positions.count == b && positions.allSatisfy { $0.count == nv },
                         "prependToken: need \(b) position lists of \(nv) indices")
        } else {
            precondition(nv == np1 - 1, "prependToken: \(nv) tokens but position embedding has \(np1 - 1) patches")
        }
        var y = Tensor(uninitialized: [b, 1 + nv, d])
        withExtendedLifetime((tokens.value.storage, first.storage)) {
            Kernels.prependTokenAddPositions(tokens: tokens.value.storage.base, first: first.storage.base,
                                             position: store.pointer(position), out: y.mutablePointer(),
                                             batch: b, visible: nv, dimensions: d, indices: positions)
        }
        return Tape.record(y, inputs: [tokens], tracked: true, on: tape) { dy, tape in
            withExtendedLifetime(dy.storage) {
                Kernels.prependTokenAddPositionsBackward(dOut: dy.storage.base, dPosition: store.trainableGradient(position),
                                                         dTokens: tape.gradientPointer(for: tokens),
                                                         batch: b, visible: nv, dimensions: d, indices: positions)
            }
        }
    }

    /// Drops the first `count` tokens: (B, T, D) -> (B, T - count, D).
    public static func dropLeadingTokens(_ x: Variable, count n: Int = 1, tape: Tape?) -> Variable {
        let t = x.shape[1]
        let y = x.value.sliced(axis: 1, n..<t)
        return Tape.record(y, inputs: [x], on: tape) { dy, tape in
            guard let dx = tape.gradientPointer(for: x) else { return }
            let (b, _, d) = x.shape.dims3()
            withExtendedLifetime(dy.storage) {
                Kernels.accumulateBlocks(dy.storage.base, stride: (t - n) * d, into: dx + n * d, stride: t * d,
                                         blocks: b, length: (t - n) * d)
            }
        }
    }

    /// Mean squared error `mean((prediction - target)^2)` as a scalar (shape []).
    public static func mseLoss(_ prediction: Variable, target: Tensor, tape: Tape?) -> Variable {
        precondition(prediction.shape == target.shape, "mseLoss: prediction \(prediction.shape) vs target \(target.shape)")
        let diff = prediction.value - target
        let n = Double(diff.count)
        let loss = diff.withUnsafeBufferPointer { b in b.reduce(0.0) { $0 + Double($1) * Double($1) } } / n
        return Tape.record(Tensor(scalar: Float(loss)), inputs: [prediction], on: tape) { dy, tape in
            tape.accumulate(diff * (2 * dy.item / Float(n)), into: prediction)
        }
    }

    /// Mean absolute error over all elements (PyTorch `F.l1_loss`, mean reduction); the gradient is
    /// sign(prediction - target) / n, 0 where they are equal. prediction, target: same shape.
    public static func l1Loss(_ prediction: Variable, target: Tensor, tape: Tape?) -> Variable {
        precondition(prediction.shape == target.shape, "l1Loss: prediction \(prediction.shape) vs target \(target.shape)")
        let diff = prediction.value - target
        let n = Double(diff.count)
        let loss = diff.withUnsafeBufferPointer { b in b.reduce(0.0) { $0 + Double(Swift.abs($1)) } } / n
        return Tape.record(Tensor(scalar: Float(loss)), inputs: [prediction], on: tape) { dy, tape in
            let g = dy.item / Float(n)
            tape.accumulate(diff.sign() * g, into: prediction)
        }
    }

    /// The regression loss `kind` (mean reduction) of `prediction` against `target`.
    public static func regressionLoss(_ kind: RegressionLoss, _ prediction: Variable, target: Tensor, tape: Tape?) -> Variable {
        switch kind {
        case .l2: mseLoss(prediction, target: target, tape: tape)
        case .l1: l1Loss(prediction, target: target, tape: tape)
        }
    }
}

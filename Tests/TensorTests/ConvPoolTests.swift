import Tensor
import Testing

// Oracles for conv2d and pooling: fast kernel vs naive twin on ragged shapes, backward vs central
// finite differences, and a few hand-computed values.

/// Largest |a - b| relative to max(1, largest |b|).
private func convRelativeError(_ a: Tensor, _ b: Tensor) -> Float {
    a.maxAbsDifference(b) / Swift.max(1, b.maxAbs())
}

private func conv(_ b: Int, _ cin: Int, _ h: Int, _ w: Int, _ cout: Int, kernel: (Int, Int),
                  stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)) -> Conv2dGeometry {
    Conv2dGeometry(batch: b, inChannels: cin, height: h, width: w, outChannels: cout,
                   kernel: kernel, stride: stride, padding: padding)
}

/// Ragged hand-picked cases plus seeded random ones.
private let convCases: [Conv2dGeometry] = {
    var cases = [
        conv(2, 3, 9, 7, 5, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
        conv(1, 4, 8, 11, 17, kernel: (1, 7), padding: (0, 3)),       // Inception-v3 1x7
        conv(1, 4, 11, 8, 17, kernel: (7, 1), padding: (3, 0)),       // and 7x1
        conv(3, 5, 6, 5, 7, kernel: (1, 1)),                          // pointwise: no im2col
        conv(2, 3, 7, 7, 6, kernel: (1, 1), stride: (2, 2)),          // 1x1 with stride: im2col
        conv(1, 2, 5, 6, 3, kernel: (5, 3), stride: (1, 2), padding: (2, 1)),
        conv(1, 3, 4, 4, 2, kernel: (3, 3), stride: (3, 3), padding: (1, 1)),
        conv(2, 3, 1, 1, 4, kernel: (3, 3), padding: (1, 1)),         // 1x1 image, mostly padding
        conv(1, 3, 3, 2, 33, kernel: (3, 3), padding: (1, 2)),        // padding wider than the image
        conv(2, 2, 13, 10, 3, kernel: (3, 3), stride: (2, 2)),        // Inception stem style, no pad
        conv(1, 16, 24, 23, 8, kernel: (3, 3), padding: (1, 1)),      // big enough for parallel im2col/col2im
    ]
    var rng = RandomGenerator(seed: 42)
    for _ in 0..<4 {
        let kh = 1 + rng.nextInt(below: 5), kw = 1 + rng.nextInt(below: 5)
        let ph = rng.nextInt(below: kh / 2 + 1), pw = rng.nextInt(below: kw / 2 + 1)
        cases.append(conv(1 + rng.nextInt(below: 3), 1 + rng.nextInt(below: 6),
                          kh + rng.nextInt(below: 9), kw + rng.nextInt(below: 9), 1 + rng.nextInt(below: 20),
                          kernel: (kh, kw), stride: (1 + rng.nextInt(below: 3), 1 + rng.nextInt(below: 3)),
                          padding: (ph, pw)))
    }
    return cases
}()

/// Random input, weight and bias for a convolution, and the two implementations over them.
private struct ConvProblem {
    let g: Conv2dGeometry
    var x, w, b: Tensor
    var outShape: Shape { [g.batch, g.outChannels, g.outHeight, g.outWidth] }

    init(_ g: Conv2dGeometry, seed: UInt64) {
        var rng = RandomGenerator(seed: seed)
        self.g = g
        x = .randomNormal([g.batch, g.inChannels, g.height, g.width], using: &rng)
        w = .randomNormal([g.outChannels, g.inChannels, g.kernel.height, g.kernel.width], std: 0.5, using: &rng)
        b = .randomNormal([g.outChannels], using: &rng)
    }

    func forward(naive: Bool, bias: Bool = true) -> Tensor {
        var out = Tensor(repeating: .nan, shape: outShape)
        let o = out.mutablePointer()
        withExtendedLifetime((x, w, b)) {
            let bp = bias ? UnsafePointer(b.storage.base) : nil
            if naive { Naive.conv2dForward(out: o, input: x.storage.base, weight: w.storage.base, bias: bp, g) }
            else { Kernels.conv2dForward(out: o, input: x.storage.base, weight: w.storage.base, bias: bp, g) }
        }
        return out
    }

    /// Backward accumulating onto `initial` gradients (dx, dw, db); nil entries are not requested.
    func backward(naive: Bool, dOut: Tensor, initial: (Tensor?, Tensor?, Tensor?)) -> (Tensor?, Tensor?, Tensor?) {
        var (dx, dw, db) = initial
        let px = dx?.mutablePointer(), pw = dw?.mutablePointer(), pb = db?.mutablePointer()
        withExtendedLifetime((x, w, dOut, dx, dw, db)) {
            if naive {
                Naive.conv2dBackward(dInput: px, dWeight: pw, dBias: pb, dOut: dOut.storage.base,
                                     input: x.storage.base, weight: w.storage.base, g)
            } else {
                Kernels.conv2dBackward(dInput: px, dWeight: pw, dBias: pb, dOut: dOut.storage.base,
                                       input: x.storage.base, weight: w.storage.base, g)
            }
        }
        return (dx, dw, db)
    }
}

/// `sum(out * r)` accumulated in Double.


@Suite("conv2d")
struct Conv2dTests {
    @Test("fast forward matches the 7-loop twin", arguments: convCases)
    func forwardMatchesNaive(_ g: Conv2dGeometry) {
        let p = ConvProblem(g, seed: 1)
        #expect(convRelativeError(p.forward(naive: false), p.forward(naive: true)) < 1e-5)
        #expect(convRelativeError(p.forward(naive: false, bias: false), p.forward(naive: true, bias: false)) < 1e-5)
    }

    @Test("fast backward matches the twin and accumulates", arguments: convCases)
    func backwardMatchesNaive(_ g: Conv2dGeometry) {
        let p = ConvProblem(g, seed: 2)
        var rng = RandomGenerator(seed: 3)
        let dOut = Tensor.randomNormal(p.outShape, using: &rng)
        let start = (Tensor.randomNormal(p.x.shape, using: &rng), Tensor.randomNormal(p.w.shape, using: &rng),
                     Tensor.randomNormal(p.b.shape, using: &rng))
        let fast = p.backward(naive: false, dOut: dOut, initial: (start.0, start.1, start.2))
        let slow = p.backward(naive: true, dOut: dOut, initial: (start.0, start.1, start.2))
        for (f, s) in [(fast.0, slow.0), (fast.1, slow.1), (fast.2, slow.2)] {
            if let f, let s { #expect(convRelativeError(f, s) < 1e-5) } else { Issue.record("missing gradient") }
        }
        // Only some gradients requested: the others stay untouched and the rest still agree.
        let onlyInput = p.backward(naive: false, dOut: dOut, initial: (start.0, nil, nil))
        let onlyWeight = p.backward(naive: false, dOut: dOut, initial: (nil, start.1, nil))
        if let a = onlyInput.0, let b = slow.0 { #expect(convRelativeError(a, b) < 1e-5) }
        if let a = onlyWeight.1, let b = slow.1 { #expect(convRelativeError(a, b) < 1e-5) }
    }

    @Test("backward matches central differences", arguments: [
        conv(2, 2, 5, 4, 3, kernel: (3, 3), stride: (2, 1), padding: (1, 1)),
        conv(1, 2, 4, 5, 3, kernel: (1, 3), padding: (0, 1)),
        conv(1, 3, 3, 3, 2, kernel: (1, 1)),
    ])
    func backwardMatchesFiniteDifferences(_ g: Conv2dGeometry) {
        let p = ConvProblem(g, seed: 4)
        var rng = RandomGenerator(seed: 5)
        let r = Tensor.randomNormal(p.outShape, using: &rng)     // loss = sum(out * r), so dOut = r
        let (dx, dw, db) = p.backward(naive: false, dOut: r,
                                      initial: (.zeros(p.x.shape), .zeros(p.w.shape), .zeros(p.b.shape)))
        let nx = numericGradient(p.x) { t in var q = p; q.x = t; return weightedSum(q.forward(naive: false), r) }
        let nw = numericGradient(p.w) { t in var q = p; q.w = t; return weightedSum(q.forward(naive: false), r) }
        let nb = numericGradient(p.b) { t in var q = p; q.b = t; return weightedSum(q.forward(naive: false), r) }
        for (analytic, numeric) in [(dx, nx), (dw, nw), (db, nb)] {
            guard let analytic else { Issue.record("missing gradient"); continue }
            #expect(convRelativeError(analytic, numeric) < 2e-3)
            #expect(numeric.maxAbs() > 0.1)
        }
    }

    @Test("Tensor.conv2d on hand-computed values")
    func handComputed() {
        // x = 0...8 as (1, 1, 3, 3); a 2x2 kernel of ones sums each 2x2 window, plus bias 0.5.
        let x = Tensor.arange(0, 9).reshaped([1, 1, 3, 3])
        let y = x.conv2d(weight: .ones([1, 1, 2, 2]), bias: Tensor([0.5]))
        #expect(y.shape == [1, 1, 2, 2])
        #expect(y.scalars == [8.5, 12.5, 20.5, 24.5])
        // Padding 1, stride 2 with a 3x3 kernel of ones: corner windows see 4 pixels, centre 9.
        let z = x.conv2d(weight: .ones([1, 1, 3, 3]), bias: nil, stride: (2, 2), padding: (1, 1))
        #expect(z.scalars == [8, 12, 20, 24])       // 0+1+3+4, 1+2+4+5, 3+4+6+7, 4+5+7+8
        // Two output channels over two input channels with a 1x3 kernel and padding (0, 1).
        let x2 = Tensor([1, 2, 3, 10, 20, 30], shape: [1, 2, 1, 3])
        let w2 = Tensor([0, 1, 0, 0, 0, 0,      // out 0: input channel 0 as is
                         1, 0, -1, 0, 2, 0],    // out 1: x0[i-1] - x0[i+1] + 2 x1[i]
                        shape: [2, 2, 1, 3])
        let expected: [Float] = [1, 2, 3, 18, 38, 62]    // 20 - 2, 40 + 1 - 3, 60 + 2
        #expect(x2.conv2d(weight: w2, bias: nil, padding: (0, 1)).scalars == expected)
    }

    @Test("pointwise conv2d equals a matmul over channels")
    func pointwiseIsMatmul() {
        var rng = RandomGenerator(seed: 6)
        let x = Tensor.randomNormal([2, 5, 3, 4], using: &rng)
        let w = Tensor.randomNormal([7, 5, 1, 1], using: &rng)
        let y = x.conv2d(weight: w, bias: nil)
        // (Cout, Cin) x (Cin, H*W) per image
        for b in 0..<2 {
            let xb = x.sliced(axis: 0, b..<(b + 1)).reshaped([5, 12])
            let expected = w.reshaped([7, 5]).matmul(xb)
            #expect(convRelativeError(y.sliced(axis: 0, b..<(b + 1)).reshaped([7, 12]), expected) < 1e-6)
        }
    }
}

// MARK: - Pooling

private func pool(_ b: Int, _ c: Int, _ h: Int, _ w: Int, kernel: (Int, Int), stride: (Int, Int),
                  padding: (Int, Int) = (0, 0)) -> Pool2dGeometry {
    Pool2dGeometry(batch: b, channels: c, height: h, width: w, kernel: kernel, stride: stride, padding: padding)
}

private let poolCases: [Pool2dGeometry] = [
    pool(2, 3, 9, 7, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
    pool(1, 2, 8, 8, kernel: (2, 2), stride: (2, 2)),
    pool(2, 5, 17, 17, kernel: (3, 3), stride: (2, 2)),                  // Inception-v3 stem
    pool(1, 3, 8, 8, kernel: (3, 3), stride: (1, 1), padding: (1, 1)),   // Inception avg branch
    pool(1, 2, 7, 10, kernel: (1, 3), stride: (1, 2), padding: (0, 1)),
    pool(3, 1, 5, 4, kernel: (4, 2), stride: (3, 1), padding: (2, 1)),
    pool(1, 1, 1, 1, kernel: (1, 1), stride: (1, 1)),
    pool(1, 2, 2, 3, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),   // windows mostly padding
    pool(2, 32, 24, 23, kernel: (3, 3), stride: (2, 2), padding: (1, 1)), // several parallel chunks
]

/// Input with distinct values at least 0.05 apart (no ties, so max pooling is differentiable
/// and finite differences with step 1e-2 stay inside one linear piece).
private func distinctInput(_ g: Pool2dGeometry, seed: UInt64) -> Tensor {
    let n = g.planes * g.height * g.width
    var rng = RandomGenerator(seed: seed)
    var values = (0..<n).map { Float($0) * 0.05 - Float(n) * 0.025 }
    for i in stride(from: n - 1, to: 0, by: -1) { values.swapAt(i, rng.nextInt(below: i + 1)) }
    return Tensor(values, shape: [g.batch, g.channels, g.height, g.width])
}

/// Which pooling a test runs.
private enum PoolKind: CaseIterable { case max, avgIncludePad, avgExcludePad }

private func poolForward(_ kind: PoolKind, naive: Bool, _ x: Tensor, _ g: Pool2dGeometry) -> (Tensor, [Int32]) {
    var out = Tensor(repeating: .nan, shape: [g.batch, g.channels, g.outHeight, g.outWidth])
    var idx = [Int32](repeating: -7, count: out.count)
    let o = out.mutablePointer()
    idx.withUnsafeMutableBufferPointer { ip in
        withExtendedLifetime(x) {
            guard let ib = ip.baseAddress else { return }
            switch (kind, naive) {
            case (.max, false): Kernels.maxPool2dForward(out: o, indices: ib, input: x.storage.base, g)
            case (.max, true): Naive.maxPool2dForward(out: o, indices: ib, input: x.storage.base, g)
            case (_, false): Kernels.avgPool2dForward(out: o, input: x.storage.base, countIncludePad: kind == .avgIncludePad, g)
            case (_, true): Naive.avgPool2dForward(out: o, input: x.storage.base, countIncludePad: kind == .avgIncludePad, g)
            }
        }
    }
    return (out, idx)
}

private func poolBackward(_ kind: PoolKind, naive: Bool, dOut: Tensor, indices: [Int32], initial: Tensor,
                          _ g: Pool2dGeometry) -> Tensor {
    var dx = initial
    let p = dx.mutablePointer()
    indices.withUnsafeBufferPointer { ip in
        withExtendedLifetime(dOut) {
            guard let ib = ip.baseAddress else { return }
            let include = kind == .avgIncludePad
            switch (kind, naive) {
            case (.max, false): Kernels.maxPool2dBackward(dInput: p, dOut: dOut.storage.base, indices: ib, g)
            case (.max, true): Naive.maxPool2dBackward(dInput: p, dOut: dOut.storage.base, indices: ib, g)
            case (_, false): Kernels.avgPool2dBackward(dInput: p, dOut: dOut.storage.base, countIncludePad: include, g)
            case (_, true): Naive.avgPool2dBackward(dInput: p, dOut: dOut.storage.base, countIncludePad: include, g)
            }
        }
    }
    return dx
}

@Suite("pooling")
struct PoolingTests {
    @Test("fast pooling matches the direct twin, forward and accumulating backward", arguments: poolCases)
    func matchesNaive(_ g: Pool2dGeometry) {
        var rng = RandomGenerator(seed: 7)
        let x = Tensor.randomNormal([g.batch, g.channels, g.height, g.width], using: &rng)
        let dOut = Tensor.randomNormal([g.batch, g.channels, g.outHeight, g.outWidth], using: &rng)
        let start = Tensor.randomNormal(x.shape, using: &rng)
        for kind in PoolKind.allCases {
            let (fast, fastIdx) = poolForward(kind, naive: false, x, g)
            let (slow, slowIdx) = poolForward(kind, naive: true, x, g)
            #expect(convRelativeError(fast, slow) < 1e-6, "\(kind)")
            if kind == .max { #expect(fastIdx == slowIdx) }
            let dFast = poolBackward(kind, naive: false, dOut: dOut, indices: fastIdx, initial: start, g)
            let dSlow = poolBackward(kind, naive: true, dOut: dOut, indices: slowIdx, initial: start, g)
            #expect(convRelativeError(dFast, dSlow) < 1e-6, "\(kind)")
        }
    }

    @Test("pooling backward matches central differences", arguments: [
        pool(2, 2, 5, 6, kernel: (3, 3), stride: (2, 2), padding: (1, 1)),
        pool(1, 2, 6, 5, kernel: (3, 2), stride: (1, 2), padding: (1, 1)),
    ])
    func finiteDifferences(_ g: Pool2dGeometry) {
        let x = distinctInput(g, seed: 8)
        var rng = RandomGenerator(seed: 9)
        let r = Tensor.randomNormal([g.batch, g.channels, g.outHeight, g.outWidth], using: &rng)
        for kind in PoolKind.allCases {
            let (_, idx) = poolForward(kind, naive: false, x, g)
            let analytic = poolBackward(kind, naive: false, dOut: r, indices: idx, initial: .zeros(x.shape), g)
            let numeric = numericGradient(x) { weightedSum(poolForward(kind, naive: false, $0, g).0, r) }
            #expect(convRelativeError(analytic, numeric) < 1e-3, "\(kind)")
            #expect(numeric.maxAbs() > 0.1)
        }
    }

    @Test("Tensor pooling on hand-computed values")
    func handComputed() {
        let x = Tensor.arange(0, 16).reshaped([1, 1, 4, 4])
        #expect(x.maxPool2d(kernel: (2, 2)).scalars == [5, 7, 13, 15])
        #expect(x.avgPool2d(kernel: (2, 2)).scalars == [2.5, 4.5, 10.5, 12.5])
        // 3x3, stride 2, padding 1 on 4x4: windows centred on (0,0), (0,2), (2,0), (2,2).
        #expect(x.maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)).scalars == [5, 7, 13, 15])
        let (_, indices) = x.maxPool2dWithIndices(kernel: (3, 3), stride: (2, 2), padding: (1, 1))
        #expect(indices == [5, 7, 13, 15])
        // -inf padding: an all-negative input still yields its own maximum, never 0.
        #expect((x - 100).maxPool2d(kernel: (3, 3), stride: (2, 2), padding: (1, 1)).scalars == [-95, -93, -87, -85])
        // Corner (0,0) of a 3x3 stride-1 pad-1 average sees {0, 1, 4, 5}: 10 / 9 with padding counted, 10 / 4 without.
        let inc = x.avgPool2d(kernel: (3, 3), stride: (1, 1), padding: (1, 1))
        let exc = x.avgPool2d(kernel: (3, 3), stride: (1, 1), padding: (1, 1), countIncludePad: false)
        #expect(inc.shape == [1, 1, 4, 4])
        #expect(abs(inc[0, 0, 0, 0] - 10.0 / 9) < 1e-6)
        #expect(abs(exc[0, 0, 0, 0] - 2.5) < 1e-6)
        #expect(abs(exc[0, 0, 1, 1] - 5) < 1e-6 && abs(inc[0, 0, 1, 1] - 5) < 1e-6)
        // Edge (0,1) sees {0, 1, 2, 4, 5, 6}: 18 / 9 and 18 / 6.
        #expect(abs(inc[0, 0, 0, 1] - 2) < 1e-6 && abs(exc[0, 0, 0, 1] - 3) < 1e-6)
    }

    @Test("global average pooling forward and backward")
    func globalAverage() {
        var rng = RandomGenerator(seed: 10)
        let x = Tensor.randomNormal([2, 3, 5, 7], using: &rng)
        let y = x.globalAvgPool2d()
        #expect(y.shape == [2, 3, 1, 1])
        #expect(convRelativeError(y.reshaped([2, 3]), x.reshaped([2, 3, 35]).mean(axis: -1)) < 1e-6)
        #expect(Tensor.arange(0, 16).reshaped([1, 1, 4, 4]).globalAvgPool2d().item == 7.5)
        // The backward spreads dOut / (H W) over each plane, on top of what is there.
        var dx = Tensor.ones(x.shape)
        let dOut = Tensor([35, 70, 0, -35, 3.5, 7], shape: [2, 3])
        let p = dx.mutablePointer()
        withExtendedLifetime(dOut) {
            Kernels.globalAvgPool2dBackward(dInput: p, dOut: dOut.storage.base, planes: 6, planeSize: 35)
        }
        #expect(dx[0, 0, 0, 0] == 2 && dx[0, 1, 4, 6] == 3 && dx[0, 2, 2, 2] == 1)
        #expect(dx[1, 0, 3, 3] == 0 && abs(dx[1, 1, 0, 6] - 1.1) < 1e-6 && abs(dx[1, 2, 1, 1] - 1.2) < 1e-6)
    }
}

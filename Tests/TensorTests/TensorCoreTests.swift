import Foundation
import Testing
@testable import Tensor

@Suite struct TensorCoreTests {
    @Test func creationAndCopyOnWrite() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        var b = a
        b[1, 2] = 60
        #expect(a[1, 2] == 6)
        #expect(b[1, 2] == 60)
        #expect(Tensor.zeros([2, 2]).scalars == [0, 0, 0, 0])
        #expect(Tensor.ones([3]).scalars == [1, 1, 1])
        #expect(Tensor.full([2], 7).scalars == [7, 7])
        #expect(Tensor.arange(0, 5).scalars == [0, 1, 2, 3, 4])
        #expect(Tensor.arange(1, 2, step: 0.25).scalars == [1, 1.25, 1.5, 1.75])
        #expect(Int(bitPattern: a.storage.base) % 64 == 0)
        #expect(a.reshaped([3, -1]).shape == [3, 2])
    }

    @Test func randomIsReproducible() {
        var r1 = RandomGenerator(seed: 7), r2 = RandomGenerator(seed: 7)
        let a = Tensor.randomNormal([1000], using: &r1)
        let b = Tensor.randomNormal([1000], using: &r2)
        #expect(a.scalars == b.scalars)
        #expect(abs(a.mean()) < 0.1)
        #expect(abs(a.variance(axis: 0).item - 1) < 0.1)
        var r3 = RandomGenerator(seed: 8)
        #expect(Tensor.randomNormal([1000], using: &r3).scalars != a.scalars)
        var r4 = RandomGenerator(seed: 1)
        let u = Tensor.randomUniform([10_000], low: -2, high: 3, using: &r4)
        #expect(u.scalars.allSatisfy { $0 >= -2 && $0 < 3 })
        #expect(abs(u.mean() - 0.5) < 0.05)
        var r5 = RandomGenerator(seed: 2)
        let tn = Tensor.truncatedNormal([10_000], std: 1.5, using: &r5)
        #expect(tn.scalars.allSatisfy { $0 >= -2 && $0 <= 2 })
        // State round-trip.
        var r6 = RandomGenerator(seed: 3)
        _ = r6.next()
        var r7 = RandomGenerator(state: r6.state)
        #expect(r6.next() == r7.next())
    }

    /// A large normal tensor (its transform runs on all threads) holds exactly the stream of
    /// `nextNormal()` calls, whatever the thread count, and leaves the generator where they would.
    @Test(arguments: [1, 2, 3])
    func largeRandomNormalIsTheSerialStreamOnAnyThreadCount(threads: Int) {
        let n = 3 * Tensor.parallelNormalCount + 5
        var serial = RandomGenerator(seed: 11)
        let expected = (0..<n).map { _ in 0.5 + 2 * serial.nextNormal() }
        var rng = RandomGenerator(seed: 11)
        let t = Parallel.$threads.withValue(threads) { Tensor.randomNormal([n], mean: 0.5, std: 2, using: &rng) }
        #expect(t.scalars == expected)
        #expect(rng == serial)
    }

    @Test func broadcastingArithmetic() {
        let a = Tensor([1, 2, 3, 4, 5, 6], shape: [2, 3])
        let row = Tensor([10, 20, 30])
        let col = Tensor([100, 200], shape: [2, 1])
        #expect((a + row).scalars == [11, 22, 33, 14, 25, 36])
        #expect((a * col).scalars == [100, 200, 300, 800, 1000, 1200])
        #expect((col - a).scalars == [99, 98, 97, 196, 195, 194])
        #expect((a / Tensor(scalar: 2)).scalars == [0.5, 1, 1.5, 2, 2.5, 3])
        #expect((2 - a).scalars == [1, 0, -1, -2, -3, -4])
        // A larger case against an element-by-element loop, ragged last axis.
        var rng = RandomGenerator(seed: 3)
        let x = Tensor.randomNormal([3, 1, 5, 37], using: &rng)
        let y = Tensor.randomNormal([4, 1, 37], using: &rng)
        let z = x * y
        #expect(z.shape == [3, 4, 5, 37])
        for (i, j, k, l) in [(0, 0, 0, 0), (2, 3, 4, 36), (1, 2, 3, 17)] {
            #expect(z[i, j, k, l] == x[i, 0, k, l] * y[j, 0, l])
        }
    }

    @Test func unaryMathMatchesFoundation() {
        var rng = RandomGenerator(seed: 4)
        let x = Tensor.randomUniform([1003], low: -9, high: 9, using: &rng)
        let e = x.exp(), t = x.tanh(), f = x.erf()
        for i in 0..<x.count {
            let v = Double(x[flat: i])
            #expect(abs(Double(e[flat: i]) - Foundation.exp(v)) <= 3e-7 * Foundation.exp(v))
            #expect(abs(Double(t[flat: i]) - Foundation.tanh(v)) <= 3e-7)
            #expect(abs(Double(f[flat: i]) - Foundation.erf(v)) <= 5e-7)
        }
        let p = Tensor([0.25, 4, 9]).sqrt()
        #expect(p.scalars == [0.5, 2, 3])
        #expect(Tensor([4]).rsqrt().scalars == [0.5])
        #expect(Tensor([-3, 0.5, 3]).clamped(min: -1, max: 1).scalars == [-1, 0.5, 1])
        #expect(Tensor([2, 3]).pow(3).scalars == [8, 27])
        #expect(abs(Tensor([Float(M_E)]).log().item - 1) < 1e-6)
    }

    @Test func reductions() {
        let a = Tensor([1, 5, 3, 4, 2, 6], shape: [2, 3])
        #expect(a.sum(axis: 0).scalars == [5, 7, 9])
        #expect(a.sum(axis: 1, keepDims: true).shape == [2, 1])
        #expect(a.mean(axis: -1).scalars == [3, 4])
        #expect(a.max(axis: 1).scalars == [5, 6])
        #expect(a.argmax(axis: 1) == [1, 2])
        #expect(a.argmax(axis: 0) == [1, 0, 1])
        #expect(a.variance(axis: 1).scalars == [4, 4])
        #expect(a.variance(axis: 1, correction: 0).scalars.map { ($0 * 3).rounded() } == [8, 8])
        #expect(a.sum() == 21)
    }

    @Test func shapeOps() {
        let a = Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let p = a.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3])
        #expect(p[3, 1, 2] == a[1, 2, 3])
        #expect(a.transposed()[1, 3, 2] == a[1, 2, 3])
        let s = a.sliced(axis: 1, 1..<3)
        #expect(s.shape == [2, 2, 4] && s[1, 0, 0] == a[1, 1, 0])
        let parts = a.split(sizes: [1, 3], axis: 2)
        #expect(parts[1].shape == [2, 3, 3])
        #expect(Tensor.concat(parts, axis: 2).scalars == a.scalars)
        let g = a.reshaped([6, 4]).gatherRows([5, 0, 5])
        #expect(g.shape == [3, 4] && g[0, 0] == 20 && g[1, 3] == 3)
        var z = Tensor.zeros([6, 4])
        z.scatterAddRows([5, 0, 5], g)
        #expect(z[5, 1] == 42 && z[0, 2] == 2 && z[3, 3] == 0)
    }

    @Test func matmulMatchesNaiveWithTransposes() {
        var rng = RandomGenerator(seed: 5)
        for (m, k, n) in [(1, 1, 1), (7, 13, 5), (33, 17, 65), (64, 64, 3)] {
            for (ta, tb) in [(false, false), (true, false), (false, true), (true, true)] {
                let a = Tensor.randomNormal(ta ? [k, m] : [m, k], using: &rng)
                let b = Tensor.randomNormal(tb ? [n, k] : [k, n], using: &rng)
                let c = a.matmul(b, transposeA: ta, transposeB: tb)
                let ea = ta ? a.transposed() : a, eb = tb ? b.transposed() : b
                var ref = Tensor.zeros([m, n])
                for i in 0..<m { for j in 0..<n {
                    var s: Double = 0
                    for l in 0..<k { s += Double(ea[i, l]) * Double(eb[l, j]) }
                    ref[i, j] = Float(s)
                } }
                #expect(relativeError(c, ref) < 1e-5, "\(m)x\(k)x\(n) ta \(ta) tb \(tb)")
            }
        }
        // Batched and folded batch.
        let x = Tensor.randomNormal([2, 3, 5, 4], using: &rng)
        let w = Tensor.randomNormal([4, 6], using: &rng)
        let y = x.matmul(w)
        #expect(y.shape == [2, 3, 5, 6])
        let y2 = x.reshaped([30, 4]).matmul(w)
        #expect(y.scalars == y2.scalars)
        let bb = Tensor.randomNormal([2, 3, 6, 4], using: &rng)
        let z = x.matmul(bb, transposeB: true)
        #expect(z.shape == [2, 3, 5, 6])
        let z12 = x.sliced(axis: 0, 1..<2).sliced(axis: 1, 2..<3).reshaped([5, 4])
            .matmul(bb.sliced(axis: 0, 1..<2).sliced(axis: 1, 2..<3).reshaped([6, 4]), transposeB: true)
        #expect(z.sliced(axis: 0, 1..<2).sliced(axis: 1, 2..<3).reshaped([5, 6]).maxAbsDifference(z12) < 1e-5)
    }
}


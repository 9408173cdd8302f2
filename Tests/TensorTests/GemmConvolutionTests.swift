import Foundation
import Testing
@testable import Tensor

/// `Gemm.convolutionFullPrecision` packs the im2col operand straight from the input: its result
/// must equal, bit for bit, the same kernel's product with the im2col matrix formed first, on
/// every fp32 kernel the CPU runs (AVX2, AVX-512 and its emulated geometry), with and without the
/// bias + ReLU fused into it.
@Suite struct GemmConvolutionTests {
    /// The im2col matrix of `g` over its images, formed naively: (rows, columns).
    static func im2col(_ x: [Float], _ g: ConvolutionGeometry) -> [Float] {
        let (oh, ow) = g.output, n = g.columns
        var col = [Float](repeating: .nan, count: g.rows * n)
        for c in 0..<g.channels {
            for ki in 0..<g.kernel.height {
                for kj in 0..<g.kernel.width {
                    let r = (c * g.kernel.height + ki) * g.kernel.width + kj
                    for (i, image) in g.images.enumerated() {
                        for oy in 0..<oh {
                            for ox in 0..<ow {
                                let iy = oy * g.stride - g.padding.height + ki, ix = ox * g.stride - g.padding.width + kj
                                let inside = iy >= 0 && iy < g.height && ix >= 0 && ix < g.width
                                col[r * n + (i * oh + oy) * ow + ox] =
                                    inside ? x[((c * g.batch + image) * g.height + iy) * g.width + ix] : 0
                            }
                        }
                    }
                }
            }
        }
        return col
    }

    static let cases: [(String, ConvolutionGeometry, Int)] = [
        ("3x3 stride 2, no padding (the stem's first)", ConvolutionGeometry(channels: 3, batch: 2, height: 19, width: 19, kernel: (3, 3), stride: 2), 32),
        ("3x3 padding 1, rows shorter than a panel", ConvolutionGeometry(channels: 5, batch: 3, height: 8, width: 8, kernel: (3, 3), padding: (1, 1)), 40),
        ("1x7, padding on the width only", ConvolutionGeometry(channels: 4, batch: 2, height: 9, width: 17, kernel: (1, 7), padding: (0, 3)), 24),
        ("7x1, padding on the height only", ConvolutionGeometry(channels: 4, batch: 2, height: 17, width: 9, kernel: (7, 1), padding: (3, 0)), 24),
        ("5x5 padding 2, rows longer than a panel", ConvolutionGeometry(channels: 6, batch: 2, height: 11, width: 37, kernel: (5, 5), padding: (2, 2)), 20),
        ("3x3 stride 2 with padding, a sub-range of the images", ConvolutionGeometry(channels: 7, batch: 5, height: 13, width: 15, kernel: (3, 3), stride: 2, padding: (1, 1), images: 1..<4), 70),
        ("deep: several depth blocks", ConvolutionGeometry(channels: 96, batch: 2, height: 9, width: 9, kernel: (3, 3), padding: (1, 1)), 33),
        ("tiny: one thread", ConvolutionGeometry(channels: 1, batch: 1, height: 3, width: 3, kernel: (2, 2)), 2),
        ("more than one column block (N > 4096): runs past the block's start", ConvolutionGeometry(channels: 2, batch: 3, height: 41, width: 39, kernel: (3, 3), padding: (1, 1)), 8),
        ("190 output channels: several row blocks and depth blocks", ConvolutionGeometry(channels: 48, batch: 2, height: 7, width: 7, kernel: (3, 3), padding: (1, 1)), 190),
    ]

    /// `Gemm.convolution` of `x` by `weight` (rows `lda` apart) into `c` (rows `ldc` apart), with the
    /// bias + ReLU fused when `biasReLU` is given.
    static func convolve(_ x: [Float], _ weight: [Float], lda: Int, _ g: ConvolutionGeometry, m: Int, into c: inout [Float],
                         ldc: Int, biasReLU: [Float]?, _ isa: Gemm.InstructionSet, _ blocking: Gemm.Blocking?) {
        x.withUnsafeBufferPointer { xp in
            weight.withUnsafeBufferPointer { wp in
                (biasReLU ?? []).withUnsafeBufferPointer { bp in
                    c.withUnsafeMutableBufferPointer { cp in
                        Gemm.convolution(m: m, weight: wp.baseAddress!, lda: lda, input: xp.baseAddress!, geometry: g,
                                         into: cp.baseAddress!, ldc: ldc, biasReLU: biasReLU == nil ? nil : bp.baseAddress!,
                                         instructionSet: isa, blocking: blocking)
                    }
                }
            }
        }
    }

    /// The fp32 kernels this CPU runs.
    static var kernels: [Gemm.InstructionSet] {
        [.avx2, .avx512, .avx512Emulated].filter { Gemm.isaSupported($0) }
    }

    @Test(arguments: 0..<cases.count) func equalsTheProductWithTheFormedMatrix(_ index: Int) throws {
        guard Gemm.hasConvolutionKernel else { return }   // OpenBLAS products: the caller forms the matrix
        #expect(!Self.kernels.isEmpty)
        for isa in Self.kernels {
            // The AVX-512 kernels walk a product in either blocking (the same sums either way).
            let blockings: [Gemm.Blocking?] = isa == .avx2 ? [nil] : Gemm.Blocking.allCases
            for blocking in blockings { check(index, on: isa, blocking: blocking) }
        }
    }

    func check(_ index: Int, on isa: Gemm.InstructionSet, blocking: Gemm.Blocking?) {
        let (caseName, g, m) = Self.cases[index]
        let name = "\(caseName) on \(isa.environmentName)" + (blocking.map { ", \($0)" } ?? "")
        var rng = RandomGenerator(seed: UInt64(index) + 5)
        let x = (0..<(g.channels * g.batch * g.height * g.width)).map { _ in Float.random(in: -1...1, using: &rng) }
        let lda = g.rows + 3
        var weight = [Float](repeating: .nan, count: m * lda)            // padding poisons a stray read
        for i in 0..<m { for j in 0..<g.rows { weight[i * lda + j] = Float.random(in: -1...1, using: &rng) } }
        let n = g.columns, ldc = n + 2
        var got = [Float](repeating: .nan, count: m * ldc)
        Self.convolve(x, weight, lda: lda, g, m: m, into: &got, ldc: ldc, biasReLU: nil, isa, blocking)
        let col = Self.im2col(x, g)
        var want = [Float](repeating: .nan, count: m * ldc)
        weight.withUnsafeBufferPointer { wp in
            col.withUnsafeBufferPointer { bp in
                want.withUnsafeMutableBufferPointer { cp in
                    Gemm.sgemm(instructionSet: isa, threads: 1, blocking: blocking, transposeA: false, transposeB: false,
                               m: m, n: n, k: g.rows, alpha: 1, a: wp.baseAddress!, lda: lda, b: bp.baseAddress!, ldb: nil,
                               beta: 0, c: cp.baseAddress!, ldc: ldc)
                }
            }
        }
        var differing = 0
        for i in 0..<m { for j in 0..<n where got[i * ldc + j].bitPattern != want[i * ldc + j].bitPattern { differing += 1 } }
        #expect(differing == 0, "\(name): \(differing) of \(m * n) values differ")
        // C's padding is left alone.
        #expect((0..<m).allSatisfy { i in got[i * ldc + n].isNaN && got[i * ldc + n + 1].isNaN }, "\(name)")

        // With the bias + ReLU fused: the values of the product followed by a separate pass. The
        // bias is around the sums' scale, so about half the outputs are cut to zero; row 0's is
        // NaN, which must stay NaN (a max() would drop it).
        var bias = (0..<m).map { _ in Float.random(in: -2...2, using: &rng) }
        bias[0] = .nan
        var fused = [Float](repeating: .nan, count: m * ldc)
        for i in 0..<m { fused[i * ldc + n] = -1; fused[i * ldc + n + 1] = -1 }   // a finite sentinel the ReLU would change
        Self.convolve(x, weight, lda: lda, g, m: m, into: &fused, ldc: ldc, biasReLU: bias, isa, blocking)
        let (fusedDiffering, zeros) = Self.againstBiasReLU(fused, before: want, bias: bias, rows: m, columns: n, ld: ldc)
        #expect(fusedDiffering == 0, "\(name), bias + ReLU fused: \(fusedDiffering) of \(m * n) values differ")
        #expect(m * n < 100 || zeros > 0, "\(name): the ReLU cut nothing")
        #expect((0..<n).allSatisfy { fused[$0].isNaN }, "\(name): a NaN bias must give NaN outputs")
        #expect((0..<m).allSatisfy { i in fused[i * ldc + n] == -1 && fused[i * ldc + n + 1] == -1 },
                "\(name): the bias + ReLU wrote past the product's columns")
    }

    /// With no input channels the im2col matrix has no rows: C is the empty sum, 0, and with the
    /// bias + ReLU fused, max(bias, 0) (NaN kept).
    @Test func noInputChannelsGivesZerosOrTheBias() {
        guard Gemm.hasConvolutionKernel else { return }
        let g = ConvolutionGeometry(channels: 0, batch: 2, height: 5, width: 5, kernel: (3, 3), padding: (1, 1))
        let m = 3, n = g.columns, bias: [Float] = [0.5, -0.25, .nan]
        let x = [Float](repeating: 0, count: 1), weight = [Float](repeating: 0, count: 1)
        for isa in Self.kernels {
            for fused in [false, true] {
                var c = [Float](repeating: .nan, count: m * n)
                Self.convolve(x, weight, lda: 1, g, m: m, into: &c, ldc: n, biasReLU: fused ? bias : nil, isa, nil)
                let expected: [Float] = fused ? [0.5, 0, .nan] : [0, 0, 0]
                for i in 0..<m {
                    #expect((0..<n).allSatisfy { c[i * n + $0].bitPattern == expected[i].bitPattern },
                            "\(isa.environmentName), fused \(fused): row \(i) is not \(expected[i])")
                }
            }
        }
    }

    /// Compares `got` with `max(before + bias[row], 0)` as the epilogue computes it (`v < 0 ? 0 : v`)
    /// over a (rows, columns) matrix with rows `ld` apart: the values whose bits differ, and the
    /// expected zeros (so a test can see that the ReLU cut something).
    static func againstBiasReLU(_ got: [Float], before: [Float], bias: [Float], rows: Int, columns: Int, ld: Int)
        -> (differing: Int, zeros: Int) {
        var differing = 0, zeros = 0
        for r in 0..<rows {
            for j in 0..<columns {
                let v = before[r * ld + j] + bias[r], expected: Float = v < 0 ? 0 : v
                if got[r * ld + j].bitPattern != expected.bitPattern { differing += 1 }
                if expected == 0 { zeros += 1 }
            }
        }
        return (differing, zeros)
    }

    /// The pass after an unfused product, `Kernels.biasReLU`: the epilogue's values (NaN kept, -0
    /// kept, negatives to +0) over a matrix whose rows the threads' 64 Ki runs cut mid-row, and
    /// over one row and one column.
    @Test(arguments: [(7, 20_011), (1, 70_001), (70_001, 1), (3, 5)])
    func biasReLUPassMatchesTheEpilogue(rows: Int, columns: Int) {
        var rng = RandomGenerator(seed: UInt64(rows * 31 + columns))
        var x = (0..<(rows * columns)).map { _ in Float.random(in: -3...3, using: &rng) }
        x[0] = -0.0
        x[x.count - 1] = .nan
        if x.count > 2 { x[1] = .infinity; x[2] = -.infinity }
        var bias = (0..<rows).map { _ in Float.random(in: -1...1, using: &rng) }
        if rows > 1 { bias[0] = -0.0 }   // -0 + -0 is -0, which the ReLU keeps
        var got = x
        got.withUnsafeMutableBufferPointer { gp in
            bias.withUnsafeBufferPointer { Kernels.biasReLU(gp.baseAddress!, bias: $0.baseAddress!, rows: rows, columns: columns) }
        }
        let (differing, zeros) = Self.againstBiasReLU(got, before: x, bias: bias, rows: rows, columns: columns, ld: columns)
        #expect(differing == 0, "\(rows) x \(columns): \(differing) values differ")
        #expect(zeros > 0 && got[got.count - 1].isNaN, "\(rows) x \(columns): nothing cut, or the NaN lost")
        if rows > 1 { #expect(got[0].bitPattern == (-0.0 as Float).bitPattern, "-0 + -0 must stay -0") }
    }
}

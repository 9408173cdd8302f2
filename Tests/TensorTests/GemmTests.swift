import CKernels
import Foundation
import Testing
@testable import Tensor

/// One GEMM problem: sizes, transposes, extra leading-dimension padding, alpha and beta.
struct GemmCase: CustomStringConvertible {
    var m: Int, n: Int, k: Int
    var transposeA = false, transposeB = false
    var padA = 0, padB = 0, padC = 0
    var alpha: Float = 1, beta: Float = 0

    var description: String {
        "m \(m) n \(n) k \(k) tA \(transposeA) tB \(transposeB) pad \(padA)/\(padB)/\(padC) alpha \(alpha) beta \(beta)"
    }
}

/// Runs `gemm` and the naive Double twin on random operands and returns the max error relative to
/// the result's magnitude. Padding of A, B and C holds NaN: a read of it poisons the result, and
/// C's padding must come back untouched. With beta 0, C starts as NaN. The twin multiplies the
/// operands after `rounding` (the bf16 kernel's: its result must be the product of rounded inputs).
func gemmRelativeError(_ p: GemmCase, seed: UInt64, rounding: (Float) -> Float = { $0 },
                       _ gemm: (GemmCase, UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>, Int) -> Void) -> Float {
    var rng = RandomGenerator(seed: seed)
    let (rowsA, colsA) = p.transposeA ? (p.k, p.m) : (p.m, p.k)
    let (rowsB, colsB) = p.transposeB ? (p.n, p.k) : (p.k, p.n)
    let lda = colsA + p.padA, ldb = colsB + p.padB, ldc = p.n + p.padC
    func matrix(_ rows: Int, _ cols: Int, _ ld: Int, _ value: (inout RandomGenerator) -> Float) -> [Float] {
        var x = [Float](repeating: .nan, count: max(1, rows * ld))
        for i in 0..<rows { for j in 0..<cols { x[i * ld + j] = value(&rng) } }
        return x
    }
    let a = matrix(rowsA, colsA, lda) { $0.nextNormal() }
    let b = matrix(rowsB, colsB, ldb) { $0.nextNormal() }
    var c = matrix(p.m, p.n, ldc) { p.beta == 0 ? .nan : $0.nextNormal() }
    var ref = c
    ref.withUnsafeMutableBufferPointer { r in
        Naive.sgemm(transposeA: p.transposeA, transposeB: p.transposeB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
                    a: a.map(rounding), lda: lda, b: b.map(rounding), ldb: ldb, beta: p.beta, c: r.baseAddress!, ldc: ldc)
    }
    c.withUnsafeMutableBufferPointer { gemm(p, a, lda, b, ldb, $0.baseAddress!, ldc) }
    var err: Float = 0, scale: Float = 1e-20
    for i in 0..<p.m {
        for j in 0..<ldc {
            let (x, y) = (c[i * ldc + j], ref[i * ldc + j])
            if j >= p.n { if !x.isNaN { return .infinity }; continue }   // padding written
            if !x.isFinite { return .infinity }
            err = max(err, abs(x - y))
            scale = max(scale, abs(y))
        }
    }
    return err / scale
}

/// Tolerance for a k-deep fp32 dot product against a Double reference.
func gemmTolerance(_ k: Int) -> Float { 1e-5 * Float(max(k, 1)).squareRoot() }

@Suite struct GemmTests {
    static let sizes = [1, 3, 15, 17, 31, 33, 65, 257, 513]

    /// Kernels this CPU can run (never empty on x86 machines with AVX2). The AVX2-built twin of
    /// the AVX-512 kernel puts the AVX-512 geometry (8x32 tile, its blocks) through every test
    /// on CPUs without AVX-512.
    static let kernels = [Gemm.InstructionSet.avx2, .avx512, .avx512Emulated].filter { Gemm.isaSupported($0) }

    /// Deterministic sample of size triples (the full 9^3 product is too slow for the naive twin in
    /// a debug build), keeping m n k under 5M multiply-adds.
    static func shapes(count: Int, seed: UInt64) -> [(Int, Int, Int)] {
        var rng = RandomGenerator(seed: seed)
        var out: [(Int, Int, Int)] = []
        while out.count < count {
            let s = (sizes[rng.nextInt(below: 9)], sizes[rng.nextInt(below: 9)], sizes[rng.nextInt(below: 9)])
            if s.0 * s.1 * s.2 <= 5_000_000 { out.append(s) }
        }
        return out
    }

    @Test(arguments: [(false, false), (false, true), (true, false), (true, true)])
    func matchesNaiveOnRaggedShapes(transposeA: Bool, transposeB: Bool) throws {
        try #require(!Self.kernels.isEmpty, "no AVX2/AVX-512 on this CPU: Gemm forwards to OpenBLAS")
        let seed = UInt64(transposeA ? 2 : 0) + (transposeB ? 1 : 0)
        let alphas: [Float] = [1, -0.75, 2.5], betas: [Float] = [0, 1, 0.5]
        for (i, (m, n, k)) in Self.shapes(count: 24, seed: seed).enumerated() {
            let p = GemmCase(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                             padA: i % 3 == 0 ? 0 : 5, padB: i % 4 == 1 ? 0 : 3, padC: i % 2 == 0 ? 0 : 7,
                             alpha: alphas[i % 3], beta: betas[(i / 3) % 3])
            for isa in Self.kernels {
                for threads in [1, 2] {
                    let e = gemmRelativeError(p, seed: UInt64(i)) { p, a, lda, b, ldb, c, ldc in
                        Gemm.sgemm(instructionSet: isa, threads: threads, transposeA: p.transposeA,
                                   transposeB: p.transposeB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
                                   a: a, lda: lda, b: b, ldb: ldb, beta: p.beta, c: c, ldc: ldc)
                    }
                    #expect(e < gemmTolerance(k), "\(isa) threads \(threads): \(p): relative error \(e)")
                }
            }
        }
    }

    /// Blocks bigger than the cache blocks: K over two depth blocks (beta applies once), M over
    /// several row blocks, N over the column block (4096) with a ragged rest; deep row-split
    /// products whose packed B goes in several K slabs (beta applies to the first slab only).
    @Test(arguments: [GemmCase(m: 300, n: 40, k: 700, beta: 1), GemmCase(m: 3, n: 4133, k: 9, padC: 2, beta: 0.5),
                      GemmCase(m: 700, n: 20, k: 20, transposeA: true, transposeB: true, alpha: -1, beta: 0),
                      GemmCase(m: 100, n: 300, k: 4000, transposeA: true, padA: 3, padB: 1, padC: 2, beta: 0.5),
                      GemmCase(m: 130, n: 600, k: 3001, transposeB: true, padB: 5, alpha: 0.5, beta: 0)])
    func matchesNaiveAcrossCacheBlocks(p: GemmCase) throws {
        try #require(!Self.kernels.isEmpty)
        for isa in Self.kernels {
            let e = gemmRelativeError(p, seed: 7) { p, a, lda, b, ldb, c, ldc in
                Gemm.sgemm(instructionSet: isa, threads: 2, transposeA: p.transposeA, transposeB: p.transposeB,
                           m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda, b: b, ldb: ldb,
                           beta: p.beta, c: c, ldc: ldc)
            }
            #expect(e < gemmTolerance(p.k), "\(isa): \(p): relative error \(e)")
        }
    }

    /// On a CPU with AVX-512, the AVX2-built twin computes what the AVX-512 kernel computes, bit
    /// for bit (same template, tile, blocks and operation order): what lets the suite run under
    /// `MASKDM_GEMM_ISA=avx512-emulated` stand for the AVX-512 kernel on other CPUs. Full and
    /// ragged tiles, both transposes, a bias, beta 0 and 1, several depth blocks, 1 and 2 threads.
    @Test(.enabled(if: Gemm.isaSupported(.avx512), "this CPU has no AVX-512 to compare the twin with"),
          arguments: [(528, 1536, 512, false, true), (97, 130, 75, true, false), (300, 700, 1000, false, false)])
    func emulatedTwinMatchesTheAVX512KernelBitForBit(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) {
        var rng = RandomGenerator(seed: UInt64(m + n + k))
        let a = Tensor.randomNormal([m * k], using: &rng), b = Tensor.randomNormal([k * n], using: &rng)
        let bias = Tensor.randomNormal([n], using: &rng), c0 = Tensor.randomNormal([m * n], using: &rng)
        for threads in [1, 2] {
            for (beta, withBias) in [(Float(0), true), (1, false)] {
                var outputs: [[UInt32]] = []
                for isa in [Gemm.InstructionSet.avx512, .avx512Emulated] {
                    var c = c0
                    Gemm.sgemm(instructionSet: isa, threads: threads, transposeA: transposeA, transposeB: transposeB,
                               m: m, n: n, k: k, alpha: 0.5, a: a.storage.base, lda: nil, b: b.storage.base, ldb: nil,
                               beta: beta, c: c.mutablePointer(), ldc: nil, bias: withBias ? bias.storage.base : nil)
                    outputs.append(c.scalars.map(\.bitPattern))
                }
                let differing = zip(outputs[0], outputs[1]).count { $0 != $1 }
                #expect(differing == 0, "\(m)x\(n)x\(k) threads \(threads) beta \(beta) bias \(withBias)")
            }
        }
    }

    /// Both blockings of the AVX-512 kernel (and of its AVX2-built twin, so that every CPU tests
    /// both) match the naive product over ragged shapes, transposes, alphas and betas, and agree
    /// bit for bit with each other at alpha 1 and beta 0 (with a bias) or 1: over several depth
    /// blocks, column blocks wider than the streamed blocking's 512, row tiles of neither 8 nor 14,
    /// on one thread and on two (row splits, with their shared packed B, and column splits).
    @Test(arguments: [(528, 1536, 512, false, true), (97, 1100, 75, true, false), (300, 700, 1000, false, false),
                      (33, 65, 64, false, true), (1030, 40, 300, true, true)])
    func blockingsMatchNaiveAndEachOther(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) throws {
        let isas = [Gemm.InstructionSet.avx512, .avx512Emulated].filter { Gemm.isaSupported($0) }
        try #require(!isas.isEmpty, "no AVX2 on this CPU")
        var rng = RandomGenerator(seed: UInt64(m * 13 + n))
        let a = Tensor.randomNormal([m * k], using: &rng), b = Tensor.randomNormal([k * n], using: &rng)
        let bias = Tensor.randomNormal([n], using: &rng), c0 = Tensor.randomNormal([m * n], using: &rng)
        for isa in isas {
            for threads in [1, 2] {
                for blocking in Gemm.Blocking.allCases {
                    let p = GemmCase(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB, padC: 3,
                                     alpha: -0.75, beta: 0.5)
                    let e = gemmRelativeError(p, seed: UInt64(threads)) { p, a, lda, b, ldb, c, ldc in
                        Gemm.sgemm(instructionSet: isa, threads: threads, blocking: blocking, transposeA: p.transposeA,
                                   transposeB: p.transposeB, m: p.m, n: p.n, k: p.k, alpha: p.alpha,
                                   a: a, lda: lda, b: b, ldb: ldb, beta: p.beta, c: c, ldc: ldc)
                    }
                    #expect(e < gemmTolerance(k), "\(isa) \(blocking) threads \(threads): \(p): relative error \(e)")
                }
                for (beta, withBias) in [(Float(0), true), (1, false)] {
                    let outputs = Gemm.Blocking.allCases.map { blocking in
                        var c = c0
                        Gemm.sgemm(instructionSet: isa, threads: threads, blocking: blocking, transposeA: transposeA,
                                   transposeB: transposeB, m: m, n: n, k: k, alpha: 1, a: a.storage.base, lda: nil,
                                   b: b.storage.base, ldb: nil, beta: beta, c: c.mutablePointer(), ldc: nil,
                                   bias: withBias ? bias.storage.base : nil)
                        return c.scalars.map(\.bitPattern)
                    }
                    let differing = zip(outputs[0], outputs[1]).count { $0 != $1 }
                    #expect(differing == 0, "\(isa) \(m)x\(n)x\(k) threads \(threads) beta \(beta): \(differing) entries differ")
                }
            }
        }
    }

    /// The two blockings have the tiles and blocks their documentation gives, and
    /// `MASKDM_GEMM_BLOCKING` names them (anything else is an error naming the variable).
    @Test func blockingsHaveTheirTilesAndEnvironmentNames() throws {
        for (blocking, rows) in [(Gemm.Blocking.resident, Int32(8)), (.streamed, 14)] {
            var mr: Int32 = 0, nr: Int32 = 0
            maskdm_gemm_micro_tile(blocking.code(.avx512), &mr, &nr)
            #expect(mr == rows && nr == 32, "\(blocking): \(mr)x\(nr)")
            #expect(try Gemm.environmentBlocking(" \(blocking.environmentName.uppercased()) ") == blocking)
        }
        #expect(try Gemm.environmentBlocking(nil) == nil)
        #expect(try Gemm.environmentBlocking("") == nil)
        #expect(throws: Gemm.InstructionSetError.self) { try Gemm.environmentBlocking("l2") }
        do { _ = try Gemm.environmentBlocking("l2") } catch { #expect("\(error)".contains("MASKDM_GEMM_BLOCKING")) }
        // A packed B serves both blockings: its size does not depend on the blocking.
        #expect(maskdm_sgemm_packed_b_size(Gemm.Blocking.resident.code(.avx512), 1100, 1000)
                == maskdm_sgemm_packed_b_size(Gemm.Blocking.streamed.code(.avx512), 1100, 1000))
    }

    /// The kernels for ragged edges (a tile's first MR / 2 rows only, or its first NR / 2 columns
    /// only) give the bits a full tile gives: a product whose M and N leave ragged tiles equals
    /// the corner of the same product with M and N padded to whole tiles, bit for bit (alpha 1;
    /// beta 0 with a bias, beta 1 without), on one thread, for every kernel this CPU runs.
    @Test(arguments: [(257, 257, 64, false, true), (33, 33, 64, false, true), (65, 64, 65, false, false),
                      (97, 130, 75, true, false), (3, 40, 300, false, false), (700, 37, 100, true, true),
                      (33, 60, 70, false, false)])   // a short row tile with more than half the columns
    func raggedEdgesMatchWholeTilesBitForBit(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) throws {
        let isas = Self.kernels + [Gemm.InstructionSet.avx512BF16].filter { Gemm.isaSupported($0) }
        try #require(!isas.isEmpty)
        let mBig = (m + 23) / 24 * 24 + 24, nBig = (n + 31) / 32 * 32 + 32   // whole 6-, 8- or 14-row and 16-, 32-column tiles
        var rng = RandomGenerator(seed: UInt64(m * 7 + n))
        let a = Tensor.randomNormal([mBig * k], using: &rng), b = Tensor.randomNormal([k * nBig], using: &rng)
        let bias = Tensor.randomNormal([nBig], using: &rng), c0 = Tensor.randomNormal([mBig * nBig], using: &rng)
        // A (m, k) is the first m rows (or columns, transposed) of A (mBig, k); B (k, n) the first n columns of B.
        let (lda, ldb) = (transposeA ? mBig : k, transposeB ? k : nBig)
        for isa in isas {
            for (beta, withBias) in [(Float(0), true), (1, false)] {
                var outputs: [[UInt32]] = []
                for (rows, columns) in [(m, n), (mBig, nBig)] {
                    var c = c0
                    Gemm.sgemm(instructionSet: isa, threads: 1, transposeA: transposeA, transposeB: transposeB,
                               m: rows, n: columns, k: k, alpha: 1, a: a.storage.base, lda: lda, b: b.storage.base, ldb: ldb,
                               beta: beta, c: c.mutablePointer(), ldc: nBig, bias: withBias ? bias.storage.base : nil)
                    outputs.append((0..<m).flatMap { i in c.scalars[(i * nBig)..<(i * nBig + n)].map(\.bitPattern) })
                }
                let differing = zip(outputs[0], outputs[1]).count { $0 != $1 }
                #expect(differing == 0, "\(isa) \(m)x\(n)x\(k) beta \(beta) bias \(withBias): \(differing) entries differ")
            }
        }
    }

    /// A bias added in the kernel's store equals broadcasting it into C and multiplying with beta 1,
    /// bit for bit (the linear layers' old two-pass form), on full and ragged tiles, row and column
    /// splits, one and two threads, several depth blocks and packed-B slabs; with beta != 0 it
    /// matches the naive product plus the bias; with k 0 C becomes beta C + bias.
    @Test(arguments: [(528, 1536, 512, false, true), (97, 130, 75, false, true), (5, 300, 40, true, false),
                      (700, 37, 1500, false, false), (130, 600, 700, true, true), (200, 700, 2000, false, false)])
    func biasInTheStoreMatchesBroadcastThenAccumulate(m: Int, n: Int, k: Int, transposeA: Bool, transposeB: Bool) throws {
        try #require(!Self.kernels.isEmpty)
        var rng = RandomGenerator(seed: UInt64(m * 31 + n))
        let a = Tensor.randomNormal([m * k], using: &rng), b = Tensor.randomNormal([k * n], using: &rng)
        let bias = Tensor.randomNormal([n], using: &rng), c0 = Tensor.randomNormal([m * n], using: &rng)
        let (lda, ldb) = (transposeA ? m : k, transposeB ? k : n)
        for isa in Self.kernels {
            for threads in [1, 2] {
                for alpha: Float in [1, -0.5] {
                    var fused = Tensor(repeating: .nan, shape: [m * n]), twoPass = Tensor.zeros([m * n])
                    let tp = twoPass.mutablePointer()
                    Kernels.broadcastRows(bias.storage.base, into: tp, rows: m, cols: n)
                    Gemm.sgemm(instructionSet: isa, threads: threads, transposeA: transposeA, transposeB: transposeB,
                               m: m, n: n, k: k, alpha: alpha, a: a.storage.base, lda: lda, b: b.storage.base, ldb: ldb,
                               beta: 1, c: tp, ldc: n)
                    Gemm.sgemm(instructionSet: isa, threads: threads, transposeA: transposeA, transposeB: transposeB,
                               m: m, n: n, k: k, alpha: alpha, a: a.storage.base, lda: lda, b: b.storage.base, ldb: ldb,
                               beta: 0, c: fused.mutablePointer(), ldc: n, bias: bias.storage.base)
                    let differing = zip(fused.scalars, twoPass.scalars).filter { $0.bitPattern != $1.bitPattern }.count
                    #expect(differing == 0, "\(isa) threads \(threads) alpha \(alpha): \(differing) of \(m * n) values differ")
                }
                // beta != 0: alpha op(A) op(B) + beta C + bias against the naive product (its
                // Double loops are slow: not on the largest shape).
                if m * n * k > 100_000_000 { continue }
                var ours = c0, ref = c0.scalars
                Gemm.sgemm(instructionSet: isa, threads: threads, transposeA: transposeA, transposeB: transposeB,
                           m: m, n: n, k: k, alpha: 0.75, a: a.storage.base, lda: lda, b: b.storage.base, ldb: ldb,
                           beta: 0.5, c: ours.mutablePointer(), ldc: n, bias: bias.storage.base)
                ref.withUnsafeMutableBufferPointer { r in
                    Naive.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: 0.75,
                                a: a.scalars, lda: lda, b: b.scalars, ldb: ldb, beta: 0.5, c: r.baseAddress!, ldc: n)
                }
                let bs = bias.scalars, os = ours.scalars
                var worst: Float = 0
                for i in 0..<m { for j in 0..<n { worst = max(worst, abs(os[i * n + j] - (ref[i * n + j] + bs[j]))) } }
                #expect(worst < gemmTolerance(k) * Float(k).squareRoot() * 4, "\(isa) threads \(threads) beta 0.5: error \(worst)")
            }
        }
        // Empty depth: C = beta C + bias, A and B unread.
        var c = Tensor([1, 2, 3, 4, 5, 6], shape: [6])
        let nan = [Float](repeating: .nan, count: 4)
        Gemm.sgemm(m: 2, n: 3, k: 0, a: nan, b: nan, beta: 2, c: c.mutablePointer(), bias: [10, 20, 30])
        #expect(c.scalars == [12, 24, 36, 18, 30, 42])
    }

    /// The public entry (best kernel, or OpenBLAS without one) matches OpenBLAS with default
    /// leading dimensions, as a drop-in for `BLAS.sgemm`.
    @Test func publicEntryMatchesBLAS() {
        var rng = RandomGenerator(seed: 3)
        let (m, n, k) = (97, 130, 75)
        let x = Tensor.randomNormal([m, k], using: &rng), w = Tensor.randomNormal([n, k], using: &rng)
        var ours = Tensor.zeros([m, n]), blas = Tensor.zeros([m, n])
        let op = ours.mutablePointer(), bp = blas.mutablePointer()
        Gemm.sgemm(transposeB: true, m: m, n: n, k: k, a: x.storage.base, b: w.storage.base, c: op)
        BLAS.sgemm(transposeB: true, m: m, n: n, k: k, a: x.storage.base, b: w.storage.base, c: bp)
        #expect(relativeError(ours, blas) < 1e-5)
        #expect(relativeError(ours, x.matmul(w, transposeB: true)) < 1e-5)
    }

    /// alpha 0 and k 0 only scale C (beta 0: zero it, ignoring NaN); A and B, here NaN, are not read.
    @Test func alphaZeroAndEmptyDepthOnlyScaleC() throws {
        try #require(!Self.kernels.isEmpty)
        let nanA = [Float](repeating: .nan, count: 12), nanB = [Float](repeating: .nan, count: 12)
        for (alpha, k, beta) in [(Float(0), 3, Float(0)), (0, 3, 2), (1, 0, 0), (1.5, 0, -1)] {
            var c: [Float] = beta == 0 ? .init(repeating: .nan, count: 8) : (0..<8).map(Float.init)
            c.withUnsafeMutableBufferPointer {
                Gemm.sgemm(instructionSet: Self.kernels[0], threads: 1, transposeA: false, transposeB: false,
                           m: 2, n: 4, k: k, alpha: alpha, a: nanA, lda: max(k, 1), b: nanB, ldb: 4,
                           beta: beta, c: $0.baseAddress!, ldc: 4)
            }
            #expect(c == (0..<8).map { beta * Float($0) }.map { beta == 0 ? 0 : $0 }, "alpha \(alpha) k \(k) beta \(beta)")
        }
        // k 0 with default (zero) leading dimensions for A and B.
        var c = [Float](repeating: .nan, count: 6)
        c.withUnsafeMutableBufferPointer {
            Gemm.sgemm(instructionSet: Self.kernels[0], threads: 2, transposeA: false, transposeB: true, m: 2, n: 3, k: 0,
                       alpha: 1, a: nanA, lda: nil, b: nanB, ldb: nil, beta: 0, c: $0.baseAddress!, ldc: nil)
        }
        #expect(c == [Float](repeating: 0, count: 6))
    }

    /// The vectorised packer agrees with the portable one for AVX2's and AVX-512's panel widths
    /// (AVX-512's micro-kernel shares its template with AVX2's; its packing is checked here even
    /// on CPUs that cannot run it).
    @Test func vectorisedPackingMatchesPortable() throws {
        try #require(!Self.kernels.isEmpty)
        #expect(Gemm.packSelfTestMismatches() == 0)
    }

    /// `MASKDM_GEMM_ISA` picks a kernel the CPU runs (or OpenBLAS); other values are errors that
    /// name the variable, and a kernel the CPU lacks is refused with the ones it runs.
    @Test func environmentPicksTheKernel() throws {
        #expect(try Gemm.environmentInstructionSet(nil) == nil)
        #expect(try Gemm.environmentInstructionSet("  ") == nil)
        #expect(try Gemm.environmentInstructionSet("openblas") == Gemm.InstructionSet.none)
        let names: [Gemm.InstructionSet: String] = [.avx2: "AVX2", .avx512: "avx512", .avx512Emulated: "avx512-Emulated",
                                                      .avx512BF16: "AVX512-bf16"]
        for (isa, name) in names {
            if Gemm.isaSupported(isa) {
                #expect(try Gemm.environmentInstructionSet(name) == isa)
            } else {
                #expect { try Gemm.environmentInstructionSet(name) } throws: { error in
                    "\(error)".contains("MASKDM_GEMM_ISA") && "\(error)".contains("cannot run") && "\(error)".contains("openblas")
                }
            }
        }
        #expect { try Gemm.environmentInstructionSet("sse4") } throws: { error in
            "\(error)".contains("MASKDM_GEMM_ISA") && "\(error)".contains("'sse4'")
        }
        // The emulated twin runs wherever AVX2 does, and is never picked by itself.
        #expect(Gemm.isaSupported(.avx512Emulated) == Gemm.isaSupported(.avx2))
        #expect(maskdm_gemm_best_isa() != Int32(MASKDM_GEMM_ISA_AVX512_EMULATED.rawValue))
        #expect(maskdm_gemm_best_isa() != Int32(MASKDM_GEMM_ISA_AVX512_BF16.rawValue))   // opt-in only
        // Selecting a kernel the CPU lacks changes nothing; the selection stays the running kernel.
        #expect(maskdm_gemm_select_isa(Int32(MASKDM_GEMM_ISA_NONE.rawValue)) == 0)
        if Gemm.usesOwnKernels { #expect(maskdm_gemm_selected_isa() == Gemm.instructionSet.rawValue) }
    }

    /// Thread blocks are disjoint, cover C, and cut at micro-tile multiples.
    /// A right operand packed once (as attention packs a head's keys and values) and reused.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"),
          arguments: [GemmCase(m: 63, n: 600, k: 64, transposeB: true, padA: 3, padB: 5, padC: 1),
                      GemmCase(m: 40, n: 64, k: 600, padA: 2, padB: 7, beta: 1),
                      GemmCase(m: 600, n: 64, k: 40, transposeA: true, alpha: 0.5, beta: 0.5)])
    func prePackedRightOperandMatchesNaive(p: GemmCase) throws {
        try #require(Gemm.hasSerialKernel)
        let e = gemmRelativeError(p, seed: 11) { p, a, lda, b, ldb, c, ldc in
            let packed = TensorStorage(uninitializedCount: Gemm.packedBSize(n: p.n, k: p.k))
            let work = TensorStorage(uninitializedCount: Gemm.serialWorkspaceSize(m: p.m, n: p.n, k: p.k))
            withExtendedLifetime((packed, work)) {
                Gemm.packB(transposeB: p.transposeB, n: p.n, k: p.k, b: b, ldb: ldb, into: packed.mutableBase)
                for _ in 0..<2 where p.beta == 0 {      // reuse: a second product from the same packing
                    Gemm.serial(transposeA: p.transposeA, m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda,
                                packedB: packed.base, beta: 0, c: c, ldc: ldc, workspace: work.mutableBase)
                }
                if p.beta != 0 {
                    Gemm.serial(transposeA: p.transposeA, m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda,
                                packedB: packed.base, beta: p.beta, c: c, ldc: ldc, workspace: work.mutableBase)
                }
            }
        }
        #expect(e < gemmTolerance(p.k), "\(p): relative error \(e)")
    }

    /// A right operand packed for a kernel other than the selected one, that kernel named on the
    /// size, the pack and the products (as attention does, so that a selection meanwhile cannot
    /// mix two layouts), matches the naive product. The two kernels' panels differ (6x16 and 8x32
    /// tiles), so a call that ignored the named kernel would read the wrong layout.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"),
          arguments: [GemmCase(m: 63, n: 600, k: 64, transposeB: true, padA: 3, padB: 5, padC: 1),
                      GemmCase(m: 40, n: 64, k: 600, padA: 2, padB: 7, beta: 1)])
    func prePackedRightOperandForAnotherKernelMatchesNaive(p: GemmCase) throws {
        try #require(Gemm.hasSerialKernel)
        let other: Gemm.InstructionSet = Gemm.instructionSet == .avx2 ? .avx512Emulated : .avx2
        try #require(Gemm.isaSupported(other))
        let e = gemmRelativeError(p, seed: 13) { p, a, lda, b, ldb, c, ldc in
            let packed = TensorStorage(uninitializedCount: Gemm.packedBSize(n: p.n, k: p.k, instructionSet: other))
            let work = TensorStorage(uninitializedCount: Gemm.serialWorkspaceSize(m: p.m, n: p.n, k: p.k))
            withExtendedLifetime((packed, work)) {
                Gemm.packB(transposeB: p.transposeB, n: p.n, k: p.k, b: b, ldb: ldb, into: packed.mutableBase,
                           instructionSet: other)
                Gemm.serial(transposeA: p.transposeA, m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda,
                            packedB: packed.base, beta: p.beta, c: c, ldc: ldc, workspace: work.mutableBase,
                            instructionSet: other)
            }
        }
        #expect(e < gemmTolerance(p.k), "\(p): relative error \(e)")
    }

    /// A packed-B buffer sized for a depth holds every shallower pack, for every kernel (callers
    /// size one buffer for a family of depths: attention's last key block, a row split's last
    /// slab). The bf16 kernel's exact size shrinks at some larger depths (two depths per slot,
    /// rounded up per depth block: 1539 depths need 771 slots a column, 1540 only 770), so the
    /// size must be a bound that never decreases.
    @Test func packedBSizeNeverShrinksAsTheDepthGrows() {
        for isa in Gemm.InstructionSet.allCases where isa != .none {
            for n in [1, 33, 64] {
                var previous = 0
                for k in 1...3200 {
                    let size = Gemm.packedBSize(n: n, k: k, instructionSet: isa)
                    if size < previous { Issue.record("\(isa) n \(n): \(size) floats at k \(k) < \(previous) at k \(k - 1)"); break }
                    previous = size
                }
            }
        }
    }

    /// A ``Gemm/PackedMatrix`` product, on one and two threads, matches the naive product; the
    /// cases cover the serial path, a row split and a column split (few rows, wide B).
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"),
          arguments: [GemmCase(m: 257, n: 600, k: 64, transposeB: true, padA: 3, padB: 5, padC: 1),
                      GemmCase(m: 40, n: 1000, k: 300, padA: 2, padB: 7, beta: 1),
                      GemmCase(m: 600, n: 64, k: 40, transposeA: true, alpha: 0.5, beta: 0.5),
                      GemmCase(m: 5, n: 33, k: 17, transposeB: true)])
    func packedMatrixProductMatchesNaive(p: GemmCase) throws {
        try #require(Gemm.hasSerialKernel)
        for threads in [1, 2] {
            let e = gemmRelativeError(p, seed: 12) { p, a, lda, b, ldb, c, ldc in
                Parallel.$threads.withValue(threads) {
                    let packed = Gemm.PackedMatrix(transposeB: p.transposeB, n: p.n, k: p.k, b: b, ldb: ldb)
                    Gemm.sgemm(transposeA: p.transposeA, m: p.m, alpha: p.alpha, a: a, lda: lda, packedB: packed,
                               beta: p.beta, c: c, ldc: ldc)
                }
            }
            #expect(e < gemmTolerance(p.k), "\(p), \(threads) threads: relative error \(e)")
        }
    }

    /// With a bias and either beta, the packed product gives the very bits the unpacked one does
    /// (same blocks, same sums in the same order), whatever the threads; the packed copy does not
    /// follow later changes of B.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS"),
          arguments: [(514, 1536, 512), (48, 512, 2048), (257, 512, 1024), (7, 40, 9)])
    func packedMatrixProductIsBitIdenticalToUnpacked(m: Int, n: Int, k: Int) throws {
        try #require(Gemm.hasSerialKernel)
        var rng = RandomGenerator(seed: 5)
        let x = Tensor.randomNormal([m, k], using: &rng), w = Tensor.randomNormal([n, k], using: &rng)
        let bias = Tensor.randomNormal([n], using: &rng), c0 = Tensor.randomNormal([m, n], using: &rng)
        for threads in [1, 2] {
            for beta: Float in [0, 1] {
                Parallel.$threads.withValue(threads) {
                    var want = c0, got = c0
                    var wCopy = w
                    let packed = Gemm.PackedMatrix(transposeB: true, n: n, k: k, b: wCopy.mutablePointer())
                    Gemm.sgemm(transposeB: true, m: m, n: n, k: k, a: x.storage.base, b: w.storage.base, beta: beta,
                               c: want.mutablePointer(), bias: bias.storage.base)
                    wCopy.mutablePointer().update(repeating: .nan, count: n * k)    // the panels are a copy
                    Gemm.sgemm(m: m, a: x.storage.base, packedB: packed, beta: beta, c: got.mutablePointer(),
                               bias: bias.storage.base)
                    #expect(got.scalars == want.scalars, "m \(m) n \(n) k \(k) beta \(beta), \(threads) threads")
                    #expect(packed.byteCount >= n * k * 4)
                }
            }
        }
    }

    /// One workspace sized for (M, N, K) serves every smaller product: ragged attention tiles and
    /// thread chunks reuse it. Balanced cache blocks are not monotonic (192 rows pack as two
    /// 96-row blocks, 108 rows as one 108-row block), which once overflowed a tiled-attention
    /// workspace: a canary after the workspace must survive every product, and each must be right.
    @Test(.enabled(if: ownKernelsApply, "MASKDM_GEMM_ISA chose OpenBLAS")) func workspaceSizeBoundsEverySmallerProduct() throws {
        try #require(Gemm.hasSerialKernel)
        let (mm, nn, kk) = (192, 64, 256)
        let size = Gemm.serialWorkspaceSize(m: mm, n: nn, k: kk)
        let work = TensorStorage(uninitializedCount: size + 256)
        try withExtendedLifetime(work) {
            for (m, k) in [(108, 256), (192, 256), (150, 200), (97, 44), (144, 129), (6, 256)] {
                for i in 0..<256 { work.mutableBase[size + i] = 12345 }
                let p = GemmCase(m: m, n: nn, k: k)
                let e = gemmRelativeError(p, seed: 3) { p, a, lda, b, ldb, c, ldc in
                    Gemm.serial(m: p.m, n: p.n, k: p.k, a: a, lda: lda, b: b, ldb: ldb, c: c, ldc: ldc, workspace: work.mutableBase)
                }
                #expect(e < gemmTolerance(k), "\(p): relative error \(e)")
                try #require((0..<256).allSatisfy { work.base[size + $0] == 12345 }, "(\(m), \(nn), \(k)) wrote past a (\(mm), \(nn), \(kk)) workspace")
            }
        }
    }

    @Test func deepProductsPackBInCacheSizedSlabs() {
        #expect(GemmSplit.slabDepth(n: 512, k: 512) == 512)                     // fits: one slab
        #expect(GemmSplit.slabDepth(n: 300, k: 4000) == 2000)                   // two even slabs
        let d = GemmSplit.slabDepth(n: 2048, k: 4112)                            // fc2's weight gradient
        #expect(d * 2048 <= GemmSplit.packedSlabFloats && d >= 256 && (4112 + d - 1) / d * d - 4112 < d)
        #expect(GemmSplit.slabDepth(n: 100_000, k: 1000) == 250)                // 256-deep floor, 4 even slabs
    }

    @Test(arguments: [(600, 260, 512), (33, 2048, 64), (5, 5, 5), (700, 7, 100), (7, 17, 4000), (100, 900, 64)])
    func splitCoversCOnce(m: Int, n: Int, k: Int) throws {
        let isa = try #require(Self.kernels.first)
        for threads in [1, 2, 3] {
            let split = GemmSplit(isa: isa, m: m, n: n, k: k, threads: threads)
            var hits = [Int](repeating: 0, count: m * n)
            for i in 0..<split.chunks {
                let (rows, cols) = split.block(i)
                #expect(rows.count <= split.maxRows && cols.count <= split.maxColumns)
                for r in rows { for c in cols { hits[r * n + c] += 1 } }
                #expect(rows.lowerBound % (split.byRows ? split.unit : 1) == 0)
                #expect(cols.lowerBound % (split.byRows ? 1 : split.unit) == 0)
            }
            #expect(hits.allSatisfy { $0 == 1 }, "m \(m) n \(n) threads \(threads)")
            if threads > 1 && m == 600 { #expect(split.byRows, "tall products split rows") }
            if threads > 1 && m == 33 { #expect(!split.byRows, "short, wide products split columns") }
            if split.byRows {   // the shared packed B's column ranges also cover B once
                var packed = [Int](repeating: 0, count: n)
                for i in 0..<split.chunks { for j in split.packingColumns(i) { packed[j] += 1 } }
                #expect(packed.allSatisfy { $0 == 1 })
            }
        }
    }
}

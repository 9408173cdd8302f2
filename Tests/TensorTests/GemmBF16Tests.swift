import CKernels
import Foundation
import Testing
@testable import Tensor

/// The opt-in mixed-precision kernel (``Gemm/InstructionSet/avx512BF16``): it must compute exactly
/// the product of the bf16-rounded operands, summed in fp32. So its result is compared with the
/// naive Double product of operands rounded by ``Gemm/roundedToBF16(_:)`` at the fp32 tolerance,
/// not at a loose bf16 one: a wrong rounding, a lost or swapped half of a depth pair, or a
/// misplaced panel offset would all show. Runs on CPUs with AVX512_BF16; the rounding itself is
/// checked everywhere.
@Suite struct GemmBF16Tests {
    static let available = Gemm.isaSupported(.avx512BF16)

    /// Rounding: nearest with ties to even, zero and denormals to a signed zero, NaN kept,
    /// overflow to infinity (the rules of VCVTNEPS2BF16).
    /// The slowdown warning's rule: a warning exactly when the bf16 dot product runs no faster
    /// than the fp32 multiply-add, naming both rates; none where either rate is missing.
    @Test func slowdownWarningOnlyWhenBF16IsNoFaster() throws {
        let slow = try #require(Gemm.bf16SlowdownWarning(bf16: 81.2, fp32: 167.9))   // the Intel Xeon VM
        #expect(slow.contains("81 GFLOP/s") && slow.contains("168 for fp32"))
        #expect(Gemm.bf16SlowdownWarning(bf16: 240, fp32: 118) == nil)               // a Zen 4: twice the rate
        #expect(Gemm.bf16SlowdownWarning(bf16: 100, fp32: 100) != nil)
        #expect(Gemm.bf16SlowdownWarning(bf16: 0, fp32: 100) == nil)
        #expect(Gemm.bf16SlowdownWarning(bf16: 100, fp32: 0) == nil)
        if !Self.available { #expect(Gemm.bf16SlowdownWarning() == nil) }
    }

    /// Measured rates: positive for every kernel this CPU runs, 0 for the others, for OpenBLAS
    /// and for an empty loop. (Positive, not a speed: with the suite's other tests on the same
    /// cores a short loop can read under 1 GFLOP/s, as the emulated kernel once did in CI.)
    @Test func measuredPeakIsPositiveExactlyForRunnableKernels() {
        for isa in Gemm.InstructionSet.allCases {
            let rate = Gemm.measuredPeakGFLOPS(of: isa, iterations: 20_000, runs: 1)
            if isa != .none && Gemm.isaSupported(isa) {
                #expect(rate > 0 && rate.isFinite, "\(isa.environmentName): \(rate) GFLOP/s")
            } else {
                #expect(rate == 0, "\(isa.environmentName): \(rate) GFLOP/s")
            }
        }
        #expect(Gemm.measuredPeakGFLOPS(of: .avx2, iterations: 0) == 0)
    }

    @Test func roundingFollowsTheHardwareRules() {
        let ulp = Float(1) / 128    // bf16 spacing in [1, 2)
        #expect(Gemm.roundedToBF16(1) == 1)
        #expect(Gemm.roundedToBF16(1 + ulp / 2) == 1)                         // tie: to even (down)
        #expect(Gemm.roundedToBF16(1 + 1.5 * ulp) == 1 + 2 * ulp)             // tie: to even (up)
        #expect(Gemm.roundedToBF16(1 + ulp / 2 + ulp / 1024) == 1 + ulp)      // above the tie
        #expect(Gemm.roundedToBF16(-3.1415927) == -3.140625)
        let denormal = Float(bitPattern: 0x0001_16c2)                       // about 1e-40
        #expect(denormal.isSubnormal)
        #expect(Gemm.roundedToBF16(denormal) == 0 && Gemm.roundedToBF16(denormal).sign == .plus)
        #expect(Gemm.roundedToBF16(-denormal) == 0 && Gemm.roundedToBF16(-denormal).sign == .minus)
        #expect(Gemm.roundedToBF16(.greatestFiniteMagnitude) == .infinity)
        #expect(Gemm.roundedToBF16(-.infinity) == -.infinity)
        #expect(Gemm.roundedToBF16(.nan).isNaN)
        #expect(Gemm.roundedToBF16(Float(bitPattern: 0x7f80_0001)).isNaN)      // signalling NaN stays NaN
    }

    /// The vectorised packer (the CPU's conversion instruction) gives the portable packer's slots
    /// for both panel widths, every layout and ragged shapes, on ties, denormals, infinities, NaN.
    @Test(.enabled(if: available, "this CPU has no AVX512_BF16"))
    func vectorisedPackingMatchesPortable() {
        #expect(Gemm.bf16PackSelfTestMismatches() == 0)
    }

    /// Error of the bf16 kernel against the Double product of the bf16-rounded operands.
    static func error(_ p: GemmCase, threads: Int, seed: UInt64) -> Float {
        gemmRelativeError(p, seed: seed, rounding: Gemm.roundedToBF16) { p, a, lda, b, ldb, c, ldc in
            Gemm.sgemm(instructionSet: .avx512BF16, threads: threads, transposeA: p.transposeA, transposeB: p.transposeB,
                       m: p.m, n: p.n, k: p.k, alpha: p.alpha, a: a, lda: lda, b: b, ldb: ldb, beta: p.beta, c: c, ldc: ldc)
        }
    }

    /// Ragged shapes (odd depths: a half-empty last pair), every transpose, padding, alpha and
    /// beta, one and two threads.
    @Test(.enabled(if: available, "this CPU has no AVX512_BF16"),
          arguments: [(false, false), (false, true), (true, false), (true, true)])
    func equalsTheProductOfRoundedOperands(transposeA: Bool, transposeB: Bool) {
        let shapes = [(1, 1, 1), (3, 17, 15), (33, 65, 31), (257, 33, 65), (15, 513, 257), (65, 31, 513), (17, 257, 3)]
        let alphas: [Float] = [1, -0.75, 2.5], betas: [Float] = [0, 1, 0.5]
        for (i, (m, n, k)) in shapes.enumerated() {
            let p = GemmCase(m: m, n: n, k: k, transposeA: transposeA, transposeB: transposeB,
                             padA: i % 3 == 0 ? 0 : 5, padB: i % 4 == 1 ? 0 : 3, padC: i % 2 == 0 ? 0 : 7,
                             alpha: alphas[i % 3], beta: betas[(i / 3) % 3])
            for threads in [1, 2] {
                let e = Self.error(p, threads: threads, seed: UInt64(i))
                #expect(e < gemmTolerance(k), "threads \(threads): \(p): relative error \(e)")
            }
        }
    }

    /// Several depth blocks (beta applies once; odd block depths), row blocks, the column block
    /// with a ragged rest, and deep row-split products whose shared packed B goes in K slabs: the
    /// pair layout's offsets in every packed buffer.
    @Test(.enabled(if: available, "this CPU has no AVX512_BF16"),
          arguments: [GemmCase(m: 300, n: 40, k: 1701, beta: 1), GemmCase(m: 3, n: 4133, k: 9, padC: 2, beta: 0.5),
                      GemmCase(m: 700, n: 20, k: 21, transposeA: true, transposeB: true, alpha: -1, beta: 0),
                      GemmCase(m: 100, n: 300, k: 4001, transposeA: true, padA: 3, padB: 1, padC: 2, beta: 0.5),
                      GemmCase(m: 528, n: 600, k: 3001, transposeB: true, padB: 5, alpha: 0.5, beta: 0)])
    func equalsTheProductOfRoundedOperandsAcrossBlocks(p: GemmCase) {
        let e = Self.error(p, threads: 2, seed: 7)
        #expect(e < gemmTolerance(p.k), "\(p): relative error \(e)")
    }

    /// The packed-B entry points on the bf16 kernel (as sampling's packed weights use them): B packed
    /// in two column ranges, out of order, then C computed in two column ranges from it (one
    /// starting at a panel past the first), with K odd and, in the first case, over several depth
    /// blocks: the slot offsets of a shared packed B.
    @Test(.enabled(if: available, "this CPU has no AVX512_BF16"),
          arguments: [GemmCase(m: 37, n: 100, k: 1601, transposeB: true, padA: 2, padB: 3, padC: 1, alpha: 0.5, beta: 0.5),
                      GemmCase(m: 70, n: 64, k: 33, transposeA: true)])
    func packedRightOperandInColumnRanges(p: GemmCase) {
        let isa = Int32(MASKDM_GEMM_ISA_AVX512_BF16.rawValue)
        let split = 32   // a panel boundary
        let e = gemmRelativeError(p, seed: 13, rounding: Gemm.roundedToBF16) { p, a, lda, b, ldb, c, ldc in
            let packed = TensorStorage(uninitializedCount: Int(maskdm_sgemm_packed_b_size(isa, Int32(p.n), Int32(p.k))))
            let work = TensorStorage(uninitializedCount: Int(maskdm_sgemm_workspace_size(Int32(p.m), Int32(p.n), Int32(p.k))))
            withExtendedLifetime((packed, work)) {
                for (j0, j1) in [(split, p.n), (0, split)] {
                    maskdm_sgemm_pack_b(isa, p.transposeB ? 1 : 0, Int32(p.n), Int32(p.k), b, Int32(ldb), Int32(j0), Int32(j1),
                                        packed.mutableBase)
                }
                for (j0, j1) in [(0, split), (split, p.n)] {
                    maskdm_sgemm_packed_b_columns(isa, p.transposeA ? 1 : 0, Int32(p.m), Int32(p.n), Int32(j0), Int32(j1), Int32(p.k),
                                                  p.alpha, a, Int32(lda), packed.base, p.beta, c, Int32(ldc), nil, work.mutableBase)
                }
            }
        }
        #expect(e < gemmTolerance(p.k), "\(p): relative error \(e)")
    }

    /// Against the full-precision product the error is bf16's (8-bit mantissas), far above fp32's:
    /// the kernel really rounds (a kernel that silently ran fp32 would pass the tests above only
    /// if it rounded too, and would fail this one's lower bound).
    @Test(.enabled(if: available, "this CPU has no AVX512_BF16"))
    func differsFromFullPrecisionByBF16Rounding() {
        let (m, n, k) = (64, 96, 256)
        var rng = RandomGenerator(seed: 9)
        let a = (0..<m * k).map { _ in rng.nextNormal() }, b = (0..<k * n).map { _ in rng.nextNormal() }
        var ours = [Float](repeating: 0, count: m * n), full = ours
        ours.withUnsafeMutableBufferPointer {
            Gemm.sgemm(instructionSet: .avx512BF16, threads: 1, transposeA: false, transposeB: false, m: m, n: n, k: k,
                       alpha: 1, a: a, lda: nil, b: b, ldb: nil, beta: 0, c: $0.baseAddress!, ldc: nil)
        }
        full.withUnsafeMutableBufferPointer {
            Naive.sgemm(transposeA: false, transposeB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b, ldb: n,
                        beta: 0, c: $0.baseAddress!, ldc: n)
        }
        let scale = full.map(abs).max()!
        let err = zip(ours, full).map { abs($0 - $1) }.max()! / scale
        #expect(err > 1e-4 && err < 2e-2, "relative error \(err) against fp32")
    }
}

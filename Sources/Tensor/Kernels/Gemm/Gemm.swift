import CKernels
import Foundation
import Synchronization

/// Fp32 matrix multiply on the library's own SIMD kernels (the `CKernels` C target), threaded
/// over disjoint blocks of C with ``parallelFor(_:grain:_:)``.
///
/// A drop-in for ``BLAS/sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``: same
/// labels, defaults and semantics. The kernel (AVX-512 or AVX2+FMA) is chosen at run time from
/// the CPU; on a CPU with neither, or in a debug build of the C kernels (see ``usesOwnKernels``),
/// calls go to OpenBLAS. Threads come from ``Parallel/threads`` (not OpenBLAS's setting), so
/// never call it from inside a `parallelFor` body.
///
/// ```swift
/// // y (M, N) = x (M, K) W^T, W stored (N, K) as in PyTorch's Linear.
/// Gemm.sgemm(transposeB: true, m: m, n: n, k: k, a: x, b: w, c: y)
/// ```
public enum Gemm {
    /// An instruction set of the GEMM kernels.
    public enum InstructionSet: Int32, Sendable, CaseIterable {
        /// No supported SIMD: ``Gemm`` forwards to OpenBLAS.
        case none = 0
        /// AVX2 + FMA, 256-bit vectors, 6x16 micro-tile.
        case avx2 = 1
        /// AVX-512F/VL, 512-bit vectors, an 8x32 or 14x32 micro-tile (see ``Gemm/Blocking``).
        case avx512 = 2
        /// The AVX-512 kernel's micro-tiles and cache blocks (in either ``Gemm/Blocking``) built
        /// from AVX2 + FMA instructions: slower than both real kernels and never chosen by itself. Select it
        /// (`MASKDM_GEMM_ISA=avx512-emulated`) to run every product through the AVX-512
        /// geometry (its panels, blocks and splits) on a CPU without AVX-512, e.g. the test suite.
        case avx512Emulated = 3
        /// Mixed precision on CPUs with AVX512_BF16 (Zen 4, Sapphire Rapids and later): both
        /// operands of every product are rounded to bf16 (8 mantissa bits, nearest even) as they
        /// are packed, and the pairwise products are summed in fp32; C, alpha, beta and the bias
        /// stay fp32, and so do the weights, gradients and optimizer state that callers keep.
        /// 8x32 micro-tile. Opt-in only (`MASKDM_GEMM_ISA=avx512-bf16`, ``Gemm/setPrecision(_:)``,
        /// or a run's `--precision bf16`): never chosen by itself.
        case avx512BF16 = 4

        /// The fp32 kernel of this one: ``avx512`` for ``avx512BF16`` (its fp32 twin), else itself.
        public var fullPrecision: InstructionSet { self == .avx512BF16 ? .avx512 : self }

        /// The value of `MASKDM_GEMM_ISA` that selects this kernel (`openblas` for ``none``).
        public var environmentName: String {
            switch self {
            case .none: "openblas"
            case .avx2: "avx2"
            case .avx512: "avx512"
            case .avx512Emulated: "avx512-emulated"
            case .avx512BF16: "avx512-bf16"
            }
        }
    }

    /// The kernel this process runs: the best one the CPU supports, unless the environment
    /// variable `MASKDM_GEMM_ISA` names another (see ``environmentInstructionSet(_:)``) or
    /// ``select(_:)`` / ``setPrecision(_:)`` chose one since. A value of the variable that is not
    /// a kernel name, or names one this CPU lacks, stops the process with that error on the
    /// first product.
    public static var instructionSet: InstructionSet {
        let chosen = selection.load(ordering: .relaxed)
        return chosen >= 0 ? InstructionSet(rawValue: chosen) ?? startingInstructionSet : startingInstructionSet
    }

    /// The kernel from the environment or the CPU, fixed at the first use (which also applies
    /// `MASKDM_GEMM_BLOCKING`).
    private static let startingInstructionSet: InstructionSet = {
        let chosen: InstructionSet
        do {
            chosen = try environmentInstructionSet() ?? InstructionSet(rawValue: maskdm_gemm_best_isa()) ?? .none
            if let b = try environmentBlocking() { _ = maskdm_gemm_select_blocking(b.rawValue) }
        } catch {
            fatalError("\(error)")
        }
        if chosen != .none { _ = maskdm_gemm_select_isa(chosen.rawValue) }
        return chosen
    }()

    /// How the ``InstructionSet/avx512`` kernel (and ``InstructionSet/avx512Emulated``) walks a
    /// product's cache blocks. The two blockings compute every entry in the same order, so a
    /// product's values do not depend on the choice, except in the last bit for entries of a tile
    /// cut short by C's edge when alpha is not 1 or beta not 0 or 1 (the library's layers use
    /// alpha 1 and beta 0 or 1, except attention's scaled scores). Only speed differs; each is
    /// tuned for one kind of CPU. The other kernels have one blocking each.
    public enum Blocking: Int32, Sendable, CaseIterable {
        /// An 8x32 micro-tile; each packed column panel of B stays in cache while the row panels
        /// of A stream past it. The default on AMD CPUs (tuned on a Zen 4: 32 KB L1d, 1 MB L2).
        case resident = 1
        /// A 14x32 micro-tile; each packed row panel of A stays in L1 while the column panels of
        /// a 512-column block of B (768 KB, held in L2) stream past it. The default on Intel CPUs
        /// (tuned on a Xeon of the Sapphire Rapids class: 48 KB L1d, 2 MB L2), where it runs the
        /// training step's products about 9% faster than ``resident``.
        case streamed = 2

        /// The value of `MASKDM_GEMM_BLOCKING` that selects this blocking.
        public var environmentName: String { self == .resident ? "resident" : "streamed" }

        /// The kernel code the C functions take for `isa` in this blocking.
        func code(_ isa: InstructionSet) -> Int32 { isa.rawValue | rawValue << 8 }
    }

    /// The blocking of the AVX-512 kernel's products: the CPU's default (``Blocking/streamed`` on
    /// Intel CPUs, ``Blocking/resident`` on others), unless `MASKDM_GEMM_BLOCKING` names the
    /// other (see ``environmentBlocking(_:)``; applied at the first product) or
    /// ``selectBlocking(_:)`` chose one since.
    public static var blocking: Blocking {
        _ = startingInstructionSet
        return Blocking(rawValue: maskdm_gemm_selected_blocking()) ?? .resident
    }

    /// The blocking this CPU runs unless told otherwise: ``Blocking/streamed`` on Intel CPUs,
    /// ``Blocking/resident`` on others.
    public static var defaultBlocking: Blocking { Blocking(rawValue: maskdm_gemm_default_blocking()) ?? .resident }

    /// Runs every later product of the AVX-512 kernel (and its emulated twin) in `blocking`,
    /// whatever `MASKDM_GEMM_BLOCKING` said: e.g. to compare the two on one machine. Call it
    /// between products. A ``PackedMatrix`` serves both blockings.
    public static func selectBlocking(_ blocking: Blocking) {
        _ = startingInstructionSet
        _ = maskdm_gemm_select_blocking(blocking.rawValue)
    }

    /// The blocking the environment variable `MASKDM_GEMM_BLOCKING` asks for: nil when it is
    /// unset or empty, ``Blocking/resident`` for `resident`, ``Blocking/streamed`` for
    /// `streamed`. Throws ``Gemm/InstructionSetError`` for another value.
    public static func environmentBlocking(
        _ value: String? = ProcessInfo.processInfo.environment["MASKDM_GEMM_BLOCKING"]) throws -> Blocking? {
        guard let raw = value?.trimmingCharacters(in: .whitespaces).lowercased(), !raw.isEmpty else { return nil }
        guard let b = Blocking.allCases.first(where: { $0.environmentName == raw }) else {
            throw InstructionSetError(description: "MASKDM_GEMM_BLOCKING: unknown blocking '\(value ?? "")'; use resident or streamed")
        }
        return b
    }

    /// The kernel ``select(_:)`` chose (its raw value), or -1.
    private static let selection = Atomic<Int32>(-1)

    /// Runs every later product on kernel `isa` (one of the own kernels, which this CPU must
    /// support), whatever `MASKDM_GEMM_ISA` said. Call it between products, not while one runs:
    /// e.g. before training starts. A ``PackedMatrix`` keeps the kernel it was packed for, and
    /// so does attention's scratch (its packs and products name the kernel read at its start).
    /// Throws ``InstructionSetError`` for ``InstructionSet/none``, a kernel this CPU lacks, or a
    /// build whose own kernels are off (``usesOwnKernels`` false).
    public static func select(_ isa: InstructionSet) throws {
        guard usesOwnKernels else {
            throw InstructionSetError(description: "Gemm.select(\(isa.environmentName)): the own GEMM kernels are off "
                                      + "(\(startingInstructionSet == .none ? "no AVX2 on this CPU or MASKDM_GEMM_ISA=openblas" : "a debug build of CKernels"))")
        }
        guard isa != .none, isaSupported(isa) else {
            throw InstructionSetError(description: "Gemm.select: this CPU cannot run the \(isa.environmentName) kernel; "
                                      + "it runs \(runnableKernelNames.joined(separator: ", "))")
        }
        _ = maskdm_gemm_select_isa(isa.rawValue)
        selection.store(isa.rawValue, ordering: .relaxed)
    }

    /// The `MASKDM_GEMM_ISA` names of the kernels this CPU runs (with `openblas`), sorted.
    static var runnableKernelNames: [String] {
        InstructionSet.allCases.filter { $0 == .none || isaSupported($0) }.map(\.environmentName).sorted()
    }

    /// The arithmetic of the matrix products: ``fp32`` or the opt-in ``bf16`` mixed precision.
    public enum Precision: String, Codable, Sendable, CaseIterable {
        /// Fp32 operands and sums (every kernel but ``InstructionSet/avx512BF16``).
        case fp32
        /// Bf16 operands, fp32 sums: the ``InstructionSet/avx512BF16`` kernel.
        case bf16
    }

    /// The precision of the products this process runs: bf16 when the own kernels are on and
    /// ``instructionSet`` is ``InstructionSet/avx512BF16``, else fp32 (OpenBLAS is fp32).
    public static var precision: Precision { usesOwnKernels && instructionSet == .avx512BF16 ? .bf16 : .fp32 }

    /// Runs every later product in `precision`, as ``select(_:)``: `.bf16` selects the
    /// ``InstructionSet/avx512BF16`` kernel; `.fp32` leaves an fp32 kernel (or OpenBLAS) as it is
    /// and replaces the bf16 one with the process's starting kernel when that is an fp32 one,
    /// else with its fp32 twin, ``InstructionSet/avx512``. Throws ``InstructionSetError`` when
    /// `.bf16` cannot run: the CPU lacks AVX512_BF16, or the own kernels are off.
    public static func setPrecision(_ wanted: Precision) throws {
        switch wanted {
        case .bf16:
            guard isaSupported(.avx512BF16) else {
                throw InstructionSetError(description: "precision bf16 needs a CPU with AVX512_BF16 (Zen 4, Sapphire Rapids "
                                          + "or later); this one runs \(runnableKernelNames.joined(separator: ", "))")
            }
            try select(.avx512BF16)
        case .fp32:
            guard Gemm.precision == .bf16 else { return }   // the process's, not the argument
            try select(startingInstructionSet.fullPrecision)
        }
    }

    /// The kernel the environment variable `MASKDM_GEMM_ISA` asks for: nil when it is unset or
    /// empty; `avx2`, `avx512`, `avx512-emulated` or `avx512-bf16` for that kernel, `openblas` to
    /// send every product to OpenBLAS (``InstructionSet/none``). Use it to compare the kernels on one machine
    /// (a Zen 4 CPU runs both). Throws ``Gemm/InstructionSetError`` for another value or a kernel
    /// this CPU lacks.
    public static func environmentInstructionSet(
        _ value: String? = ProcessInfo.processInfo.environment["MASKDM_GEMM_ISA"]) throws -> InstructionSet? {
        guard let raw = value?.trimmingCharacters(in: .whitespaces).lowercased(), !raw.isEmpty else { return nil }
        let named = Dictionary(uniqueKeysWithValues: InstructionSet.allCases.map { ($0.environmentName, $0) })
        guard let isa = named[raw] else {
            throw InstructionSetError(description:
                "MASKDM_GEMM_ISA: unknown kernel '\(value ?? "")'; use avx2, avx512, avx512-emulated, avx512-bf16 or openblas")
        }
        guard isa == .none || isaSupported(isa) else {
            throw InstructionSetError(description: "MASKDM_GEMM_ISA: this CPU cannot run the \(raw) kernel; it runs \(runnableKernelNames.joined(separator: ", "))")
        }
        return isa
    }

    /// A kernel that cannot run: a `MASKDM_GEMM_ISA` value that names no kernel or one this CPU
    /// lacks, or a ``select(_:)`` / ``setPrecision(_:)`` this CPU or build cannot honour.
    public struct InstructionSetError: Error, CustomStringConvertible, Sendable {
        /// The message, naming the variable and the kernels this CPU runs.
        public let description: String
    }

    /// True when ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` runs the own
    /// kernels: the CPU has one of them and the C target was optimised. A debug (-O0) build of
    /// the kernels is ~150x slower than OpenBLAS, so it forwards to OpenBLAS instead.
    public static let usesOwnKernels = startingInstructionSet != .none && maskdm_gemm_kernels_optimized() != 0

    /// True when this CPU can run kernel `isa` (`.none` is never runnable).
    public static func isaSupported(_ isa: InstructionSet) -> Bool { maskdm_gemm_isa_supported(isa.rawValue) != 0 }

    /// One core's measured multiply-add rate for kernel `isa`, in GFLOP/s: the best of `runs`
    /// runs of its instruction in a loop of `iterations` trips (12 independent chains; the
    /// default takes a few milliseconds a run). Fp32 FMAs for the fp32 kernels (AVX2's for
    /// ``InstructionSet/avx512Emulated``), pairwise bf16 dot products for
    /// ``InstructionSet/avx512BF16``; 0 when this CPU lacks `isa` or for ``InstructionSet/none``.
    /// Run it on an otherwise idle core: it is a rate, not a property of the CPU model.
    public static func measuredPeakGFLOPS(of isa: InstructionSet, iterations: Int = 400_000, runs: Int = 3) -> Double {
        guard isa != .none, isaSupported(isa), iterations > 0 else { return 0 }
        var best = 0.0
        for _ in 0..<max(1, runs) {
            let start = DispatchTime.now().uptimeNanoseconds
            let flops = maskdm_fma_peak_flops(isa.rawValue, iterations)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if seconds > 0 { best = max(best, flops / seconds / 1e9) }
        }
        return best
    }

    /// A warning for a user about to run bf16 products on this CPU, or nil: the CPU runs
    /// AVX512_BF16, but its bf16 dot product is measured no faster than the best fp32 kernel's
    /// multiply-add (one core each, about 20 ms). Where that holds, the mixed-precision
    /// products run slower than fp32 ones (seen on an Intel Xeon VM: dot products at 81 GFLOP/s
    /// a core against 168 for fp32, and a training step 1.3x slower in bf16). nil also when the
    /// CPU lacks AVX512_BF16 (``setPrecision(_:)`` says so itself).
    public static func bf16SlowdownWarning() -> String? {
        guard isaSupported(.avx512BF16) else { return nil }
        let fp32Kernel: InstructionSet = isaSupported(.avx512) ? .avx512 : .avx2
        return bf16SlowdownWarning(bf16: measuredPeakGFLOPS(of: .avx512BF16),
                                   fp32: measuredPeakGFLOPS(of: fp32Kernel))
    }

    /// ``bf16SlowdownWarning()`` for measured rates (GFLOP/s per core): nil unless the bf16
    /// rate is at most the fp32 one.
    static func bf16SlowdownWarning(bf16: Double, fp32: Double) -> String? {
        guard bf16 > 0, fp32 > 0, bf16 <= fp32 else { return nil }
        return String(format: "on this CPU the bf16 dot product runs at %.0f GFLOP/s a core against %.0f for fp32 "
                      + "multiply-adds, so bf16 products will likely be slower than fp32 ones", bf16, fp32)
    }

    /// Floats on which the vectorised packer differs from the portable one over every kernel's
    /// panel widths (a self-test; -1 without AVX2).
    static func packSelfTestMismatches() -> Int { Int(maskdm_gemm_pack_self_test()) }

    /// Slots on which the bf16 packer's vectorised paths differ from its portable one (a
    /// self-test; -1 without AVX512_BF16).
    static func bf16PackSelfTestMismatches() -> Int { Int(maskdm_gemm_pack_bf16_self_test()) }

    /// `x` rounded to bf16 as the ``InstructionSet/avx512BF16`` kernel rounds its operands
    /// (nearest, ties to even; zero and denormals to a signed zero; NaN stays NaN), as a Float.
    public static func roundedToBF16(_ x: Float) -> Float {
        Float(bitPattern: UInt32(maskdm_bf16_round(x)) << 16)
    }

    /// Products with fewer multiply-adds (m n k) than this run on one thread.
    static let singleThreadWork = 64 * 64 * 64

    /// Per-call packing buffers.
    static let workspaces = GemmWorkspacePool(capacity: 2)

    /// `C = alpha * op(A) op(B) + beta * C` for row-major matrices; `op` transposes when asked.
    /// `A` is (M, K) after `op`, `B` is (K, N) after `op`, `C` is (M, N).
    /// Leading dimensions default to tight packing of the stored (pre-`op`) matrices.
    /// `beta == 0` never reads C (it may hold NaN); `alpha == 0` or `k == 0` never reads A or B.
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
              b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: nil)
    }

    /// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` plus a bias row:
    /// `C = alpha * op(A) op(B) + beta * C + bias` with `bias` (N values, or nil) added to every
    /// row of C. The own kernels add it as they store C, so a linear layer needs no separate pass
    /// writing the bias into C; with `beta == 0` the result equals broadcasting the bias into C and
    /// multiplying with `beta == 1`.
    ///
    /// ```swift
    /// // y (M, N) = x (M, K) W^T + b
    /// Gemm.sgemm(transposeB: true, m: m, n: n, k: k, a: x, b: w, c: y, bias: b)
    /// ```
    public static func sgemm(transposeA: Bool = false, transposeB: Bool = false,
                             m: Int, n: Int, k: Int, alpha: Float = 1,
                             a: UnsafePointer<Float>, lda: Int? = nil,
                             b: UnsafePointer<Float>, ldb: Int? = nil,
                             beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                             bias: UnsafePointer<Float>?) {
        guard usesOwnKernels else {
            BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            if let bias { Kernels.addToRows(bias, c, rows: m, cols: n, ld: ldc) }
            return
        }
        sgemm(instructionSet: instructionSet, threads: Parallel.threads,
              transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, bias: bias)
    }

    /// The fp32 kernel behind ``instructionSet``: the same kernel, except that the opt-in
    /// ``InstructionSet/avx512BF16`` gives way to ``InstructionSet/avx512`` (its fp32 twin).
    /// Products whose result must not change with the training precision (FID features, say)
    /// run on it through ``sgemmFullPrecision(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)``.
    public static var fullPrecisionInstructionSet: InstructionSet { instructionSet.fullPrecision }

    /// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` in fp32 whatever
    /// `MASKDM_GEMM_ISA` selects: on ``fullPrecisionInstructionSet``, or OpenBLAS where the own
    /// kernels are off. Same labels, defaults and semantics.
    public static func sgemmFullPrecision(transposeA: Bool = false, transposeB: Bool = false,
                                          m: Int, n: Int, k: Int, alpha: Float = 1,
                                          a: UnsafePointer<Float>, lda: Int? = nil,
                                          b: UnsafePointer<Float>, ldb: Int? = nil,
                                          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil) {
        guard usesOwnKernels else {
            BLAS.sgemm(transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
                       a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        sgemm(instructionSet: fullPrecisionInstructionSet, threads: Parallel.threads,
              transposeA: transposeA, transposeB: transposeB, m: m, n: n, k: k, alpha: alpha,
              a: a, lda: lda, b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
    }

    /// ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:bias:)`` on a given kernel
    /// (which the CPU must support), thread count and blocking (nil: the process's).
    static func sgemm(instructionSet isa: InstructionSet, threads: Int, blocking: Blocking? = nil,
                      transposeA: Bool, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float,
                      a: UnsafePointer<Float>, lda: Int?, b: UnsafePointer<Float>, ldb: Int?,
                      beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int?, bias: UnsafePointer<Float>? = nil) {
        precondition(m >= 0 && n >= 0 && k >= 0, "Gemm.sgemm: negative size m \(m), n \(n), k \(k)")
        if m == 0 || n == 0 { return }
        let la = lda ?? (transposeA ? m : k)
        let lb = ldb ?? (transposeB ? k : n)
        let lc = ldc ?? n
        precondition(la >= (transposeA ? m : k) && lb >= (transposeB ? k : n) && lc >= n,
                     "Gemm.sgemm: leading dimensions lda \(la), ldb \(lb), ldc \(lc) too small for "
                     + "A \(transposeA ? "(\(k), \(m))" : "(\(m), \(k))"), "
                     + "B \(transposeB ? "(\(n), \(k))" : "(\(k), \(n))"), C (\(m), \(n))")
        precondition(max(m, n, k, la, lb, lc) <= Int(Int32.max), "Gemm.sgemm: sizes exceed Int32")
        precondition(maskdm_gemm_isa_supported(isa.rawValue) != 0, "Gemm.sgemm: CPU lacks \(isa)")

        let code = blocking?.code(isa) ?? isa.rawValue
        let plan = GemmSplit(code: code, m: m, n: n, k: k, threads: threads)
        let perChunk = (maskdm_sgemm_workspace_size(Int32(plan.maxRows), Int32(plan.maxColumns), Int32(k)) + 15) / 16 * 16
        let (ta, tb): (Int32, Int32) = (transposeA ? 1 : 0, transposeB ? 1 : 0)
        let ap = SendablePointer(a), bp = SendablePointer(b), cp = SendablePointer(c)
        let biasPointer = bias.map { SendablePointer($0) }
        if plan.chunks > 1 && plan.byRows {
            // Row blocks share one packed B: the threads pack disjoint column ranges of it, then
            // each multiplies its rows of A by all of it (two passes: no barrier inside a pass).
            // A deep product (a weight gradient sums over every token: K = B * T) goes in slabs of
            // K whose packed B stays cache-sized, instead of packing all of B up front (33 MB for
            // the small model's fc2 at 4112 tokens, more than the L3).
            let slab = GemmSplit.slabDepth(n: n, k: k)
            let packed = (maskdm_sgemm_packed_b_size(code, Int32(n), Int32(slab)) + 15) / 16 * 16
            let aDepthStride = transposeA ? la : 1, bDepthStride = transposeB ? 1 : lb
            workspaces.withBuffer(floats: packed + perChunk * plan.chunks) { workspace in
                let wp = SendablePointer(workspace)
                for k0 in stride(from: 0, to: k, by: slab) {
                    let depth = min(slab, k - k0)
                    let slabBeta = k0 == 0 ? beta : 1
                    parallelFor(plan.chunks) { range in
                        for chunk in range {
                            let columns = plan.packingColumns(chunk)
                            maskdm_sgemm_pack_b(code, tb, Int32(n), Int32(depth), bp.base + k0 * bDepthStride, Int32(lb),
                                                Int32(columns.lowerBound), Int32(columns.upperBound), wp.base)
                        }
                    }
                    parallelFor(plan.chunks) { range in
                        for chunk in range {
                            let rows = plan.block(chunk).rows
                            if rows.isEmpty { continue }
                            maskdm_sgemm_packed_b(code, ta, Int32(rows.count), Int32(n), Int32(depth), alpha,
                                                  ap + rows.lowerBound * (transposeA ? 1 : la) + k0 * aDepthStride, Int32(la),
                                                  wp.base, slabBeta, cp + rows.lowerBound * lc, Int32(lc),
                                                  k0 == 0 ? biasPointer?.base : nil, wp + packed + chunk * perChunk)
                        }
                    }
                }
            }
            return
        }
        forEachBlock(of: plan, workspaceFloats: perChunk) { rows, columns, workspace in
            // Block origin in A (row rows.lowerBound of op(A)) and B (column columns.lowerBound of op(B)).
            maskdm_sgemm_block_isa(code, ta, tb, Int32(rows.count), Int32(columns.count), Int32(k), alpha,
                                   ap + rows.lowerBound * (transposeA ? 1 : la), Int32(la),
                                   bp + columns.lowerBound * (transposeB ? lb : 1), Int32(lb), beta,
                                   cp + rows.lowerBound * lc + columns.lowerBound, Int32(lc),
                                   biasPointer.map { $0 + columns.lowerBound }, workspace)
        }
    }

    /// Runs `body(rows, columns, workspace)` for every non-empty block of `plan`, in parallel,
    /// each with its own `perChunk` floats of workspace.
    static func forEachBlock(of plan: GemmSplit, workspaceFloats perChunk: Int,
                             _ body: (Range<Int>, Range<Int>, UnsafeMutablePointer<Float>) -> Void) {
        workspaces.withBuffer(floats: perChunk * plan.chunks) { workspace in
            let wp = SendablePointer(workspace)
            parallelFor(plan.chunks) { range in
                for chunk in range {
                    let (rows, columns) = plan.block(chunk)
                    if rows.isEmpty || columns.isEmpty { continue }
                    body(rows, columns, wp + chunk * perChunk)
                }
            }
        }
    }
}

/// How ``Gemm`` splits C (M, N) into one block per thread, cutting at micro-tile multiples.
///
/// Row blocks share one packed B (each thread packs a column range of it first), so a row split
/// packs nothing twice; it is used whenever every thread gets at least `minRowTiles` row tiles.
/// Fewer rows than that would stream all of B for a thin sliver of C, so short, wide products
/// split columns instead (each thread then packs all of the small A).
struct GemmSplit {
    /// Row tiles per thread below which a product is split by columns.
    static let minRowTiles = 8
    /// Number of blocks (1 for small products).
    let chunks: Int
    /// True: blocks are row ranges of C; false: column ranges.
    let byRows: Bool
    let m: Int, n: Int, unit: Int, columnUnit: Int
    /// Largest block extent along each dimension (for workspace sizes).
    var maxRows: Int { byRows ? extent(m) : m }
    var maxColumns: Int { byRows ? n : extent(n) }

    init(isa: Gemm.InstructionSet, m: Int, n: Int, k: Int, threads: Int) {
        self.init(code: isa.rawValue, m: m, n: n, k: k, threads: threads)
    }

    /// The split for a kernel code (an instruction set, optionally with a blocking: see
    /// ``Gemm/Blocking``), whose micro-tile sets the units. `byColumns`: always column ranges
    /// (for callers whose B cannot be packed once and shared, as a convolution's im2col operand).
    init(code: Int32, m: Int, n: Int, k: Int, threads: Int, byColumns: Bool = false) {
        var mr: Int32 = 0, nr: Int32 = 0
        maskdm_gemm_micro_tile(code, &mr, &nr)
        self.m = m
        self.n = n
        let rowTiles = (m + Int(mr) - 1) / Int(mr), columnTiles = (n + Int(nr) - 1) / Int(nr)
        let byRows = !byColumns && (rowTiles >= GemmSplit.minRowTiles * threads || columnTiles < 2)
        self.byRows = byRows
        unit = Int(byRows ? mr : nr)
        columnUnit = Int(nr)
        let tiles = byRows ? rowTiles : columnTiles
        let small = Double(m) * Double(n) * Double(k) < Double(Gemm.singleThreadWork)
        chunks = small ? 1 : max(1, min(threads, tiles))
    }

    /// Start of block `i` along a dimension of size `size` (whole micro-tiles, balanced).
    private func cut(_ i: Int, _ size: Int) -> Int {
        let tiles = (size + unit - 1) / unit
        return min(size, i * tiles / chunks * unit)
    }

    private func extent(_ size: Int) -> Int {
        (0..<chunks).map { cut($0 + 1, size) - cut($0, size) }.max() ?? size
    }

    /// Columns of B that thread `i` packs for the shared packed B of a row split (cut at NR multiples).
    func packingColumns(_ i: Int) -> Range<Int> {
        let tiles = (n + columnUnit - 1) / columnUnit
        return min(n, i * tiles / chunks * columnUnit)..<min(n, (i + 1) * tiles / chunks * columnUnit)
    }

    /// Floats of packed B a row split keeps per slab of K (4 MiB: an eighth of this machine's L3,
    /// room for both threads' A blocks beside it).
    static let packedSlabFloats = 1 << 20

    /// Depth of the K slabs a row split packs B in: all of K when the packed (K, N) B fits in
    /// ``packedSlabFloats``, else the most that does (at least 256, a multiple of 256 so the
    /// kernel's depth blocks are not slivers), spread evenly over the slabs.
    static func slabDepth(n: Int, k: Int) -> Int {
        if k * n <= packedSlabFloats { return max(k, 1) }
        let depth = max(256, packedSlabFloats / max(n, 1) / 256 * 256)
        // Spread K evenly over the slabs so the last one is not a sliver.
        let slabs = (k + depth - 1) / depth
        return (k + slabs - 1) / slabs
    }

    /// Rows and columns of C in block `i`.
    func block(_ i: Int) -> (rows: Range<Int>, columns: Range<Int>) {
        byRows ? (cut(i, m)..<cut(i + 1, m), 0..<n) : (0..<m, cut(i, n)..<cut(i + 1, n))
    }
}

extension Gemm {
    /// True when ``serial(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:workspace:)``
    /// is available (the CPU has a supported SIMD kernel). Kernels that want to run many small
    /// products in parallel (one per attention head) check this; without it they must call the
    /// threaded ``sgemm(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:)`` serially.
    public static var hasSerialKernel: Bool { usesOwnKernels }

    /// Floats of workspace ``serial(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:workspace:)``
    /// needs for any product up to (m, n, k), i.e. every smaller ragged tile too (allocate it
    /// 64-byte aligned, e.g. a ``TensorStorage``).
    public static func serialWorkspaceSize(m: Int, n: Int, k: Int) -> Int {
        maskdm_sgemm_workspace_size(Int32(m), Int32(n), Int32(k))
    }

    /// Single-threaded product on this thread, safe to call from a ``parallelFor(_:grain:_:)``
    /// body (each concurrent caller with its own workspace), on kernel `isa` (the selected one by
    /// default). Requires ``hasSerialKernel``.
    @inlinable
    public static func serial(transposeA: Bool = false, transposeB: Bool = false, m: Int, n: Int, k: Int,
                              alpha: Float = 1, a: UnsafePointer<Float>, lda: Int? = nil,
                              b: UnsafePointer<Float>, ldb: Int? = nil, beta: Float = 0,
                              c: UnsafeMutablePointer<Float>, ldc: Int? = nil, workspace: UnsafeMutablePointer<Float>,
                              instructionSet isa: InstructionSet = instructionSet) {
        if m == 0 || n == 0 { return }
        maskdm_sgemm_block_isa(isa.rawValue, transposeA ? 1 : 0, transposeB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                               a, Int32(lda ?? (transposeA ? m : k)), b, Int32(ldb ?? (transposeB ? k : n)), beta,
                               c, Int32(ldc ?? n), nil, workspace)
    }
}

extension Gemm {
    /// Floats of a buffer holding op(B) (K, N) packed by
    /// ``packB(transposeB:n:k:b:ldb:into:instructionSet:)`` for kernel `isa` (the selected one by
    /// default).
    public static func packedBSize(n: Int, k: Int, instructionSet isa: InstructionSet = instructionSet) -> Int {
        maskdm_sgemm_packed_b_size(isa.rawValue, Int32(n), Int32(k))
    }

    /// Packs all of op(B) (K, N) once into `packed` (64-byte aligned,
    /// ``packedBSize(n:k:instructionSet:)`` floats) so that several products with the same right
    /// operand skip re-packing it (attention reuses a head's keys and values for every query
    /// block). The layout is kernel `isa`'s (the selected one by default): a caller that packs and
    /// multiplies over a while reads ``instructionSet`` once and passes it to the size, the pack
    /// and every product, so that a ``select(_:)`` meanwhile cannot mix two layouts.
    /// Single-threaded; requires ``hasSerialKernel``.
    public static func packB(transposeB: Bool, n: Int, k: Int, b: UnsafePointer<Float>, ldb: Int? = nil,
                             into packed: UnsafeMutablePointer<Float>, instructionSet isa: InstructionSet = instructionSet) {
        precondition(hasSerialKernel, "Gemm.packB: no SIMD GEMM kernel on this CPU or build (check Gemm.hasSerialKernel)")
        precondition(isaSupported(isa), "Gemm.packB: kernel \(isa) does not run on this CPU")
        if n == 0 || k == 0 { return }
        maskdm_sgemm_pack_b(isa.rawValue, transposeB ? 1 : 0, Int32(n), Int32(k), b,
                            Int32(ldb ?? (transposeB ? k : n)), 0, Int32(n), packed)
    }

    /// ``serial(transposeA:transposeB:m:n:k:alpha:a:lda:b:ldb:beta:c:ldc:workspace:)`` with the
    /// right operand from ``packB(transposeB:n:k:b:ldb:into:instructionSet:)`` (same n, k and
    /// kernel `isa`).
    public static func serial(transposeA: Bool = false, m: Int, n: Int, k: Int, alpha: Float = 1,
                              a: UnsafePointer<Float>, lda: Int? = nil, packedB: UnsafePointer<Float>,
                              beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int? = nil,
                              workspace: UnsafeMutablePointer<Float>, instructionSet isa: InstructionSet = instructionSet) {
        precondition(hasSerialKernel, "Gemm.serial(packedB:): no SIMD GEMM kernel on this CPU or build (check Gemm.hasSerialKernel)")
        precondition(isa != .none, "Gemm.serial(packedB:): no kernel named (InstructionSet.none)")
        if m == 0 || n == 0 { return }
        maskdm_sgemm_packed_b(isa.rawValue, transposeA ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha,
                              a, Int32(lda ?? (transposeA ? m : k)), packedB, beta, c, Int32(ldc ?? n), nil, workspace)
    }
}

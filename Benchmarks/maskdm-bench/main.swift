// maskdm-bench: kernel and training-step benchmarks, one JSON object per case on stdout.
// Usage: swift build -c release --product maskdm-bench
//        .build/release/maskdm-bench [peak|matmul|gemm|attention|step|sample|fid|all] [--quick] [--threads N]
//        .build/release/maskdm-bench attention-tiles B NH T HS [ROWS,KEYS,BROWS,BKEYS ...]   (tile sweep)
//        .build/release/maskdm-bench gemm-shapes NAME:ROWS:IN:OUT ...   (a linear layer's three products)
//        .build/release/maskdm-bench passes-ab demo|tiny|small BATCH SETTING_A SETTING_B   (in-process A/B)
//        .build/release/maskdm-bench --help
import Foundation
import Tensor

/// Prints `message` on stderr and exits with `status` (2: a bad invocation, 1: a failed run).
func fail(_ message: String, status: Int32 = 2) -> Never {
    FileHandle.standardError.write(Data((message + "\n").utf8))
    exit(status)
}

let args = Array(CommandLine.arguments.dropFirst())
let valueFlags: Set<String> = ["--threads", "--batch", "--split", "--reps", "--case"]
let plainFlags: Set<String> = ["--quick", "--serve", "--help", "-h"]
/// Whether `a` is an option (`--name` or `-h`) rather than a positional argument.
func isOption(_ a: String) -> Bool { a.hasPrefix("--") || a == "-h" }
var threads = Parallel.defaultThreads
var index = 0
while index < args.count {                  // in order: a value flag's value is never taken for an option
    let a = args[index]
    if valueFlags.contains(a) {
        guard index + 1 < args.count else { fail("\(a) needs a value") }
        if a == "--threads" {
            guard let n = Int(args[index + 1]), n >= 1 else { fail("--threads needs a positive count, got '\(args[index + 1])'") }
            threads = n
        }
        index += 2
        continue
    }
    if isOption(a) && !plainFlags.contains(a) {
        fail("unknown option \(a); options: \((plainFlags.subtracting(["-h"]).union(valueFlags)).sorted().joined(separator: " ")) (see --help)")
    }
    index += 1
}
let quick = args.contains("--quick")
let positional = args.enumerated().filter { i, a in !isOption(a) && (i == 0 || !valueFlags.contains(args[i - 1])) }.map(\.element)
let suite = positional.first ?? "all"
let usage = """
    usage: maskdm-bench [peak|matmul|gemm|attention|step|sample|fid|all] [--quick] [--threads N]
           maskdm-bench step-case NAME [--quick] [--batch N] [--split N] [--reps N] [--serve]
               (--serve: one step per "step" line on stdin, for Benchmarks/lockstep.py)
           maskdm-bench sample [--quick] [--case NAME ...]   (chosen sampling runs only)
           maskdm-bench sample --case NAME --serve   (one run per "step" line on stdin)
           maskdm-bench attention-tiles B NH T HS [ROWS,KEYS,BROWS,BKEYS ...]
           maskdm-bench gemm-shapes NAME:ROWS:IN:OUT ...
           maskdm-bench packed-weights BATCH [--quick]   (small@64 passes, weights packed once vs per pass)
           maskdm-bench passes-ab demo|tiny|small BATCH SETTING_A SETTING_B [--quick]
               (network passes alternating between two settings in one process; SETTING: default, or
                KEY=VALUE,... with isa=avx2|avx512|..., blocking=resident|streamed, threads=N, packed=1|0)
           maskdm-bench load-memory FILE...
    environment: MASKDM_THREADS, MASKDM_GEMM_ISA (avx2, avx512, avx512-emulated, avx512-bf16 or openblas), MASKDM_BATCH_SPLIT
    """
if args.contains("--help") || args.contains("-h") { print(usage); exit(0) }
do { _ = try Gemm.environmentInstructionSet() } catch { fail("error: \(error)") }
BLAS.setThreads(threads)
// A step case is looked up before anything is measured, so a mistyped name fails at once.
let stepCase = suite == "step-case" ? StepCase.all.first(where: { positional.count > 1 && $0.name == positional[1] }) : nil
if suite == "step-case" && stepCase == nil {
    fail("unknown step case\(positional.count > 1 ? " '\(positional[1])'" : ""); known: \(StepCase.all.map(\.name))")
}
// The FMA peak is measured first, before any parallel region starts the polling worker threads
// (which would compete with the measuring threads for the cores).
if ["peak", "step-case", "matmul", "gemm", "gemm-shapes", "attention", "fid", "all"].contains(suite) { _ = measuredPeak(threads: threads) }
Parallel.$threads.withValue(threads) {
    switch suite {
    case "step-case":
        var c = stepCase!
        /// The positive count after `flag`, nil without the flag; exits on a missing or bad count.
        func positiveCount(_ flag: String) -> Int? {
            guard let i = args.firstIndex(of: flag) else { return nil }
            guard i + 1 < args.count, let n = Int(args[i + 1]), n > 0 else { fail("\(flag) needs a positive count") }
            return n
        }
        if let b = positiveCount("--batch") { c.batch = b }
        if let n = positiveCount("--split") { c.split = n }
        if let n = positiveCount("--reps") { c.reps = n }
        c.serve = args.contains("--serve")
        do { try runStepCase(c, quick: quick, threads: threads) } catch { fail("error: \(error)", status: 1) }
    case "load-memory":
        do { try benchLoadMemory(Array(positional.dropFirst())) } catch { fail("error: \(error)", status: 1) }
    case "sample":
        let chosen = args.indices.filter { args[$0] == "--case" && $0 + 1 < args.count }.map { args[$0 + 1] }
        if let unknown = chosen.first(where: { name in !SamplingCase.all.contains { $0.name == name } }) {
            fail("unknown sampling case \(unknown); known: \(SamplingCase.all.map(\.name))")
        }
        let serve = args.contains("--serve")
        if serve && chosen.count != 1 { fail("sample --serve needs exactly one --case") }
        do { try benchSampling(threads: threads, quick: quick, cases: chosen, serve: serve) } catch { fail("error: \(error)", status: 1) }
    case "fid":
        do { try benchFID(threads: threads, quick: quick) } catch { fail("error: \(error)", status: 1) }
    case "peak":
        benchPeak(threads: threads)
    case "packed-weights":
        guard positional.count == 2, let batch = Int(positional[1]), batch > 0 else {
            fail("usage: maskdm-bench packed-weights BATCH")
        }
        benchPackedWeights(batch: batch, threads: threads, quick: quick)
    case "passes-ab":
        do { try benchPassesAB(Array(positional.dropFirst()), threads: threads, quick: quick) } catch { fail("\(error)") }
    case "gemm-shapes":
        do { try benchGemmShapes(Array(positional.dropFirst()), threads: threads) } catch { fail("\(error)") }
    case "attention-tiles":
        do { try benchAttentionTiles(Array(positional.dropFirst()), threads: threads) } catch { fail("\(error)") }
    case "matmul", "gemm", "attention", "step", "all":
        if suite == "all" { benchPeak(threads: threads) }
        if suite == "matmul" || suite == "all" { benchMatmul(threads: threads, quick: quick) }
        if suite == "gemm" || suite == "all" { benchGemm(threads: threads, quick: quick) }
        if suite == "attention" || suite == "all" { benchAttention(threads: threads, quick: quick) }
        if suite == "step" || suite == "all" { benchSteps(threads: threads, quick: quick) }
    default:
        fail(usage)
    }
}

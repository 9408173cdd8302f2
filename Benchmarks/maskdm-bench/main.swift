// maskdm-bench: kernel and training-step benchmarks, one JSON object per case on stdout.
// Usage: swift run -c release maskdm-bench [matmul|attention|all] [--quick] [--threads N]
import Foundation
import Tensor

var args = Array(CommandLine.arguments.dropFirst())
let quick = args.contains("--quick")
var threads = Parallel.defaultThreads
if let i = args.firstIndex(of: "--threads"), i + 1 < args.count, let n = Int(args[i + 1]) { threads = n }
let suite = args.first { !$0.hasPrefix("--") && Int($0) == nil } ?? "all"
BLAS.setThreads(threads)
Parallel.$threads.withValue(threads) {
    if suite == "matmul" || suite == "all" { benchMatmul(threads: threads, quick: quick) }
    if suite == "attention" || suite == "all" { benchAttention(threads: threads, quick: quick) }
}

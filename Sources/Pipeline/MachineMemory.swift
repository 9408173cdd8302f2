import Foundation
import ViTDiffusion

/// How much memory this process can ever have: the machine's RAM and swap (`/proc/meminfo`),
/// or the container's limit (cgroup `memory.max`, or `memory.limit_in_bytes` of cgroup v1) when
/// that is lower. Nil where neither can be read (not Linux).
///
/// A run compares it with ``ViTDiffusion/DiffusionTrainer/memoryLowerBound`` before it starts,
/// so a batch that cannot fit stops with a message instead of being killed by the kernel midway.
public enum MachineMemory {
    /// The limit in bytes, or nil when unknown.
    public static var limitBytes: Int? {
        var limits: [Int] = []
        if let info = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            let fields = meminfo(info)
            if let total = fields["MemTotal"] { limits.append(total + (fields["SwapTotal"] ?? 0)) }
        }
        for path in ["/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"] {
            if let text = try? String(contentsOfFile: path, encoding: .utf8),
               let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)), bytes > 0 {
                limits.append(bytes)           // "max" (no limit) does not parse
            }
        }
        return limits.min()
    }

    /// How many processes of this job run on this machine: `OMPI_COMM_WORLD_LOCAL_SIZE` (Open
    /// MPI's `mpirun`) or `MPI_LOCALNRANKS` (MPICH's), else 1. Ranks on one machine share its memory.
    public static var processesOnThisMachine: Int {
        processesOnThisMachine(environment: ProcessInfo.processInfo.environment)
    }

    /// ``processesOnThisMachine`` read from `environment`.
    static func processesOnThisMachine(environment env: [String: String]) -> Int {
        let count = (env["OMPI_COMM_WORLD_LOCAL_SIZE"] ?? env["MPI_LOCALNRANKS"]).flatMap {
            Int($0.trimmingCharacters(in: .whitespaces))
        }
        return max(count ?? 1, 1)
    }

    /// This process's share of ``limitBytes``: the limit divided among the
    /// ``processesOnThisMachine``. What ``TrainingRun`` checks a batch against by default.
    public static var processLimitBytes: Int? {
        limitBytes.map { $0 / processesOnThisMachine }
    }

    /// The `Key: N kB` lines of `/proc/meminfo` as bytes.
    static func meminfo(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == ":" || $0 == " " })
            guard parts.count >= 2, let value = Int(parts[1]) else { continue }
            out[String(parts[0])] = parts.count >= 3 && parts[2] == "kB" ? value * 1024 : value
        }
        return out
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` (`batchSize (--batch)`) when a training step of
    /// `trainer` cannot fit in `limit` bytes (default: this process's share of the machine's,
    /// ``processLimitBytes``; nil checks nothing): its
    /// ``ViTDiffusion/DiffusionTrainer/memoryLowerBound`` is larger. ``TrainingRun``
    /// checks this before a run starts; call it before ``ViTDiffusion/DiffusionTrainer/run(dataset:checkpoint:resume:progress:)``
    /// to have the same check there.
    public static func validate(_ trainer: DiffusionTrainer, limit: Int? = processLimitBytes) throws {
        let batch = trainer.recipe.batchSize, local = trainer.localBatchSize
        try check(needed: trainer.memoryLowerBound, limit: limit,
                  batch: local == batch ? "a batch of \(batch)" : "this rank's \(local) images of a batch of \(batch)",
                  what: "a training step of \(trainer.model.config.description)")
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` (`batchSize (--batch)`) when `needed` bytes (a
    /// lower bound) exceed `limit`, naming both and the ways out.
    static func check(needed: Int, limit: Int?, batch: String, what: String) throws {
        guard let limit, needed > limit else { return }
        func size(_ b: Int) -> String {
            b >= 1_000_000_000 ? String(format: "%.1f GB", Double(b) / 1e9) : String(format: "%.1f MB", Double(b) / 1e6)
        }
        let processes = processesOnThisMachine
        let whose = "this machine's RAM and swap, or the container's limit"
            + (processes > 1 ? ", divided among the \(processes) processes of this job on it" : "") + ", unless given"
        throw PipelineError.invalidOption(
            name: "batchSize (--batch)",
            problem: "\(what) needs at least \(size(needed)) for \(batch), over the memory limit of \(size(max(limit, 0))) "
                + "(\(whose)): lower the batch, "
                + "or run it as micro-batches (--accumulate N, TrainingRecipe.accumulationSteps)")
    }
}

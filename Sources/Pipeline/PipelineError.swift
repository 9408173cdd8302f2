import Foundation

/// Errors of the pipeline layer (run folders, data, configs, checkpoints given on the command
/// line). Each case names the file, folder or key at fault.
public enum PipelineError: Error, Equatable, CustomStringConvertible, LocalizedError {
    /// A file or folder that does not exist.
    case missingFile(path: String, hint: String)
    /// Training data that cannot be used (empty folder, no decodable image, wrong kind of file).
    case badData(path: String, problem: String)
    /// A run folder that holds a run of another configuration.
    case runMismatch(folder: String, key: String, existing: String, requested: String)
    /// A checkpoint that cannot initialise or resume this run.
    case badCheckpoint(path: String, problem: String)
    /// An option value the pipeline cannot use.
    case invalidOption(name: String, problem: String)
    /// A config file key or value that is not supported; `key` is empty when the problem is the
    /// file as a whole (missing, not UTF-8, not YAML).
    case badConfig(path: String, key: String, problem: String)
    /// A run folder this run cannot hold: another process trains into it (its `.lock` is held,
    /// or was replaced while this run trained), or its lock file cannot be opened. `problem` says
    /// which and what to do.
    case folderInUse(folder: String, problem: String)
    /// Training was stopped by SIGINT/SIGTERM after a checkpoint was written at `step`.
    case interrupted(step: Int, checkpoint: String)
    /// A file of a run could not be written (a full disk, a folder made read-only).
    case writeFailed(path: String, problem: String)

    public var description: String {
        switch self {
        case .missingFile(let p, let hint): "'\(p)' not found: \(hint)"
        case .badData(let p, let problem): "data '\(p)': \(problem)"
        case .runMismatch(let f, let key, let a, let b):
            "run folder '\(f)' holds a run with \(key) = \(a), not \(b); resume with the same settings or choose another folder (--out)"
        case .badCheckpoint(let p, let problem): "checkpoint '\(p)': \(problem)"
        case .invalidOption(let n, let problem): "option \(n): \(problem)"
        case .badConfig(let p, let key, let problem): key.isEmpty ? "config '\(p)': \(problem)" : "config '\(p)': key '\(key)': \(problem)"
        case .folderInUse(let f, let problem): "run folder '\(f)': \(problem)"
        case .interrupted(let step, let ckpt): "stopped at step \(step); checkpoint written to \(ckpt); re-run the same command to resume"
        case .writeFailed(let p, let problem): "cannot write '\(p)': \(problem)"
        }
    }

    public var errorDescription: String? { description }
}

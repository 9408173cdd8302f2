import Foundation

/// A folder that holds training runs rather than being one: what `maskdm pipeline`
/// (``TwoStageDemo``) and `maskdm compare` (``CompareExperiment``) write, or any folder with run
/// folders one or two levels below it. Front ends use it to point a user who names such a folder
/// (to describe or resume it) at the runs inside, or at the command that resumes the whole job.
public struct JobFolder: Sendable, Equatable {
    /// Which command wrote the folder, as far as its files tell.
    public enum Kind: String, Sendable {
        /// A `maskdm pipeline` folder: `pretrain/` and `finetune/` runs.
        case pipeline
        /// A `maskdm compare` folder: `arm-A/`, `arm-B/`, `arm-C/`.
        case compare
        /// One arm of a `maskdm compare` folder: `evals.jsonl` beside its stages' runs.
        case compareArm
        /// Run folders below it, written by no command this library knows.
        case other
    }

    /// The folder looked at.
    public let folder: URL
    /// What wrote it.
    public let kind: Kind
    /// The run folders (holding a `config.json` or `checkpoint.safetensors`) one or two levels
    /// below ``folder``, sorted by path, except that folders named `pretrain`, `finetune` and
    /// `train` come first among their siblings, in the order they train; may be empty for a job
    /// stopped before its first run.
    public let runs: [URL]

    /// The job folder `folder` is, or nil when it is neither a known job's folder nor holds runs
    /// below it. A folder that is a run itself (it has a `config.json` or a checkpoint) is not one.
    public init?(_ folder: URL) {
        let fm = FileManager.default
        func has(_ name: String) -> Bool { fm.fileExists(atPath: folder.appendingPathComponent(name).path) }
        if Self.isRun(folder) { return nil }
        self.folder = folder
        runs = Self.runFolders(under: folder)
        if has("evals.jsonl") { kind = .compareArm }
        else if has("arm-A") || has("arm-B") || has("arm-C") { kind = .compare }
        else if has("pretrain") || has("finetune") { kind = .pipeline }
        else if !runs.isEmpty { kind = .other }
        else { return nil }
    }

    /// ``runs`` as paths relative to ``folder`` (`arm-A/pretrain`), joined with commas.
    public var runNames: String { runs.map(name(of:)).joined(separator: ", ") }

    /// `run`'s path relative to ``folder`` (`arm-A/pretrain`).
    func name(of run: URL) -> String {
        let base = folder.standardizedFileURL.path + "/", path = run.standardizedFileURL.path
        return path.hasPrefix(base) ? String(path.dropFirst(base.count)) : run.path
    }

    /// Where each run of the job stands, in ``runs``' order: its name relative to ``folder``
    /// (`arm-A/pretrain`) and its ``RunProgress`` (nil when its files cannot be read as a run,
    /// as when it was removed meanwhile).
    public func progress() -> [(name: String, progress: RunProgress?)] {
        runs.map { (name(of: $0), try? RunProgress(folder: $0)) }
    }

    /// Lines for `maskdm describe` of a job folder: what it is, then each run's
    /// ``RunProgress/text`` under its name (read now; see ``text(of:)``).
    public var text: String { text(of: progress()) }

    /// The lines of ``text`` for runs already read by ``progress()``, so that what is printed and
    /// what a caller decides from it come from one reading of the folders.
    public func text(of runs: [(name: String, progress: RunProgress?)]) -> String {
        var lines = ["\(folder.path): \(kindDescription), \(runs.count) run\(runs.count == 1 ? "" : "s")"]
        for (name, progress) in runs {
            // Names come from the disk and are shown on a terminal: no control characters.
            lines.append(withoutControlCharacters(name))
            lines.append(progress?.text ?? "  (cannot be read as a run: neither its config.json nor its checkpoint)")
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object: `folder`, `kind` (`pipeline`, `compare`, `compareArm`, `other`) and
    /// `runs`, an object of each run's ``RunProgress/json`` (`null` when it cannot be read) under
    /// its name (read now; see ``json(of:)``).
    public var json: String { json(of: progress()) }

    /// ``json`` for runs already read by ``progress()``.
    public func json(of runs: [(name: String, progress: RunProgress?)]) -> String {
        let entries = runs.map { "\(oneLineJSON($0.name)): \($0.progress?.json ?? "null")" }.joined(separator: ", ")
        return "{\"folder\": \(oneLineJSON(folder.path)), \"kind\": \(oneLineJSON(kind.rawValue)), \"runs\": {\(entries)}}"
    }

    /// What to do to go on with the job: the command to re-run with its `--out`.
    public var resumeHint: String {
        switch kind {
        case .pipeline: return "this is a `maskdm pipeline` folder: re-run `maskdm pipeline --out \(folder.path)` with its flags to resume it"
        case .compare: return "this is a `maskdm compare` folder: re-run `maskdm compare --out \(folder.path)` with its flags to resume it"
        case .compareArm:
            return "this is an arm of a `maskdm compare` folder: re-run `maskdm compare --out \(folder.deletingLastPathComponent().path)` "
                + "with its flags to resume it"
        case .other:
            return "this folder holds no run itself but runs in \(runNames): "
                + "resume one of those, e.g. `maskdm resume \(runs[0].path)`"
        }
    }

    /// The folder's kind in words, for messages: "a `maskdm pipeline` folder".
    public var kindDescription: String {
        switch kind {
        case .pipeline: return "a `maskdm pipeline` folder"
        case .compare: return "a `maskdm compare` folder"
        case .compareArm: return "an arm of a `maskdm compare` folder"
        case .other: return "a folder of runs"
        }
    }

    /// Whether `url` is a run folder itself (it holds a `config.json` or `checkpoint.safetensors`).
    static func isRun(_ url: URL) -> Bool {
        ["config.json", "checkpoint.safetensors"].contains { FileManager.default.fileExists(atPath: url.appendingPathComponent($0).path) }
    }

    /// The run folders one or two levels below `folder`, sorted by path, stage folders in the
    /// order they train.
    static func runFolders(under folder: URL) -> [URL] {
        let fm = FileManager.default
        let stages = ["pretrain", "finetune", "train"]
        func order(_ name: String) -> (Int, String) { (stages.firstIndex(of: name) ?? stages.count, name) }
        func subfolders(_ u: URL) -> [URL] {
            ((try? fm.contentsOfDirectory(atPath: u.path)) ?? []).filter { !$0.hasPrefix(".") }.sorted { order($0) < order($1) }
                .map { u.appendingPathComponent($0) }
                .filter { var d: ObjCBool = false; return fm.fileExists(atPath: $0.path, isDirectory: &d) && d.boolValue }
        }
        var runs: [URL] = []
        for sub in subfolders(folder) {
            if isRun(sub) { runs.append(sub) } else { runs += subfolders(sub).filter(isRun) }
        }
        return runs
    }
}

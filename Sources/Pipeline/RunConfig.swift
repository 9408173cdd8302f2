import Foundation
import ImageIO
import Schedules
import Tensor
import ViTDiffusion

/// The kind of training a run folder holds.
public enum Stage: String, Codable, Sendable, CaseIterable {
    /// Masked pre-training (MaskDM stage 1).
    case pretrain
    /// Unmasked fine-tuning from pre-trained weights (stage 2).
    case finetune
    /// Unmasked training from scratch (the baseline).
    case train
}

/// Everything a run folder's training depends on, resolved: written to `RUN/config.json` and
/// compared on resume, so a folder never mixes two runs.
public struct RunConfig: Codable, Sendable, Equatable {
    /// What this run is.
    public var stage: Stage
    /// The network.
    public var model: MaskedUViTConfig
    /// Optimisation, masking, objective, schedule, seed and step count.
    public var recipe: TrainingRecipe
    /// The training data (a bundled dataset name or a folder path).
    public var data: String
    /// The checkpoint whose online weights start the run (fine-tuning), if any.
    public var initialization: String?
    /// Write a sample grid every this many steps (0 = never).
    public var sampleEvery: Int = 0
    /// Images per sample grid (1 to 4096).
    public var sampleCount: Int = 16
    /// Sampler of the grids.
    public var sampler: SamplerKind = .dpmSolver(steps: 25)
    /// Numbered checkpoints kept besides the latest.
    public var keepCheckpoints: Int = 3
    /// Stop when the summed step times reach this many seconds (nil = run `recipe.steps`).
    public var timeBudget: Double? = nil
    /// The arithmetic of the matrix products: `.fp32`, or `.bf16` mixed precision (bf16
    /// operands, fp32 sums, weights and optimizer state; needs AVX512_BF16). ``TrainingRun``
    /// applies it to the process (`Gemm.setPrecision`) and records the precision it ran in
    /// `config.json`. nil: on a fresh run the process's current precision (`MASKDM_GEMM_ISA`, else
    /// fp32); on resume the recorded one. It may change between sittings.
    public var precision: Gemm.Precision? = nil
    /// FID and KID of EMA samples every few steps, and the best checkpoint kept (nil = none). It
    /// may change between sittings.
    public var evaluation: EvaluationSchedule? = nil

    /// A run of `stage` training `model` with `recipe` on `data`.
    public init(stage: Stage, model: MaskedUViTConfig, recipe: TrainingRecipe, data: String, initialization: String? = nil) {
        self.stage = stage; self.model = model; self.recipe = recipe; self.data = data; self.initialization = initialization
    }

    /// The config recorded in run folder `folder` (its `config.json`), or nil when it has none (a
    /// new run). Resuming a run with it keeps every recorded setting, including those that may
    /// change between sittings (the step count, the cadences, the gradient accumulation).
    /// ```swift
    /// let folder = URL(fileURLWithPath: "runs/pretrain")
    /// if let recorded = try RunConfig.recorded(in: folder) {
    ///     var config = recorded
    ///     config.recipe.steps += 10_000                  // train on, as recorded otherwise
    ///     _ = config
    /// }
    /// ```
    /// - Throws: ``PipelineError/badConfig(path:key:problem:)`` naming the file and the key when
    ///   `config.json` exists but is not a run config.
    public static func recorded(in folder: URL) throws -> RunConfig? {
        let url = folder.appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: url.path) else { return nil }
        do {
            return try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: url))
        } catch {
            throw PipelineError.badConfig(path: url.path, key: TrainingRun.decodingKey(of: error), problem: "not a run config (\(error))")
        }
    }

    /// The first setting in which `other` differs from this config in a way that changes the
    /// training (the step count, the time budget, the sampling/checkpoint cadence, the FID
    /// schedule, the precision, the gradient accumulation and whether non-finite steps are
    /// skipped may change between sittings); nil when a run of
    /// `self` can resume as `other`.
    public func conflict(with other: RunConfig) -> (key: String, existing: String, requested: String)? {
        func check<T: Equatable>(_ key: String, _ a: T, _ b: T) -> (String, String, String)? {
            a == b ? nil : (key, "\(a)", "\(b)")
        }
        var a = recipe, b = other.recipe
        a.steps = 0; b.steps = 0; a.checkpointEvery = 0; b.checkpointEvery = 0
        a.accumulationSteps = 1; b.accumulationSteps = 1
        a.skipNonFiniteSteps = false; b.skipNonFiniteSteps = false     // may be turned on to get past a bad step
        return check("stage", stage, other.stage) ?? check("model", model, other.model)
            ?? check("data", data, other.data) ?? check("init", initialization ?? "-", other.initialization ?? "-")
            ?? Self.firstDifference(a.json, b.json, prefix: "recipe")
    }

    /// The first key (sorted) whose value differs between two JSON objects, as `prefix.key` with
    /// both values as JSON; the whole objects when either does not parse.
    static func firstDifference(_ a: String, _ b: String, prefix: String) -> (key: String, existing: String, requested: String)? {
        guard a != b else { return nil }
        func object(_ s: String) -> [String: Any]? {
            (try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any]
        }
        func text(_ v: Any?) -> String {
            guard let v else { return "(absent)" }
            guard JSONSerialization.isValidJSONObject([v]),
                  let d = try? JSONSerialization.data(withJSONObject: [v], options: [.sortedKeys, .fragmentsAllowed]),
                  let s = String(data: d, encoding: .utf8) else { return "\(v)" }
            return String(s.dropFirst().dropLast())                       // [v] -> v
        }
        guard let x = object(a), let y = object(b) else { return (prefix, a, b) }
        for key in Set(x.keys).union(y.keys).sorted() where text(x[key]) != text(y[key]) {
            return ("\(prefix).\(key)", text(x[key]), text(y[key]))
        }
        return (prefix, a, b)
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` for a setting outside its range
    /// (negative intervals or counts, an empty sample grid, a time budget that is not positive),
    /// and the recipe's and the model's own errors. ``TrainingRun`` calls it before anything runs,
    /// so a bad value stops a run at its start rather than when it is first used, hours in.
    public func validate() throws {
        func fail(_ name: String, _ problem: String) -> PipelineError { .invalidOption(name: name, problem: problem) }
        guard sampleEvery >= 0 else { throw fail("sampleEvery", "must be >= 0 (0: no sample grids), got \(sampleEvery)") }
        guard (1...4096).contains(sampleCount) else { throw fail("sampleCount", "a sample grid holds 1 to 4096 images, got \(sampleCount)") }
        // Found now, not when the first grid is due (and again at every resume).
        if sampleEvery > 0 {
            let scale = Image.sheetScale(width: model.imageWidth, height: model.imageHeight)
            guard Image.sheetSize(count: sampleCount, columns: sampleGridColumns, tileWidth: model.imageWidth, tileHeight: model.imageHeight,
                                  scale: scale) != nil else {
                throw fail("sampleCount", "a grid of \(sampleCount) samples of \(model.imageWidth)x\(model.imageHeight) px would be over "
                           + "32768 pixels a side; draw fewer (--sample-count)")
            }
        }
        guard keepCheckpoints >= 0 else { throw fail("keepCheckpoints", "must be >= 0, got \(keepCheckpoints)") }
        if let t = timeBudget, !(t > 0 && t.isFinite) { throw fail("timeBudget", "must be a positive number of seconds, got \(t)") }
        try recipe.validate()
        try model.validate()
        try evaluation?.validate()
        let trainingSteps = recipe.schedule.schedule().timesteps
        try sampler.validate(trainingSteps: trainingSteps)
        try evaluation?.sampler?.validate(trainingSteps: trainingSteps)
    }

    /// Columns of a sample grid: the square root of ``sampleCount``, rounded up.
    var sampleGridColumns: Int { Int(Double(sampleCount).squareRoot().rounded(.up)) }

    /// Pretty-printed JSON with sorted keys.
    public var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        return (try? enc.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }
}

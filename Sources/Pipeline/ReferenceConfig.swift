import Foundation
import Masking
import NN
import Schedules
import ViTDiffusion
import Yams

/// A training config in the reference implementation's YAML format (its `configs/*.yml`),
/// resolved to this library's types.
///
/// Every key of the reference's configs is either used, recorded (`SHORT_SIDE_SIZE`,
/// `pretrained_model_ckpt`: see their properties), known to be inert (logging, workers,
/// paths, p2 weighting with gamma 0, ...), or refused with an error naming the file and the key
/// (an unknown key, or a value the method here does not implement such as `decoder_depth > 0`,
/// `use_final_conv: true`, `mlp_time_embed: true`, class conditioning). Two keys of the
/// reference's diffusion wrapper are accepted as well: `objective` (`pred_noise`, `pred_x0`,
/// `pred_v`) and `loss_type` (`l1`, `l2`), and one of its `main.py` flags, `gradient_accumulate_every`
/// (N micro-batches of `batch_size`: the recipe's batch is N x `batch_size`, its
/// `accumulationSteps` N).
///
/// ```swift
/// let ref = try ReferenceConfig(contentsOf: URL(fileURLWithPath: "configs/transfer/celebahq_small_90p.yml"))
/// ref.model.embedDim          // 512
/// ref.recipe.mask             // .block(size: 4, ratio: 0.9)
/// ```
public struct ReferenceConfig: Sendable, Equatable {
    /// The network (`network:`; `img_size` from `IMG_SIZE` when the network omits it).
    public var model: MaskedUViTConfig
    /// Optimisation, EMA, clipping, schedule, mask and flips.
    public var recipe: TrainingRecipe
    /// `SHORT_SIDE_SIZE`, when > 0. Recorded only: the reference's datasets do not apply it
    /// (they take images already at `IMG_SIZE`), and this library resizes every image's short
    /// side to the model's size and centre-crops it.
    public var shortSideSize: Int?
    /// `pretrained_model_ckpt`, when set: the weights the reference loads before it trains.
    /// ``ReferenceConfig`` does not load them; `maskdm finetune` takes them as `--init`, and the
    /// other training commands refuse a config that sets them.
    public var pretrainedCheckpoint: String?
    /// `seed`, when the file sets it (the recipe's seed is then this value, else 0).
    public var seed: UInt64?

    static let topLevel: Set<String> = ["batch_size", "lr", "warmup_steps", "adam_betas", "weight_decay", "ema_decay",
                                        "clip_grad", "beta_schedule", "dataset", "network", "pretrained_model_ckpt",
                                        "objective", "loss_type", "seed", "gradient_accumulate_every"]
    static let topLevelInert: Set<String> = ["define", "results_folder", "num_workers", "normalization", "clip_max", "clip_min",
                                             "ema_update_every", "loss_weight", "p2_loss_weight_gamma", "shift", "warmup_lr",
                                             "warmup_schedule", "wandb", "name", "log_every", "save_every", "sample_every",
                                             "num_samples", "sampling_steps", "overwrite", "clip_denoised"]
    static let datasetKeys: Set<String> = ["MASK_TYPE", "MASK_RATIO", "MASK_BLOCK_SIZE", "MASK_CROP_SIZE", "IMG_SIZE",
                                           "SHORT_SIDE_SIZE", "hflip_prob"]
    static let datasetInert: Set<String> = ["NAME", "PATH", "MEAN", "STD", "TASK", "NORMALIZATION"]
    static let networkKeys: Set<String> = ["img_size", "patch_size", "in_chans", "encoder_embed_dim", "encoder_depth",
                                           "encoder_heads", "mlp_ratio", "qkv_bias"]
    static let networkInert: Set<String> = ["name", "decoder_depth", "decoder_embed_dim", "decoder_heads", "use_final_conv",
                                            "mlp_time_embed", "num_classes", "use_checkpoint", "qk_scale"]

    /// Reads and resolves a YAML config file.
    /// - Throws: ``PipelineError/badConfig(path:key:problem:)`` naming the key, or
    ///   ``PipelineError/missingFile(path:hint:)``.
    public init(contentsOf url: URL) throws {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
                throw PipelineError.missingFile(path: url.path, hint: "no such config file")
            }
            throw PipelineError.badConfig(path: url.path, key: "", problem: isDirectory.boolValue
                                          ? "is a folder, not a YAML file" : "cannot be read (\(error.localizedDescription))")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw PipelineError.badConfig(path: url.path, key: "", problem: "is not UTF-8 text (a YAML config is expected)")
        }
        try self.init(yaml: text, path: url.path)
    }

    /// Resolves YAML text; `path` names it in errors.
    public init(yaml text: String, path: String = "<yaml>") throws {
        let parsed: Any?
        let node: Node?
        do { node = try Yams.compose(yaml: Self.renamingRepeatedDefines(text)) } catch {
            throw PipelineError.badConfig(path: path, key: "", problem: "not valid YAML: \(error)")
        }
        var budget = Self.maximumValues
        parsed = try node.map { try Self.plain($0, path: path, key: "", depth: 0, budget: &budget) }
        guard let root = Self.dictionary(parsed)?.filter({ !Self.isRepeatedDefine($0.key) }) else {
            throw PipelineError.badConfig(path: path, key: "", problem: "the top level is not a mapping")
        }
        let r = Reader(path: path)
        try r.checkKeys(root, known: Self.topLevel, inert: Self.topLevelInert, section: "")
        let dataset = try r.section(root, "dataset")
        let network = try r.section(root, "network")
        try r.checkKeys(dataset, known: Self.datasetKeys, inert: Self.datasetInert, section: "dataset.")
        try r.checkKeys(network, known: Self.networkKeys, inert: Self.networkInert, section: "network.")

        // Values the method here does not implement.
        try r.require(root, "normalization", equals: true)
        try r.require(root, "clip_max", equals: 1.0); try r.require(root, "clip_min", equals: -1.0)
        try r.require(root, "ema_update_every", equals: 1)
        try r.require(root, "p2_loss_weight_gamma", equals: 0.0)
        try r.require(root, "shift", equals: false)
        try r.require(root, "warmup_schedule", equals: "lambda")
        try r.require(network, "name", equals: "maskdm", section: "network.")
        try r.require(network, "decoder_depth", equals: 0, section: "network.")
        try r.require(network, "use_final_conv", equals: false, section: "network.")
        try r.require(network, "mlp_time_embed", equals: false, section: "network.")
        try r.require(network, "num_classes", equals: -1, section: "network.")
        try r.require(dataset, "TASK", equals: "uncond", section: "dataset.")

        let imgSize = try r.int(network, "img_size", section: "network.") ?? r.int(dataset, "IMG_SIZE", section: "dataset.")
        guard let imgSize else { throw PipelineError.badConfig(path: path, key: "network.img_size", problem: "missing") }
        if let ds = try r.int(dataset, "IMG_SIZE", section: "dataset."), ds != imgSize {
            throw PipelineError.badConfig(path: path, key: "dataset.IMG_SIZE", problem: "\(ds) differs from network.img_size \(imgSize)")
        }
        func needInt(_ key: String) throws -> Int {
            guard let v = try r.int(network, key, section: "network.") else {
                throw PipelineError.badConfig(path: path, key: "network.\(key)", problem: "missing")
            }
            return v
        }
        model = MaskedUViTConfig(imageSize: imgSize, patchSize: try r.int(network, "patch_size", section: "network.") ?? 4,
                                 inChannels: try r.int(network, "in_chans", section: "network.") ?? 3,
                                 embedDim: try needInt("encoder_embed_dim"), depth: try needInt("encoder_depth"),
                                 heads: try needInt("encoder_heads"),
                                 mlpRatio: try r.double(network, "mlp_ratio", section: "network.") ?? 4,
                                 qkvBias: try r.bool(network, "qkv_bias", section: "network.") ?? false)
        do { try model.validate() } catch {
            throw PipelineError.badConfig(path: path, key: "network", problem: "\(error)")
        }

        var rec = TrainingRecipe()
        rec.batchSize = try r.int(root, "batch_size") ?? rec.batchSize
        if let n = try r.int(root, "gradient_accumulate_every") {
            // The reference's batch_size is one micro-batch; ours is the whole step's.
            guard n >= 1 else { throw PipelineError.badConfig(path: path, key: "gradient_accumulate_every", problem: "must be at least 1, got \(n)") }
            rec.accumulationSteps = n
            rec.batchSize *= n
        }
        rec.learningRate = Float(try r.double(root, "lr") ?? Double(rec.learningRate))
        rec.warmupSteps = try r.int(root, "warmup_steps") ?? 0
        if let betas = root["adam_betas"] {
            guard let a = betas as? [Any], a.count == 2, let b1 = Reader.number(a[0]), let b2 = Reader.number(a[1]) else {
                throw PipelineError.badConfig(path: path, key: "adam_betas", problem: "expected [beta1, beta2]")
            }
            rec.beta1 = Float(b1); rec.beta2 = Float(b2)
        }
        rec.weightDecay = Float(try r.double(root, "weight_decay") ?? Double(rec.weightDecay))
        rec.emaBeta = Float(try r.double(root, "ema_decay") ?? Double(rec.emaBeta))
        // The reference clips at 1.0 unless the key says otherwise (`main.py`); null or 0 turns
        // clipping off (its `if clip_grad:`).
        if root.keys.contains("clip_grad") {
            rec.gradientClip = try r.double(root, "clip_grad").flatMap { $0 == 0 ? nil : Float($0) }
        } else {
            rec.gradientClip = 1
        }
        if let s = try r.string(root, "beta_schedule") {
            do { rec.schedule = try ScheduleKind(name: s) } catch {
                throw PipelineError.badConfig(path: path, key: "beta_schedule", problem: "\(error)")
            }
        } else {
            rec.schedule = .cosine                               // the reference's default
        }
        if let o = try r.string(root, "objective") {
            guard let t = PredictionTarget(name: o) else {
                throw PipelineError.badConfig(path: path, key: "objective", problem: "expected pred_noise, pred_x0 or pred_v, got '\(o)'")
            }
            rec.objective = t
        }
        if let l = try r.string(root, "loss_type") {
            guard let k = RegressionLoss(rawValue: l) else {
                throw PipelineError.badConfig(path: path, key: "loss_type", problem: "expected l1 or l2, got '\(l)'")
            }
            rec.loss = k
        }
        seed = try r.int(root, "seed").map { UInt64(truncatingIfNeeded: $0) }
        if let seed { rec.seed = seed }
        rec.flipProbability = try r.double(dataset, "hflip_prob", section: "dataset.") ?? 0
        // As the reference: MASK_RATIO defaults to 0.9 under a MASK_TYPE, and a crop of a given
        // size ignores the ratio. Without MASK_TYPE the reference stops (its default, `random`,
        // is none of its types): a ratio without a type is refused, neither means no mask.
        let type = try r.string(dataset, "MASK_TYPE", section: "dataset.")?.lowercased()
        let givenRatio = try r.double(dataset, "MASK_RATIO", section: "dataset.")
        if type == nil, let givenRatio, givenRatio > 0 {
            throw PipelineError.badConfig(path: path, key: "dataset.MASK_TYPE", problem: "missing beside MASK_RATIO \(givenRatio): name patch, block or crop")
        }
        let ratio = givenRatio ?? (type == nil ? 0 : 0.9)
        let crop = try r.int(dataset, "MASK_CROP_SIZE", section: "dataset.") ?? -1
        if let type, ratio > 0 || (type == "crop" && crop > 0) {
            let block = try r.int(dataset, "MASK_BLOCK_SIZE", section: "dataset.") ?? 4
            let name: String
            switch type {
            case "patch", "random": name = "patch"
            case "block": name = "block\(block)"
            case "crop": name = crop > 0 ? "crop\(crop)" : "crop"
            default: throw PipelineError.badConfig(path: path, key: "dataset.MASK_TYPE", problem: "expected patch, block or crop, got '\(type)'")
            }
            do { rec.mask = try MaskSpec(name: name, ratio: ratio) } catch {
                throw PipelineError.badConfig(path: path, key: "dataset.MASK_RATIO", problem: "\(error)")
            }
        }
        do { try rec.validate() } catch {
            // Name the file's key, not the recipe's field.
            let keys = ["batchSize": "batch_size", "accumulationSteps": "gradient_accumulate_every", "learningRate": "lr",
                        "warmupSteps": "warmup_steps", "beta1/beta2": "adam_betas", "emaBeta": "ema_decay",
                        "gradientClip": "clip_grad", "flipProbability": "dataset.hflip_prob"]
            var key = "-"
            if case .invalidRecipe(let field, _)? = error as? ViTDiffusionError, let k = keys[field] { key = k }
            throw PipelineError.badConfig(path: path, key: key, problem: "\(error)")
        }
        recipe = rec
        let short = try r.int(dataset, "SHORT_SIDE_SIZE", section: "dataset.") ?? -1
        shortSideSize = short > 0 ? short : nil
        let ckpt = try r.string(root, "pretrained_model_ckpt") ?? ""
        pretrainedCheckpoint = ckpt.isEmpty ? nil : ckpt
    }

    /// The reference's configs declare anchors with repeated top-level `define:` keys
    /// (`define: &img_size 256`, then `define: &patch_size 4`), which PyYAML accepts (the last
    /// wins) and Yams refuses as duplicate keys: the repeats are renamed `define.2`, `define.3`, ...
    static func renamingRepeatedDefines(_ text: String) -> String {
        var seen = 0
        return text.split(separator: "\n", omittingEmptySubsequences: false).map { line -> String in
            guard line.hasPrefix("define:") || line.hasPrefix("define :") else { return String(line) }
            seen += 1
            return seen == 1 ? String(line) : "define.\(seen)" + line.drop { $0 != ":" }
        }.joined(separator: "\n")
    }

    /// A key ``renamingRepeatedDefines(_:)`` made.
    static func isRepeatedDefine(_ key: String) -> Bool {
        key.hasPrefix("define.") && Int(key.dropFirst("define.".count)) != nil
    }

    /// At most this many values (after aliases are expanded: a "billion laughs" file is refused).
    static let maximumValues = 100_000
    /// At most this deep.
    static let maximumDepth = 64

    /// The YAML node as plain values (`[String: Any]`, `[Any]`, Int, Double, Bool, NSNull,
    /// String). Written here rather than taken from `Yams.load`, whose untyped constructor traps on
    /// a mapping key that is not a scalar; aliases and nesting are bounded.
    static func plain(_ node: Node, path: String, key: String, depth: Int, budget: inout Int) throws -> Any {
        budget -= 1
        guard budget >= 0 else {
            throw PipelineError.badConfig(path: path, key: key.isEmpty ? "-" : key,
                                          problem: "more than \(maximumValues) values (aliases expanding?)")
        }
        guard depth <= maximumDepth else {
            throw PipelineError.badConfig(path: path, key: key, problem: "nested more than \(maximumDepth) levels deep")
        }
        switch node {
        case .scalar:
            switch node.tag.rawValue {
            case Tag.Name.int.rawValue: if let i = node.int { return i }
            case Tag.Name.float.rawValue: if let d = node.float { return d }
            case Tag.Name.bool.rawValue: if let b = node.bool { return b }
            case Tag.Name.null.rawValue: return NSNull()
            default: break
            }
            return node.string ?? ""
        case .sequence(let items):
            return try items.enumerated().map { i, item in
                try plain(item, path: path, key: "\(key)[\(i)]", depth: depth + 1, budget: &budget)
            }
        case .mapping(let pairs):
            var out: [String: Any] = [:]
            for (k, v) in pairs {
                guard case .scalar = k, let name = k.string else {
                    throw PipelineError.badConfig(path: path, key: key.isEmpty ? "-" : key, problem: "a mapping key is not a plain value")
                }
                let full = key.isEmpty ? name : key + "." + name
                guard out[name] == nil else { throw PipelineError.badConfig(path: path, key: full, problem: "duplicate key") }
                out[name] = try plain(v, path: path, key: full, depth: depth + 1, budget: &budget)
            }
            return out
        default:
            throw PipelineError.badConfig(path: path, key: key.isEmpty ? "-" : key, problem: "an unresolved alias")
        }
    }

    static func dictionary(_ v: Any?) -> [String: Any]? {
        if let d = v as? [String: Any] { return d }
        if let d = v as? [AnyHashable: Any] {
            var out: [String: Any] = [:]
            for (k, x) in d { out["\(k.base)"] = x }
            return out
        }
        return nil
    }

    /// Typed access to YAML values with errors naming the key.
    struct Reader {
        let path: String

        func fail(_ key: String, _ problem: String) -> PipelineError { .badConfig(path: path, key: key, problem: problem) }

        func section(_ d: [String: Any], _ key: String) throws -> [String: Any] {
            guard let v = d[key] else { return [:] }
            guard let s = ReferenceConfig.dictionary(v) else { throw fail(key, "expected a mapping") }
            return s
        }

        func checkKeys(_ d: [String: Any], known: Set<String>, inert: Set<String>, section: String) throws {
            for k in d.keys.sorted() where !known.contains(k) && !inert.contains(k) {
                throw fail(section + k, "unknown key (supported: \(known.sorted().joined(separator: ", ")))")
            }
        }

        static func number(_ v: Any) -> Double? {
            if let i = v as? Int { return Double(i) }
            if let d = v as? Double { return d }
            if let s = v as? String { return Double(s) }                 // PyYAML reads 2.0e-4 as a number; YAML 1.2 as well
            return nil
        }

        static func isNull(_ v: Any?) -> Bool { v == nil || v is NSNull }

        func int(_ d: [String: Any], _ key: String, section: String = "") throws -> Int? {
            guard let v = d[key], !Self.isNull(v) else { return nil }
            if let i = v as? Int { return i }
            if let x = Self.number(v), let i = Int(exactly: x) { return i }
            throw fail(section + key, "expected an integer, got '\(v)'")
        }

        func double(_ d: [String: Any], _ key: String, section: String = "") throws -> Double? {
            guard let v = d[key], !Self.isNull(v) else { return nil }
            guard let x = Self.number(v) else { throw fail(section + key, "expected a number, got '\(v)'") }
            return x
        }

        func bool(_ d: [String: Any], _ key: String, section: String = "") throws -> Bool? {
            guard let v = d[key], !Self.isNull(v) else { return nil }
            guard let b = v as? Bool else { throw fail(section + key, "expected true or false, got '\(v)'") }
            return b
        }

        func string(_ d: [String: Any], _ key: String, section: String = "") throws -> String? {
            guard let v = d[key], !Self.isNull(v) else { return nil }
            return "\(v)"
        }

        func require(_ d: [String: Any], _ key: String, equals expected: Bool, section: String = "") throws {
            if let b = try bool(d, key, section: section), b != expected { throw fail(section + key, "only \(expected) is supported, got \(b)") }
        }

        func require(_ d: [String: Any], _ key: String, equals expected: Int, section: String = "") throws {
            if let i = try int(d, key, section: section), i != expected { throw fail(section + key, "only \(expected) is supported, got \(i)") }
        }

        func require(_ d: [String: Any], _ key: String, equals expected: Double, section: String = "") throws {
            if let x = try double(d, key, section: section), x != expected { throw fail(section + key, "only \(expected) is supported, got \(x)") }
        }

        func require(_ d: [String: Any], _ key: String, equals expected: String, section: String = "") throws {
            if let s = try string(d, key, section: section), s.lowercased() != expected { throw fail(section + key, "only '\(expected)' is supported, got '\(s)'") }
        }
    }
}

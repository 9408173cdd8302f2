/// A masking strategy as a value: what configs, recipes, run folders and checkpoints record.
///
/// Encodes as `{"type": "none" | "patch" | "block" | "crop" | "custom", "ratio", "block_size",
/// "crop_size", "name"}` (only the keys that apply). Parse names at the edge with
/// ``init(name:ratio:)``; build the strategy with ``strategy()``.
///
/// ```swift
/// let spec = try MaskSpec(name: "block4", ratio: 0.9)   // .block(size: 4, ratio: 0.9)
/// let strategy = try spec.strategy()                     // BlockMasking(blockSize: 4, ratio: 0.9)
/// ```
public enum MaskSpec: Codable, Sendable, Equatable, CustomStringConvertible {
    /// No masking (fine-tuning, training from scratch).
    case none
    /// `int(ratio * N)` patches dropped uniformly at random.
    case patch(ratio: Double)
    /// `int(ratio * N) // (b * b)` of the `b x b` blocks dropped.
    case block(size: Int, ratio: Double)
    /// One `c x c` square of patches kept.
    case crop(size: Int)
    /// One square of about `(1 - ratio) N` patches kept.
    case cropRatio(ratio: Double)
    /// A user-defined ``MaskingStrategy``, recorded by its description (pass the strategy itself
    /// to the trainer).
    case custom(name: String)

    /// Parses `none`, `patch`/`random`, `block<b>`, `crop<c>` or `crop` with `ratio`
    /// (the names ``maskingStrategy(named:ratio:)`` takes). A ratio of 0 gives ``none``.
    /// - Throws: ``MaskingError`` naming the strategy.
    public init(name: String, ratio: Double) throws {
        self.init(describing: try maskingStrategy(named: name, ratio: ratio))
    }

    /// The value that records `strategy`: the built-in strategies map to their cases (a ratio of 0
    /// to ``none``), anything else to ``custom(name:)`` with the strategy's description.
    public init(describing strategy: any MaskingStrategy) {
        switch strategy {
        case is NoMasking: self = .none
        case let p as PatchMasking: self = p.ratio == 0 ? .none : .patch(ratio: p.ratio)
        case let b as BlockMasking: self = b.ratio == 0 ? .none : .block(size: b.blockSize, ratio: b.ratio)
        case let c as CropMasking:
            switch c.size {
            case .fixed(let n): self = .crop(size: n)
            case .ratio(let r): self = .cropRatio(ratio: r)
            }
        default: self = .custom(name: String(describing: strategy))
        }
    }

    /// The strategy this value names.
    /// - Throws: ``MaskingError/customStrategy(_:)`` for ``custom(name:)``, which only the
    ///   program that defined it can build.
    public func strategy() throws -> any MaskingStrategy {
        switch self {
        case .none: return NoMasking()
        case .patch(let r): return try maskingStrategy(named: "patch", ratio: r)
        case .block(let b, let r): return try maskingStrategy(named: "block\(b)", ratio: r)
        case .crop(let c): return try maskingStrategy(named: "crop\(c)", ratio: 0)
        case .cropRatio(let r): return try maskingStrategy(named: "crop", ratio: r)
        case .custom(let name): throw MaskingError.customStrategy(name)
        }
    }

    /// `none`, `patch`, `block`, `crop` or `custom`.
    public var type: String {
        switch self {
        case .none: "none"
        case .patch: "patch"
        case .block: "block"
        case .crop, .cropRatio: "crop"
        case .custom: "custom"
        }
    }

    /// The mask ratio (0 for none, nil for a fixed crop or a custom strategy).
    public var ratio: Double? {
        switch self {
        case .none: 0
        case .patch(let r), .block(_, let r), .cropRatio(let r): r
        case .crop, .custom: nil
        }
    }

    /// The block side in patches, for block masking.
    public var blockSize: Int? { if case .block(let b, _) = self { b } else { nil } }

    /// The kept square's side in patches, for a fixed crop.
    public var cropSize: Int? { if case .crop(let c) = self { c } else { nil } }

    /// The name ``init(name:ratio:)`` parses back (`none`, `patch`, `block4`, `crop8`, `crop`).
    public var name: String {
        switch self {
        case .none: "none"
        case .patch: "patch"
        case .block(let b, _): "block\(b)"
        case .crop(let c): "crop\(c)"
        case .cropRatio: "crop"
        case .custom(let n): n
        }
    }

    public var description: String {
        switch self {
        case .none: "none"
        case .crop(let c): "crop\(c)"
        case .custom(let n): "custom(\(n))"
        default: "\(name)(\(ratio ?? 0))"
        }
    }

    private enum Keys: String, CodingKey { case type, ratio, blockSize = "block_size", cropSize = "crop_size", name }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: Keys.self)
        let type = try c.decode(String.self, forKey: .type)
        let ratio = try c.decodeIfPresent(Double.self, forKey: .ratio)
        switch type {
        case "none": self = .none
        case "patch": self = .patch(ratio: ratio ?? 0)
        case "block":
            let size = try c.decode(Int.self, forKey: .blockSize)
            guard size >= 1 else { throw DecodingError.dataCorruptedError(forKey: .blockSize, in: c, debugDescription: "block size \(size) must be at least 1") }
            self = .block(size: size, ratio: ratio ?? 0)
        case "crop":
            if let size = try c.decodeIfPresent(Int.self, forKey: .cropSize) {
                guard size >= 1 else { throw DecodingError.dataCorruptedError(forKey: .cropSize, in: c, debugDescription: "crop size \(size) must be at least 1") }
                self = .crop(size: size)
            } else {
                self = .cropRatio(ratio: ratio ?? 0)
            }
        case "custom": self = .custom(name: try c.decodeIfPresent(String.self, forKey: .name) ?? "custom")
        default:
            throw DecodingError.dataCorruptedError(forKey: .type, in: c, debugDescription: "unknown mask type '\(type)'")
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: Keys.self)
        try c.encode(type, forKey: .type)
        try c.encodeIfPresent(ratio, forKey: .ratio)
        try c.encodeIfPresent(blockSize, forKey: .blockSize)
        try c.encodeIfPresent(cropSize, forKey: .cropSize)
        if case .custom(let n) = self { try c.encode(n, forKey: .name) }
    }
}

import Foundation
import Tensor

/// Architecture of a ``MaskedUViT``. JSON uses the reference implementation's names
/// (`img_size`, `patch_size`, `in_chans`, `encoder_embed_dim`, `encoder_depth`, `encoder_heads`,
/// `mlp_ratio`, `qkv_bias`); `img_size` may be an integer or `[height, width]`.
public struct MaskedUViTConfig: Codable, Sendable, Equatable, CustomStringConvertible {
    /// Image height in pixels.
    public var imageHeight: Int
    /// Image width in pixels.
    public var imageWidth: Int
    /// Patch side P in pixels.
    public var patchSize: Int
    /// Image channels C.
    public var inChannels: Int
    /// Token width D.
    public var embedDim: Int
    /// The reference's `encoder_depth`: `depth / 2` in-blocks, one mid block, `depth / 2` out-blocks.
    public var depth: Int
    /// Attention heads per block.
    public var heads: Int
    /// MLP hidden width as a multiple of D.
    public var mlpRatio: Double
    /// Whether attention has query and value biases.
    public var qkvBias: Bool

    /// A config for square images of side `imageSize`.
    public init(imageSize: Int, patchSize: Int = 4, inChannels: Int = 3, embedDim: Int, depth: Int, heads: Int,
                mlpRatio: Double = 4, qkvBias: Bool = false) {
        self.init(imageHeight: imageSize, imageWidth: imageSize, patchSize: patchSize, inChannels: inChannels,
                  embedDim: embedDim, depth: depth, heads: heads, mlpRatio: mlpRatio, qkvBias: qkvBias)
    }

    /// A config for `imageHeight` x `imageWidth` images.
    public init(imageHeight: Int, imageWidth: Int, patchSize: Int = 4, inChannels: Int = 3, embedDim: Int,
                depth: Int, heads: Int, mlpRatio: Double = 4, qkvBias: Bool = false) {
        self.imageHeight = imageHeight; self.imageWidth = imageWidth; self.patchSize = patchSize
        self.inChannels = inChannels; self.embedDim = embedDim; self.depth = depth; self.heads = heads
        self.mlpRatio = mlpRatio; self.qkvBias = qkvBias
    }

    /// U-ViT-S/4 as MaskDM uses it: D 512, 13 blocks, 8 heads (44,292,144 parameters at 64 px).
    public static func small(imageSize: Int = 64) -> MaskedUViTConfig {
        MaskedUViTConfig(imageSize: imageSize, embedDim: 512, depth: 13, heads: 8)
    }
    /// U-ViT-B/4: D 768, 13 blocks, 12 heads.
    public static func base(imageSize: Int = 256) -> MaskedUViTConfig {
        MaskedUViTConfig(imageSize: imageSize, embedDim: 768, depth: 13, heads: 12)
    }
    /// The CPU demo network: D 256, 9 blocks, 4 heads, 32 px.
    public static func tiny(imageSize: Int = 32) -> MaskedUViTConfig {
        MaskedUViTConfig(imageSize: imageSize, embedDim: 256, depth: 9, heads: 4)
    }

    /// Named configs: `tiny`, `small`, `base`.
    public static func named(_ name: String, imageSize: Int? = nil) -> MaskedUViTConfig? {
        switch name {
        case "tiny": return .tiny(imageSize: imageSize ?? 32)
        case "small": return .small(imageSize: imageSize ?? 64)
        case "base": return .base(imageSize: imageSize ?? 256)
        default: return nil
        }
    }

    /// Patch grid height.
    public var gridHeight: Int { imageHeight / patchSize }
    /// Patch grid width.
    public var gridWidth: Int { imageWidth / patchSize }
    /// Number of patches N.
    public var patchCount: Int { gridHeight * gridWidth }
    /// Width of one patch vector, `P * P * C`.
    public var patchDimensions: Int { patchSize * patchSize * inChannels }
    /// Hidden width of the MLPs.
    public var mlpHiddenDimensions: Int {
        let h = Double(embedDim) * mlpRatio
        return h.isFinite && abs(h) < 1e15 ? Int(h) : 0        // out of range: 0, which validate() refuses
    }

    /// Checks the config is buildable; throws ``ViTDiffusionError/invalidConfig(file:field:problem:)``
    /// naming the offending field.
    public func validate() throws {
        func fail(_ field: String, _ s: String) -> ViTDiffusionError { .invalidConfig(file: nil, field: field, problem: s) }
        guard imageHeight > 0, imageWidth > 0 else { throw fail("img_size", "must be positive, got \(imageHeight)x\(imageWidth)") }
        guard patchSize > 0 else { throw fail("patch_size", "must be positive, got \(patchSize)") }
        guard imageHeight % patchSize == 0, imageWidth % patchSize == 0 else {
            throw fail("img_size", "\(imageHeight)x\(imageWidth) is not divisible by patch_size \(patchSize)")
        }
        guard inChannels > 0 else { throw fail("in_chans", "must be positive, got \(inChannels)") }
        guard embedDim > 0, embedDim % 2 == 0 else { throw fail("encoder_embed_dim", "must be positive and even, got \(embedDim)") }
        guard heads > 0, embedDim % heads == 0 else {
            throw fail("encoder_embed_dim", "\(embedDim) is not divisible by encoder_heads \(heads)")
        }
        guard depth >= 1 else { throw fail("encoder_depth", "must be at least 1, got \(depth)") }
        guard mlpRatio > 0 && mlpRatio.isFinite else { throw fail("mlp_ratio", "must be positive, got \(mlpRatio)") }
        // Bounds no network a CPU can train comes near (ViT-22B: width 6144, depth 48, MLP 24576),
        // so that a typo fails here rather than as an allocation of terabytes.
        guard depth <= 1024 else { throw fail("encoder_depth", "\(depth) is above 1024 blocks") }
        guard embedDim <= 65_536 else { throw fail("encoder_embed_dim", "\(embedDim) is above 65536") }
        guard (1...262_144).contains(mlpHiddenDimensions) else {
            throw fail("mlp_ratio", "\(mlpRatio) at width \(embedDim) gives an MLP outside 1 to 262144 units")
        }
        guard imageHeight <= 16_384 && imageWidth <= 16_384 && patchCount <= 1 << 20 else {
            throw fail("img_size", "\(imageHeight)x\(imageWidth) in patches of \(patchSize) is above 16384 pixels a side or 2^20 patches")
        }
        guard inChannels <= 64 else { throw fail("in_chans", "\(inChannels) is above 64") }
    }

    enum CodingKeys: String, CodingKey {
        case imgSize = "img_size", patchSize = "patch_size", inChans = "in_chans", embedDim = "encoder_embed_dim"
        case depth = "encoder_depth", heads = "encoder_heads", mlpRatio = "mlp_ratio", qkvBias = "qkv_bias"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        if let s = try? c.decode(Int.self, forKey: .imgSize) {
            imageHeight = s; imageWidth = s
        } else {
            let hw = try c.decode([Int].self, forKey: .imgSize)
            guard hw.count == 2 else {
                throw DecodingError.dataCorruptedError(forKey: .imgSize, in: c, debugDescription: "img_size must be an int or [height, width]")
            }
            imageHeight = hw[0]; imageWidth = hw[1]
        }
        patchSize = try c.decodeIfPresent(Int.self, forKey: .patchSize) ?? 4
        inChannels = try c.decodeIfPresent(Int.self, forKey: .inChans) ?? 3
        embedDim = try c.decode(Int.self, forKey: .embedDim)
        depth = try c.decode(Int.self, forKey: .depth)
        heads = try c.decode(Int.self, forKey: .heads)
        mlpRatio = try c.decodeIfPresent(Double.self, forKey: .mlpRatio) ?? 4
        qkvBias = try c.decodeIfPresent(Bool.self, forKey: .qkvBias) ?? false
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        if imageHeight == imageWidth { try c.encode(imageHeight, forKey: .imgSize) } else { try c.encode([imageHeight, imageWidth], forKey: .imgSize) }
        try c.encode(patchSize, forKey: .patchSize); try c.encode(inChannels, forKey: .inChans)
        try c.encode(embedDim, forKey: .embedDim); try c.encode(depth, forKey: .depth); try c.encode(heads, forKey: .heads)
        try c.encode(mlpRatio, forKey: .mlpRatio); try c.encode(qkvBias, forKey: .qkvBias)
    }

    /// Reads a JSON config file; errors name the file and the field.
    public static func load(from url: URL) throws -> MaskedUViTConfig {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw ViTDiffusionError.unreadableConfig(file: url.path, problem: "cannot read: \(fileProblem(error, at: url.path))")
        }
        do {
            let c = try JSONDecoder().decode(MaskedUViTConfig.self, from: data)
            try c.validate()
            return c
        } catch ViTDiffusionError.invalidConfig(_, let field, let problem) {
            throw ViTDiffusionError.invalidConfig(file: url.path, field: field, problem: problem)
        } catch let DecodingError.keyNotFound(key, _) {
            throw ViTDiffusionError.invalidConfig(file: url.path, field: key.stringValue, problem: "is missing")
        } catch let DecodingError.typeMismatch(_, ctx) {
            throw ViTDiffusionError.invalidConfig(file: url.path, field: ctx.codingPath.map(\.stringValue).joined(separator: "."),
                                                  problem: "has the wrong type")
        } catch {
            throw ViTDiffusionError.unreadableConfig(file: url.path, problem: "\(error)")
        }
    }

    /// The config as compact JSON (reference names), e.g. for checkpoint metadata.
    public var json: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return (try? enc.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    public var description: String {
        "MaskedUViT(\(imageHeight)x\(imageWidth), p\(patchSize), D \(embedDim), depth \(depth), heads \(heads))"
    }
}


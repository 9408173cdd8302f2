import Foundation
import NN
import Tensor

/// One pre-norm U-ViT block: optional long-skip fusion `skip_linear(concat(x, skip))`, then
/// `x + attn(norm1(x))` and `x + mlp(norm2(x))`.
public struct UViTBlock: Sendable {
    /// LayerNorm before attention.
    public let norm1: LayerNorm
    /// Multi-head self-attention.
    public let attn: MultiHeadAttention
    /// LayerNorm before the MLP.
    public let norm2: LayerNorm
    /// The MLP (D -> `mlpRatio * D` -> D).
    public let mlp: MLP
    /// The long-skip fusion (2D -> D) of out-blocks; nil for in- and mid blocks.
    public let skipLinear: Linear?

    /// Creates the block's layers under `b`'s prefix; `skip` adds `skipLinear`.
    public init(_ b: ParameterBuilder, config c: MaskedUViTConfig, skip: Bool, rng: inout RandomGenerator) {
        norm1 = LayerNorm(b.scope("norm1"), dimensions: c.embedDim)
        attn = MultiHeadAttention(b.scope("attn"), dimensions: c.embedDim, heads: c.heads, qkvBias: c.qkvBias, rng: &rng)
        norm2 = LayerNorm(b.scope("norm2"), dimensions: c.embedDim)
        mlp = MLP(b.scope("mlp"), dimensions: c.embedDim, hiddenDimensions: c.mlpHiddenDimensions, rng: &rng)
        skipLinear = skip ? Linear(b.scope("skip_linear"), inputDimensions: 2 * c.embedDim, outputDimensions: c.embedDim, rng: &rng) : nil
    }

    /// x (B, T, D), skip (B, T, D) for out-blocks -> (B, T, D).
    public func callAsFunction(_ x: Variable, skip: Variable? = nil, tape: Tape?) -> Variable {
        var h = x
        if let skipLinear, let skip { h = skipLinear(concatenating: [h, skip], tape: tape) }
        h = Functional.add(h, attn(h, normalizedBy: norm1, tape: tape), tape: tape)
        return Functional.add(h, mlp(h, normalizedBy: norm2, tape: tape), tape: tape)
    }
}

/// MaskDM's network: a U-ViT with token dropping (reference `models/mask_uvit.py`).
///
/// Patch embedding, a raw sinusoidal time token (cos first) prepended at index 0, a learned
/// position embedding over 1 + N tokens added to every token, dropping of masked patch tokens
/// (raster order kept), `depth / 2` in-blocks, a mid block and `depth / 2` out-blocks with LIFO
/// long skips, a final LayerNorm and a linear head to `P * P * C` per token (no final conv).
/// Parameter names are the reference's state-dict keys.
///
/// ```swift
/// var rng = RandomGenerator(seed: 0)
/// let model = MaskedUViT(config: .tiny(), rng: &rng)
/// let eps = model.predictNoise(xt, timesteps: [999, 10])            // (B, 3, 32, 32)
/// let tape = Tape()
/// let loss = model.loss(xt: xt, timesteps: t, noise: eps, visiblePatches: mask.visible, tape: tape)
/// tape.backward(from: loss)
/// ```
public struct MaskedUViT: Sendable {
    /// The architecture.
    public let config: MaskedUViTConfig
    /// Every parameter, named as the reference's state dict.
    public let store: ParameterStore
    /// The patch embedding (C x P x P -> D per patch).
    public let patchEmbed: PatchEmbedding
    /// Learned position embedding (1, 1 + N, D); index 0 is the time token's.
    public let positionEmbedding: Parameter
    /// The `depth / 2` in-blocks, whose outputs feed the long skips.
    public let inBlocks: [UViTBlock]
    /// The mid block.
    public let midBlock: UViTBlock
    /// The `depth / 2` out-blocks, each fusing one long skip (LIFO).
    public let outBlocks: [UViTBlock]
    /// The final LayerNorm.
    public let norm: LayerNorm
    /// The output head (D -> P * P * C per token).
    public let head: Linear

    /// Builds the network with MaskDM's initialisation (truncated normal std 0.02 for linears and
    /// the position embedding, zero biases, unit LayerNorms, PyTorch's default for the patch conv).
    public init(config c: MaskedUViTConfig, rng: inout RandomGenerator) {
        self.init(config: c, initialized: true, rng: &rng)
    }

    /// A second network with `other`'s config and a copy of its weights in a store of its own
    /// (no initialisers run: building an EMA shadow or a transferred model costs a copy, not an init).
    public init(copying other: MaskedUViT) {
        var unused = RandomGenerator(seed: 0)
        self.init(config: other.config, initialized: false, rng: &unused)
        store.copyValues(from: other.store)
    }

    /// A network that computes with `other`'s weights (the same storage, not a copy) but
    /// accumulates gradients in an arena of its own: one replica per thread when a trainer splits
    /// its batch across threads (see ``DiffusionTrainer/dataParallelThreads``).
    public init(sharingWeightsOf other: MaskedUViT) {
        var unused = RandomGenerator(seed: 0)
        self.init(config: other.config, initialized: false, rng: &unused)
        store.shareValues(with: other.store)
    }

    private init(config c: MaskedUViTConfig, initialized: Bool, rng: inout RandomGenerator) {
        precondition((try? c.validate()) != nil, "MaskedUViT: invalid config \(c)")
        config = c
        store = ParameterStore()
        let root = initialized ? store.builder : store.placeholderBuilder
        let enc = root.scope("encoder")
        positionEmbedding = enc.parameter("encoder_pos_embed", shape: [1, 1 + c.patchCount, c.embedDim],
                                          initializer: .truncatedNormal([1, 1 + c.patchCount, c.embedDim], std: 0.02, using: &rng))
        patchEmbed = PatchEmbedding(enc.scope("patch_embed").scope("proj"), channels: c.inChannels, dimensions: c.embedDim,
                                    patchSize: c.patchSize, rng: &rng)
        var ins: [UViTBlock] = []
        for i in 0..<(c.depth / 2) { ins.append(UViTBlock(enc.scope("in_blocks").scope(i), config: c, skip: false, rng: &rng)) }
        inBlocks = ins
        midBlock = UViTBlock(enc.scope("mid_block"), config: c, skip: false, rng: &rng)
        var outs: [UViTBlock] = []
        for i in 0..<(c.depth / 2) { outs.append(UViTBlock(enc.scope("out_blocks").scope(i), config: c, skip: true, rng: &rng)) }
        outBlocks = outs
        norm = LayerNorm(enc.scope("norm"), dimensions: c.embedDim)
        head = Linear(root.scope("encoder_to_output"), inputDimensions: c.embedDim, outputDimensions: c.patchDimensions, rng: &rng)
    }

    /// Number of parameters.
    public var parameterCount: Int { store.count }

    /// The network on noisy images `x` (B, C, H, W) at integer steps `timesteps` (B).
    ///
    /// - Parameter visiblePatches: nil for the full image, or one sorted list of kept patch
    ///   indices per item (equal lengths), e.g. `Mask.visible`.
    /// - Returns: predicted noise tokens (B, NV, P * P * C) in `(p1 p2 c)` layout, NV = N without a mask.
    public func tokens(_ x: Tensor, timesteps: [Float], visiblePatches: [[Int]]?, tape: Tape?) -> Variable {
        let c = config
        let (b, ch, h, w) = x.shape.dims4()
        precondition(ch == c.inChannels && h == c.imageHeight && w == c.imageWidth,
                     "MaskedUViT: input \(x.shape) does not match config \(c)")
        precondition(timesteps.count == b, "MaskedUViT: \(timesteps.count) timesteps for a batch of \(b)")
        if let v = visiblePatches {
            precondition(v.count == b && v.allSatisfy { $0.count == v[0].count },
                         "MaskedUViT: need \(b) visible-patch lists of equal length")
        }
        let embedded = patchEmbed(x, patches: visiblePatches, tape: tape)                       // (B, NV, D)
        let time = sinusoidalTimeEmbedding(timesteps, dimensions: c.embedDim)                    // (B, D)
        var hdn = Functional.prependTokenAndAddPositions(embedded, first: time, position: positionEmbedding,
                                                         positions: visiblePatches, store: store, tape: tape)  // (B, 1+NV, D)
        var skips: [Variable] = []
        for blk in inBlocks { hdn = blk(hdn, tape: tape); skips.append(hdn) }
        hdn = midBlock(hdn, tape: tape)
        for blk in outBlocks { hdn = blk(hdn, skip: skips.removeLast(), tape: tape) }
        // Norm and head are per token, so dropping the time token first is exact and cheaper.
        hdn = Functional.dropLeadingTokens(hdn, tape: tape)
        return head(hdn, normalizedBy: norm, tape: tape)
    }

    /// The network's output for full images (inference, no tape): (B, C, H, W); predicted noise
    /// for an eps-trained model (see `PredictionTarget` for the others).
    ///
    /// The batch is split across `Parallel.threads`, one share of the images per thread, each
    /// share run on its thread alone (no waiting between threads inside each product; not when the
    /// products go to OpenBLAS, see ``Gemm/instructionSet``). Every
    /// kernel treats images independently, so the result is the same, bit for bit, as one pass.
    public func predictNoise(_ x: Tensor, timesteps: [Float]) -> Tensor {
        let c = config
        let b = x.shape.rank > 0 ? x.shape[0] : 0
        let parts = parallelShareCount(Parallel.threads, of: b)   // 1 on OpenBLAS
        let out: Tensor
        if parts > 1 && timesteps.count == b {
            var shares = [Tensor?](repeating: nil, count: parts)
            shares.withUnsafeMutableBufferPointer { buffer in
                let slots = SendablePointer(buffer.baseAddress!)
                parallelShares(of: b, parts: parts) { i, rows in
                    slots[i] = tokens(x.sliced(axis: 0, rows), timesteps: Array(timesteps[rows]),
                                      visiblePatches: nil, tape: nil).value
                }
            }
            out = Tensor.concat(shares.map { $0! }, axis: 0)
        } else {
            out = tokens(x, timesteps: timesteps, visiblePatches: nil, tape: nil).value
        }
        return out.unpatchified(patch: c.patchSize, channels: c.inChannels, height: c.imageHeight, width: c.imageWidth)
    }

    /// ``predictNoise(_:timesteps:)`` at integer steps (as samplers hand them over).
    public func predictNoise(_ x: Tensor, timesteps: [Int]) -> Tensor {
        predictNoise(x, timesteps: timesteps.map(Float.init))
    }

    /// A network with the config recorded in `checkpoint`'s metadata and its online weights
    /// (`ema: true`: its EMA weights), loaded strictly.
    public static func load(checkpoint url: URL, ema: Bool = false) throws -> MaskedUViT {
        let (config, _) = try DiffusionTrainer.describe(checkpoint: url)
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: config, rng: &rng)
        try Checkpoint.load(from: url, into: model.store, prefix: ema ? "ema." : "")
        return model
    }

    /// MaskDM's denoising score-matching loss: MSE between the predicted tokens of the visible
    /// patches and `patchify(noise)` at the same positions (all patches without a mask).
    public func loss(xt: Tensor, timesteps: [Float], noise: Tensor, visiblePatches: [[Int]]?, tape: Tape?) -> Variable {
        loss(xt: xt, timesteps: timesteps, target: noise, visiblePatches: visiblePatches, kind: .l2, tape: tape)
    }

    /// The loss `kind` between the predicted tokens of the visible patches and `patchify(target)`
    /// at the same positions; `target` (B, C, H, W) is eps, x0 or v (see `PredictionTarget`).
    public func loss(xt: Tensor, timesteps: [Float], target: Tensor, visiblePatches: [[Int]]?, kind: RegressionLoss,
                     tape: Tape?) -> Variable {
        let pred = tokens(xt, timesteps: timesteps, visiblePatches: visiblePatches, tape: tape)
        let want = Self.targetTokens(target, patch: config.patchSize, visiblePatches: visiblePatches)
        return Functional.regressionLoss(kind, pred, target: want, tape: tape)
    }

    /// `patchify(noise)` restricted to the visible patches: (B, NV, P * P * C).
    public static func targetTokens(_ noise: Tensor, patch: Int, visiblePatches: [[Int]]?) -> Tensor {
        let all = noise.patchified(patch: patch)                                                 // (B, N, PPC)
        guard let visiblePatches else { return all }
        let (b, n, d) = all.shape.dims3()
        let rows = visiblePatches.enumerated().flatMap { bi, v in v.map { bi * n + $0 } }
        return all.reshaped([b * n, d]).gatherRows(rows).reshaped([b, visiblePatches[0].count, d])
    }
}

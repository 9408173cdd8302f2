import Foundation
import Tensor

/// How a weight tensor is initialised.
public enum Initializer: Sendable {
    /// Truncated normal with the given std, cut at +-2 (absolute), as `trunc_normal_(std=...)`.
    case truncatedNormal(std: Float)
    /// PyTorch's default for Linear/Conv weights: kaiming-uniform with a = sqrt(5), i.e.
    /// U(-1/sqrt(fanIn), 1/sqrt(fanIn)).
    case kaimingUniform
    /// All zeros.
    case zeros
    /// All ones.
    case ones

    /// A tensor of `shape` initialised by this rule; `fanIn` is used by `kaimingUniform`.
    public func make(_ shape: Shape, fanIn: Int, rng: inout RandomGenerator) -> Tensor {
        switch self {
        case .truncatedNormal(let std): return .truncatedNormal(shape, std: std, using: &rng)
        case .kaimingUniform:
            let bound = 1 / Float(Swift.max(fanIn, 1)).squareRoot()
            return .randomUniform(shape, low: -bound, high: bound, using: &rng)
        case .zeros: return .zeros(shape)
        case .ones: return .ones(shape)
        }
    }
}

/// `y = x W^T + b`, weight (OUT, IN) as in PyTorch.
public struct Linear: Sendable {
    /// Weight (OUT, IN).
    public let weight: Parameter
    /// Bias (OUT), or nil for a layer built without one.
    public let bias: Parameter?
    let store: ParameterStore

    /// Creates `weight` and (optionally) `bias` under `builder`'s prefix. MaskDM initialises every
    /// Linear with a truncated normal (std 0.02) and zero bias; `.kaimingUniform` gives PyTorch's
    /// default (with its uniform bias).
    public init(_ builder: ParameterBuilder, inputDimensions: Int, outputDimensions: Int, bias: Bool = true,
                initializer: Initializer = .truncatedNormal(std: 0.02), rng: inout RandomGenerator) {
        store = builder.store
        weight = builder.parameter("weight", shape: [outputDimensions, inputDimensions],
                                   initializer: initializer.make([outputDimensions, inputDimensions], fanIn: inputDimensions, rng: &rng))
        if bias {
            let kaiming: Bool
            if case .kaimingUniform = initializer { kaiming = true } else { kaiming = false }
            self.bias = builder.parameter("bias", shape: [outputDimensions], initializer: kaiming
                ? Initializer.kaimingUniform.make([outputDimensions], fanIn: inputDimensions, rng: &rng) : .zeros([outputDimensions]))
        } else {
            self.bias = nil
        }
    }

    /// Applies the layer over the last axis.
    public func callAsFunction(_ x: Variable, tape: Tape?) -> Variable {
        Functional.linear(x, weight: weight, bias: bias, store: store, tape: tape)
    }

    /// Applies the layer to the concatenation of `parts` along the last axis, without building it
    /// (see ``Functional/linear(concatenating:weight:bias:store:tape:)``).
    public func callAsFunction(concatenating parts: [Variable], tape: Tape?) -> Variable {
        Functional.linear(concatenating: parts, weight: weight, bias: bias, store: store, tape: tape)
    }

    /// `self(norm(x))` as one primitive that recomputes the normalised input in the backward pass
    /// instead of keeping it (see ``Functional/layerNormLinear(_:normWeight:normBias:eps:weight:bias:store:tape:)``).
    public func callAsFunction(_ x: Variable, normalizedBy norm: LayerNorm, tape: Tape?) -> Variable {
        Functional.layerNormLinear(x, normWeight: norm.weight, normBias: norm.bias, eps: norm.eps,
                                   weight: weight, bias: bias, store: store, tape: tape)
    }
}

/// LayerNorm over the last axis with affine parameters (`weight` = 1, `bias` = 0 at init).
public struct LayerNorm: Sendable {
    /// Scale (D), initialised to 1.
    public let weight: Parameter
    /// Shift (D), initialised to 0.
    public let bias: Parameter
    /// Added to the variance before the square root.
    public let eps: Float
    let store: ParameterStore

    /// Creates `weight` and `bias` of width `dimensions` under `builder`'s prefix.
    public init(_ builder: ParameterBuilder, dimensions: Int, eps: Float = 1e-5) {
        store = builder.store
        weight = builder.parameter("weight", .ones([dimensions]))
        bias = builder.parameter("bias", .zeros([dimensions]))
        self.eps = eps
    }

    /// Normalises x over its last axis, then scales and shifts: (..., D) -> (..., D).
    public func callAsFunction(_ x: Variable, tape: Tape?) -> Variable {
        Functional.layerNorm(x, weight: weight, bias: bias, eps: eps, store: store, tape: tape)
    }
}

/// Transformer MLP: `fc2(gelu(fc1(x)))`, hidden width `ratio * D`.
public struct MLP: Sendable {
    /// The expansion layer (D -> hidden).
    public let fc1: Linear
    /// The projection back (hidden -> D).
    public let fc2: Linear

    /// Creates `fc1` and `fc2` under `builder`'s `fc1` and `fc2` scopes.
    public init(_ builder: ParameterBuilder, dimensions: Int, hiddenDimensions: Int, rng: inout RandomGenerator) {
        fc1 = Linear(builder.scope("fc1"), inputDimensions: dimensions, outputDimensions: hiddenDimensions, rng: &rng)
        fc2 = Linear(builder.scope("fc2"), inputDimensions: hiddenDimensions, outputDimensions: dimensions, rng: &rng)
    }

    /// `fc2(gelu(fc1(x)))` with exact GELU: (..., D) -> (..., D).
    public func callAsFunction(_ x: Variable, tape: Tape?) -> Variable {
        fc2(Functional.gelu(fc1(x, tape: tape), tape: tape), tape: tape)
    }

    /// `self(norm(x))`, with the normalisation fused into `fc1` (recomputed, not stored, for backward).
    public func callAsFunction(_ x: Variable, normalizedBy norm: LayerNorm, tape: Tape?) -> Variable {
        fc2(Functional.gelu(fc1(x, normalizedBy: norm, tape: tape), tape: tape), tape: tape)
    }
}

/// Multi-head self-attention: `proj(attention(qkv(x)))`, qkv (3D, D) without bias by default
/// (as MaskDM), scale `HS^-1/2`, no dropout, no attention mask. With `qkvBias`, BEiT-style
/// biases as the reference: `q_bias` and `v_bias` (D each) and no key bias.
public struct MultiHeadAttention: Sendable {
    /// The fused qkv projection (D -> 3D), without bias.
    public let qkv: Linear
    /// The output projection (D -> D).
    public let proj: Linear
    /// Number of heads NH; the head size is D / NH.
    public let heads: Int
    /// Query bias (D), present with `qkvBias`.
    public let qBias: Parameter?
    /// Value bias (D), present with `qkvBias`.
    public let vBias: Parameter?
    let store: ParameterStore

    /// Creates the projections (and, with `qkvBias`, the q and v biases); `dimensions` must be divisible by `heads`.
    public init(_ builder: ParameterBuilder, dimensions: Int, heads: Int, qkvBias: Bool = false,
                rng: inout RandomGenerator) {
        precondition(dimensions % heads == 0, "MultiHeadAttention: width \(dimensions) not divisible by \(heads) heads")
        self.heads = heads
        store = builder.store
        qkv = Linear(builder.scope("qkv"), inputDimensions: dimensions, outputDimensions: 3 * dimensions, bias: false, rng: &rng)
        qBias = qkvBias ? builder.parameter("q_bias", .zeros([dimensions])) : nil
        vBias = qkvBias ? builder.parameter("v_bias", .zeros([dimensions])) : nil
        proj = Linear(builder.scope("proj"), inputDimensions: dimensions, outputDimensions: dimensions, rng: &rng)
    }

    /// x (B, T, D) -> (B, T, D).
    public func callAsFunction(_ x: Variable, tape: Tape?) -> Variable {
        attend(qkv(x, tape: tape), tape: tape)
    }

    /// `self(norm(x))`, with the normalisation fused into the qkv projection (recomputed, not
    /// stored, for backward).
    public func callAsFunction(_ x: Variable, normalizedBy norm: LayerNorm, tape: Tape?) -> Variable {
        attend(qkv(x, normalizedBy: norm, tape: tape), tape: tape)
    }

    private func attend(_ packed: Variable, tape: Tape?) -> Variable {
        var h = packed
        if let qBias, let vBias { h = Functional.addQueryValueBias(h, q: qBias, v: vBias, store: store, tape: tape) }
        return proj(Functional.attention(h, heads: heads, tape: tape), tape: tape)
    }
}

/// Patch embedding: Conv2d(C, D, kernel = stride = P) written as a Linear over flattened
/// (c, p1, p2) patches. Weight (D, C, P, P), bias (D), PyTorch's default conv init.
public struct PatchEmbedding: Sendable {
    /// Weight (D, C, P, P), as the PyTorch conv's.
    public let weight: Parameter
    /// Bias (D).
    public let bias: Parameter
    /// Patch side P in pixels (the conv's kernel and stride).
    public let patchSize: Int
    /// Image channels C.
    public let channels: Int
    let store: ParameterStore

    /// Creates `weight` and `bias` under `builder`'s prefix with PyTorch's default conv init.
    public init(_ builder: ParameterBuilder, channels: Int, dimensions: Int, patchSize: Int, rng: inout RandomGenerator) {
        store = builder.store
        self.patchSize = patchSize
        self.channels = channels
        let fanIn = channels * patchSize * patchSize
        weight = builder.parameter("weight", shape: [dimensions, channels, patchSize, patchSize],
                                   initializer: Initializer.kaimingUniform.make([dimensions, channels, patchSize, patchSize], fanIn: fanIn, rng: &rng))
        bias = builder.parameter("bias", shape: [dimensions],
                                 initializer: Initializer.kaimingUniform.make([dimensions], fanIn: fanIn, rng: &rng))
    }

    /// Embeds the patches of images x (B, C, H, W) in raster order, or only the patches listed in
    /// `patches` (one sorted index list per batch item, equal lengths) -> (B, NV, D).
    /// The images are data: no gradient flows into them.
    public func callAsFunction(_ x: Tensor, patches: [[Int]]?, tape: Tape?) -> Variable {
        let (b, c, h, w) = x.shape.dims4()
        let p = patchSize
        precondition(c == channels && h % p == 0 && w % p == 0,
                     "PatchEmbedding: image \(x.shape) does not fit \(channels) channels and patch \(p)")
        let nv = patches?.first?.count ?? (h / p) * (w / p)
        var cols = Tensor(uninitialized: [b, nv, c * p * p])
        withExtendedLifetime(x.storage) {
            Kernels.gatherPatches(images: x.storage.base, out: cols.mutablePointer(), batch: b, channels: c,
                                  height: h, width: w, patch: p, indices: patches)
        }
        return Functional.linear(Variable(cols), weight: weight, bias: bias, store: store, tape: tape)
    }
}

/// The sinusoidal time embedding of MaskDM / U-ViT: `concat(cos(t * f), sin(t * f))` with
/// `f_i = exp(-ln(10000) * i / half)`, cos first, computed in Float32 as PyTorch does.
/// - Returns: (B, D).
public func sinusoidalTimeEmbedding(_ timesteps: [Float], dimensions d: Int, maxPeriod: Float = 10000) -> Tensor {
    let half = d / 2
    let freqs: [Float] = (0..<half).map { i in Foundation.exp(-Foundation.log(maxPeriod) * Float(i) / Float(half)) }
    var values = [Float](repeating: 0, count: timesteps.count * d)      // an odd d leaves the last column 0
    for (b, t) in timesteps.enumerated() {
        for i in 0..<half {
            let arg = t * freqs[i]
            values[b * d + i] = Foundation.cos(arg)
            values[b * d + half + i] = Foundation.sin(arg)
        }
    }
    return Tensor(values, shape: [timesteps.count, d])
}

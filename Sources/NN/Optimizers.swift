import Foundation
import Tensor

/// AdamW with PyTorch's exact update (`torch.optim.AdamW`, non-amsgrad, non-fused):
/// `p -= lr * wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;`
/// `p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)`.
/// Moments live in arenas parallel to the ``ParameterStore``; frozen parameters are skipped.
public final class AdamW: @unchecked Sendable {
    // @unchecked Sendable: owned by one training loop.
    /// The parameters it updates, whose gradients it reads.
    public let store: ParameterStore
    /// Learning rate of the next update.
    public var learningRate: Float
    /// Decay rate of the first moment.
    public var beta1: Float
    /// Decay rate of the second moment.
    public var beta2: Float
    /// Added to the bias-corrected `sqrt(v)` in the denominator.
    public var eps: Float
    /// Decoupled weight decay: each update first multiplies the weights by `1 - lr * weightDecay`.
    public var weightDecay: Float
    /// Number of steps taken (PyTorch's `state['step']`).
    public internal(set) var step: Int = 0
    /// First moments, same layout as the store's values.
    public internal(set) var m: TensorStorage
    /// Second moments.
    public internal(set) var v: TensorStorage

    /// An optimizer over `store` with zeroed moments; the defaults are MaskDM's.
    public init(store: ParameterStore, learningRate: Float = 2e-4, beta1: Float = 0.99, beta2: Float = 0.99,
                eps: Float = 1e-8, weightDecay: Float = 0.03) {
        self.store = store
        self.learningRate = learningRate
        self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
        m = TensorStorage(count: store.count, repeating: 0)
        v = TensorStorage(count: store.count, repeating: 0)
    }

    /// One update of every non-frozen parameter from the store's gradients, each multiplied by
    /// `gradientScale` first when it is below 1 (``clippingScale(norm:maxNorm:)``: the same
    /// arithmetic as clipping the gradients in place, without the extra pass over them).
    public func update(gradientScale: Float = 1) {
        update(gradientScale: gradientScale, averagingInto: nil)
    }

    /// One update, as ``update(gradientScale:)``, with `ema`'s update done in the same pass over
    /// the arena (bit-identical to calling `ema.update()` afterwards, one read of the weights
    /// fewer). `ema` must average this optimizer's store. Frozen parameters are averaged too.
    public func update(gradientScale: Float = 1, averagingInto ema: ExponentialMovingAverage?) {
        precondition(ema == nil || ema!.online === store, "AdamW.update: the EMA averages another store")
        step += 1
        let lr = learningRate
        // PyTorch computes the bias corrections in Python floats (double).
        let bc1 = 1 - Foundation.pow(Double(beta1), Double(step))
        let bc2 = 1 - Foundation.pow(Double(beta2), Double(step))
        let k = AdamWStepConstants(decay: 1 - lr * weightDecay, beta1: beta1, beta2: beta2, eps: eps,
                                   stepSize: Float(Double(lr) / bc1), biasCorrection2Root: Float(bc2.squareRoot()),
                                   gradientScale: gradientScale)
        // One pass over each run of consecutive trainable parameters (the whole arena when
        // nothing is frozen).
        let p = store.values.mutableBase, g = store.gradients.base
        let runs = trainableRuns()
        guard let ema else {
            for run in runs { Kernels.adamW(parameters: p, gradients: g, m: m.mutableBase, v: v.mutableBase, range: run, k) }
            return
        }
        let weight = ema.advance(), shadow = ema.shadow.values.mutableBase
        var done = 0
        for run in runs {
            if run.lowerBound > done { ema.average(done..<run.lowerBound, weight: weight) }     // frozen in between
            Kernels.adamW(parameters: p, gradients: g, m: m.mutableBase, v: v.mutableBase, range: run, k,
                          shadow: shadow, shadowWeight: weight)
            done = run.upperBound
        }
        if done < store.count { ema.average(done..<store.count, weight: weight) }
    }

    /// Arena ranges covering the trainable parameters, merging neighbours.
    func trainableRuns() -> [Range<Int>] {
        var runs: [Range<Int>] = []
        for param in store.parameters where !store.isFrozen(param) {
            let r = param.offset..<(param.offset + param.count)
            if let last = runs.last, last.upperBound == r.lowerBound { runs[runs.count - 1] = last.lowerBound..<r.upperBound }
            else { runs.append(r) }
        }
        return runs
    }

    /// Restores optimizer state (from a checkpoint).
    public func restore(step: Int, m: Tensor, v: Tensor) {
        precondition(m.count == store.count && v.count == store.count, "AdamW.restore: moment sizes differ from the store")
        restore(step: step, m: m.storage, v: v.storage)
    }

    /// Restores optimizer state from moment arenas with the store's layout (their first
    /// `store.count` values).
    public func restore(step: Int, m: TensorStorage, v: TensorStorage) {
        precondition(m.count >= store.count && v.count >= store.count, "AdamW.restore: moment arenas smaller than the store")
        self.step = step
        Kernels.copy(m.base, into: self.m.mutableBase, count: store.count)
        Kernels.copy(v.base, into: self.v.mutableBase, count: store.count)
    }
}

/// Learning-rate schedules: linear warm-up then constant (MaskDM), or cosine decay.
public enum LearningRateSchedule: Sendable, Equatable {
    /// `lr * min(step / warmup, 1)`; `warmup` 0 means constant.
    case constant(warmup: Int)
    /// Linear warm-up, then cosine decay to `minimum` at `total` steps.
    case cosine(warmup: Int, total: Int, minimum: Float)

    /// The learning rate of the update that follows `step` completed updates (0 for the first),
    /// for a base rate. This is how the reference counts (PyTorch's `LambdaLR` evaluates its
    /// lambda at 0 for the first `optimizer.step()`): with a warm-up the first update runs at lr 0
    /// (AdamW's moments still move) and update k at `lr * (k - 1) / warmup`.
    public func rate(base: Float, step: Int) -> Float {
        switch self {
        case .constant(let w):
            return w <= 0 ? base : base * Swift.min(Float(step) / Float(w), 1)
        case .cosine(let w, let total, let minimum):
            if w > 0 && step < w { return base * Float(step) / Float(w) }
            let progress = Swift.min(1, Float(step - w) / Float(Swift.max(total - w, 1)))
            return minimum + (base - minimum) * 0.5 * (1 + Foundation.cos(Float.pi * progress))
        }
    }
}

/// Exponential moving average of the parameters with ema-pytorch's warm-up rule: with `k` the
/// number of updates so far (including this one), copy while `k <= updateAfterStep + 1`
/// (default 101); afterwards `decay = clamp(1 - (1 + (k - 101))^(-2/3), 0, beta)` and
/// `ema += (1 - decay) (online - ema)`.
public final class ExponentialMovingAverage: @unchecked Sendable {
    // @unchecked Sendable: owned by one training loop.
    /// The averaged weights, same layout as the online store.
    public let shadow: ParameterStore
    /// The trained weights being averaged.
    public let online: ParameterStore
    /// Upper bound on the decay.
    public var beta: Float
    /// Exponent of the warm-up decay curve (ema-pytorch's `power`).
    public var power: Double = 2.0 / 3.0
    /// Divides the number of averaging updates in the decay curve (ema-pytorch's `inv_gamma`).
    public var invGamma: Double = 1
    /// The shadow copies the online weights up to update `updateAfterStep + 1`, then averages.
    public var updateAfterStep: Int = 100
    /// Updates so far.
    public internal(set) var updates: Int = 0

    /// A fresh EMA whose shadow weights start as a copy of `online`. Pass `shadow` (a store with
    /// the same layout, e.g. a second model's) to average into it; otherwise one is created.
    public init(online: ParameterStore, shadow: ParameterStore? = nil, beta: Float = 0.999) {
        self.online = online
        self.beta = beta
        if let shadow {
            precondition(shadow.parameters.map(\.name) == online.parameters.map(\.name) && shadow.count == online.count,
                         "ExponentialMovingAverage: shadow store layout differs from the online store")
            shadow.copyValues(from: online)
            self.shadow = shadow
        } else {
            self.shadow = ParameterStore()
            for p in online.parameters { self.shadow.add(p.name, online.value(p)) }
        }
    }

    /// The decay ema-pytorch uses at update number `k` (1-based), or nil while it copies.
    public func decay(at k: Int) -> Float? {
        let epoch = k - updateAfterStep - 1
        if epoch <= 0 { return nil }
        let value = 1 - Foundation.pow(1 + Double(epoch) / invGamma, -power)
        return Float(Swift.min(Swift.max(value, 0), Double(beta)))
    }

    /// One EMA update from the online weights.
    public func update() {
        average(0..<online.count, weight: advance())
    }

    /// Counts one update and returns its interpolation weight `1 - decay`, or nil while the
    /// warm-up copies (for a caller that does the update inside its own pass, as AdamW does).
    func advance() -> Float? {
        updates += 1
        return decay(at: updates).map { 1 - $0 }
    }

    /// The update of the arena elements `range` with `weight` (nil: copy).
    func average(_ range: Range<Int>, weight: Float?) {
        guard !range.isEmpty else { return }
        let s = shadow.values.mutableBase + range.lowerBound, o = online.values.base + range.lowerBound
        if let weight { Kernels.lerp(s, toward: o, weight: weight, count: range.count) }
        else { Kernels.copy(o, into: s, count: range.count) }
    }

    /// Restores the update count and weights (from a checkpoint).
    public func restore(updates: Int) { self.updates = updates }
}

/// Scales gradients so their global L2 norm is at most `maxNorm`, as
/// `torch.nn.utils.clip_grad_norm_` (coefficient `maxNorm / (norm + 1e-6)` clamped to 1).
/// - Returns: the norm before clipping (non-finite if any gradient is).
@discardableResult
public func clipGradientNorm(_ store: ParameterStore, maxNorm: Float) -> Float {
    let norm = gradientNorm(store)
    let coef = clippingScale(norm: norm, maxNorm: maxNorm)
    if coef < 1 { Kernels.scale(store.gradients.mutableBase, by: coef, count: store.count) }
    return norm
}

/// The factor `torch.nn.utils.clip_grad_norm_` multiplies gradients by: `maxNorm / (norm + 1e-6)`
/// clamped to at most 1. Pass it to ``AdamW/update(gradientScale:)`` to clip inside the update.
public func clippingScale(norm: Float, maxNorm: Float) -> Float {
    Swift.min(1, maxNorm / (norm + 1e-6))
}

/// Global L2 norm of all gradients: Float partial sums over blocks of 4,096, combined in Double
/// (deterministic for a given arena size, whatever the thread count).
public func gradientNorm(_ store: ParameterStore) -> Float {
    Float(Kernels.sumOfSquares(store.gradients.base, count: store.count).squareRoot())
}

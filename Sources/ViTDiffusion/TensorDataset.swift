import Tensor

/// A source of training batches. Draws (which images, which flips) come only from `rng`, so a
/// batch is a pure function of the step's generator and a prefetching thread can prepare it ahead.
public protocol TrainingImages: Sendable {
    /// Number of images.
    var count: Int { get }
    /// A batch of `size` images drawn uniformly with replacement, each flipped horizontally with
    /// probability `flipProbability`: (B, C, H, W) in [-1, 1].
    func batch(size: Int, flipProbability: Double, using rng: inout RandomGenerator) throws -> Tensor
}

/// Training images held in memory as one (N, C, H, W) tensor in [-1, 1].
public struct TensorDataset: TrainingImages {
    /// All images, (N, C, H, W).
    public let images: Tensor

    /// A dataset of `images`, a non-empty (N, C, H, W) tensor in [-1, 1].
    public init(images: Tensor) {
        precondition(images.rank == 4 && images.shape[0] > 0, "TensorDataset: need a non-empty (N, C, H, W) tensor, got \(images.shape)")
        self.images = images
    }

    /// Number of images.
    public var count: Int { images.shape[0] }

    /// A batch of `size` images drawn uniformly with replacement, each flipped horizontally with
    /// probability `flipProbability`. (B, C, H, W).
    public func batch(size: Int, flipProbability: Double, using rng: inout RandomGenerator) -> Tensor {
        let (_, c, h, w) = images.shape.dims4()
        let per = c * h * w
        var out = Tensor(uninitialized: [size, c, h, w])
        let o = out.mutablePointer()
        withExtendedLifetime(images.storage) {
            let src = images.storage.base
            for b in 0..<size {
                let i = rng.nextInt(below: count)
                let flip = flipProbability > 0 && rng.nextUniformDouble() < flipProbability
                let dst = o + b * per, s = src + i * per
                if !flip { dst.update(from: s, count: per); continue }
                for row in 0..<(c * h) {
                    for x in 0..<w { dst[row * w + x] = s[row * w + (w - 1 - x)] }
                }
            }
        }
        return out
    }
}

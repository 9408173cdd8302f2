import Tensor

/// One image of a batch: which image of the dataset, and whether it is flipped horizontally.
public struct ImagePick: Sendable, Hashable {
    /// Index into the dataset, `0..<count`.
    public var index: Int
    /// Whether the image is mirrored left-right.
    public var flipped: Bool

    /// A pick of image `index`, mirrored when `flipped`.
    public init(index: Int, flipped: Bool) {
        self.index = index
        self.flipped = flipped
    }

    /// Draws a pick as training does: the index uniformly from `0..<count`, then (only when
    /// `flipProbability > 0`) the flip.
    public static func draw(count: Int, flipProbability: Double, using rng: inout RandomGenerator) -> ImagePick {
        let i = rng.nextInt(below: count)
        return ImagePick(index: i, flipped: flipProbability > 0 && rng.nextUniformDouble() < flipProbability)
    }
}

/// A source of training batches. The trainer draws the picks (which images, which flips) from
/// its per-sample generators and asks for exactly those images, so a batch is a pure function of
/// (seed, step, sample index) and a prefetching thread can prepare it ahead.
///
/// A custom source implements ``count`` and ``batch(_:)``:
/// ```swift
/// struct Checkerboards: TrainingImages {
///     var count: Int { 2 }
///     func batch(_ picks: [ImagePick]) throws -> Tensor {
///         let rows = picks.map { p in (0..<(3 * 16 * 16)).map { i in Float(((i % 16) / 4 + (i / 16 % 16) / 4 + p.index) % 2) * 2 - 1 } }
///         return Tensor(rows.flatMap { $0 }, shape: [picks.count, 3, 16, 16])
///     }
/// }
/// ```
public protocol TrainingImages: Sendable {
    /// Number of images.
    var count: Int { get }
    /// The picked images, each flipped when its pick says so: (B, C, H, W) in [-1, 1].
    func batch(_ picks: [ImagePick]) throws -> Tensor
}

extension TrainingImages {
    /// A batch of `size` images drawn uniformly with replacement from one generator, each
    /// flipped horizontally with probability `flipProbability`: (B, C, H, W) in [-1, 1].
    public func batch(size: Int, flipProbability: Double, using rng: inout RandomGenerator) throws -> Tensor {
        let picks = (0..<size).map { _ in ImagePick.draw(count: count, flipProbability: flipProbability, using: &rng) }
        return try batch(picks)
    }
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

    /// The picked images, (B, C, H, W).
    public func batch(_ picks: [ImagePick]) -> Tensor {
        let (_, c, h, w) = images.shape.dims4()
        let per = c * h * w
        var out = Tensor(uninitialized: [picks.count, c, h, w])
        let o = out.mutablePointer()
        withExtendedLifetime(images.storage) {
            let src = images.storage.base
            for (b, pick) in picks.enumerated() {
                precondition(pick.index >= 0 && pick.index < count, "TensorDataset: pick \(pick.index) of \(count) images")
                let dst = o + b * per, s = src + pick.index * per
                if !pick.flipped { dst.update(from: s, count: per); continue }
                for row in 0..<(c * h) {
                    for x in 0..<w { dst[row * w + x] = s[row * w + (w - 1 - x)] }
                }
            }
        }
        return out
    }
}

import Foundation
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

    /// Draws a pick with replacement: the index uniformly from `0..<count`, then the flip
    /// (``draw(index:flipProbability:using:)``). Training visits the images in an ``EpochOrder``
    /// instead.
    public static func draw(count: Int, flipProbability: Double, using rng: inout RandomGenerator) -> ImagePick {
        draw(index: rng.nextInt(below: count), flipProbability: flipProbability, using: &rng)
    }

    /// A pick of image `index`, flipped with probability `flipProbability` (one uniform draw from
    /// `rng`, only when `flipProbability > 0`), as training picks each sample's image.
    public static func draw(index: Int, flipProbability: Double, using rng: inout RandomGenerator) -> ImagePick {
        ImagePick(index: index, flipped: flipProbability > 0 && rng.nextUniformDouble() < flipProbability)
    }
}

/// The order in which training visits a dataset of `count` images: epoch after epoch, each a
/// random permutation of all of them, so every image is seen once an epoch (as the reference's
/// shuffled `DataLoader`) and batches run on across an epoch's end. Position `p` of the stream
/// (step `s`, sample `i` of a batch of `B`: `p = s * B + i`) is image
/// `permutation(epoch: p / count)[p % count]`: a pure function of the seed and the position, so a
/// resumed run and every rank of a job see the same order.
public struct EpochOrder: Sendable, Hashable {
    /// Images in the dataset (at least 1).
    public let count: Int
    /// The seed the permutations are drawn from.
    public let seed: UInt64

    /// The order of `count` images (at least 1) drawn from `seed`.
    public init(count: Int, seed: UInt64) {
        precondition(count > 0, "EpochOrder: a dataset of \(count) images")
        self.count = count
        self.seed = seed
    }

    /// The images of epoch `epoch` in the order they are visited: a Fisher-Yates shuffle of
    /// `0..<count` from a generator of (seed, epoch).
    public func permutation(epoch: Int) -> [Int] {
        var g = RandomGenerator(seed: seed ^ 0x4550_4F43_485F_4F52)
        var rng = RandomGenerator(seed: g.next() &+ UInt64(truncatingIfNeeded: epoch + 1) &* 0x9E37_79B9_7F4A_7C15)
        var order = Array(0..<count)
        for i in stride(from: count - 1, to: 0, by: -1) { order.swapAt(i, rng.nextInt(below: i + 1)) }
        return order
    }

    /// The image at position `position` (>= 0) of the stream.
    public func index(at position: Int) -> Int {
        precondition(position >= 0, "EpochOrder: position \(position)")
        return permutation(epoch: position / count)[position % count]
    }
}

/// The permutations of the last epochs a trainer asked for (a batch spans at most a few), so a
/// step does not reshuffle the dataset; safe to use from the prefetching thread.
final class EpochOrderCache: @unchecked Sendable {
    private let lock = NSLock()
    private var recent: [(order: EpochOrder, epoch: Int, permutation: [Int])] = []

    /// ``EpochOrder/index(at:)``, from a kept permutation when there is one.
    func index(_ order: EpochOrder, at position: Int) -> Int {
        let epoch = position / order.count, offset = position % order.count
        lock.lock()
        defer { lock.unlock() }
        if let hit = recent.first(where: { $0.order == order && $0.epoch == epoch }) { return hit.permutation[offset] }
        let permutation = order.permutation(epoch: epoch)
        recent.append((order, epoch, permutation))
        if recent.count > 2 { recent.removeFirst() }
        return permutation[offset]
    }
}

/// A source of training batches. The trainer picks the images (in an ``EpochOrder``) and the flips
/// (from its per-sample generators) and asks for exactly those images, so a batch is a pure
/// function of (seed, step, sample index) and a prefetching thread can prepare it ahead.
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

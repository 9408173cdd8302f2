import Dispatch
import Foundation
import Tensor

/// A folder of images, read recursively (`.png`, `.jpg`, `.jpeg`, any case), in sorted path order.
///
/// Files that cannot be decoded are skipped and counted (``skipped``), never fatal, unless none
/// remain. Images are converted to RGB on white and resized (short side + centre crop) to `size`.
public struct ImageFolder: Sendable {
    /// The image files found.
    public let files: [URL]
    /// The folder.
    public let root: URL

    /// Lists the images under `root`; throws if the folder is unreadable or holds no image files.
    public init(_ root: URL) throws(ImageIOError) {
        self.root = root
        guard let e = FileManager.default.enumerator(at: root, includingPropertiesForKeys: [.isRegularFileKey]) else {
            throw .unreadableFile(path: root.path, reason: "not a readable folder")
        }
        var found: [URL] = []
        for case let url as URL in e where ["png", "jpg", "jpeg"].contains(url.pathExtension.lowercased()) { found.append(url) }
        guard !found.isEmpty else { throw .unreadableFile(path: root.path, reason: "no .png/.jpg/.jpeg files found (recursively)") }
        files = found.sorted { $0.path < $1.path }
    }

    /// Decodes the files at `indices` in parallel as RGB `size`x`size` images; failures are nil.
    public func load(_ indices: [Int], size: Int?) -> [Image?] {
        var out = [Image?](repeating: nil, count: indices.count)
        out.withUnsafeMutableBufferPointer { buf in
            guard let base = buf.baseAddress else { return }
            let o = SendablePointer(base)
            parallelFor(indices.count, grain: 4) { r in
                for i in r {
                    guard let img = try? Image(contentsOf: files[indices[i]]) else { continue }
                    var rgb = img.composited(on: (255, 255, 255))
                    if let size { rgb = rgb.resizedAndCenterCropped(to: size) }
                    o[i] = rgb
                }
            }
        }
        return out
    }

    /// Every image decoded and resized (for small folders); unreadable files are skipped, with
    /// their number in `skipped`. Throws if none could be read.
    public func loadAll(size: Int?) throws(ImageIOError) -> (images: [Image], skipped: Int) {
        let all = load(Array(files.indices), size: size)
        let images = all.compactMap { $0 }
        guard !images.isEmpty else { throw .unreadableFile(path: root.path, reason: "none of the \(files.count) image files could be decoded") }
        return (images, files.count - images.count)
    }
}

/// Batches from an ``ImageFolder`` for training: shuffled per epoch by seed, optional horizontal
/// flips, decoded on worker threads one batch ahead of the consumer.
///
/// ```swift
/// let loader = try BatchLoader(folder: ImageFolder(url), batchSize: 64, size: 64, seed: 0, flipProbability: 0.5)
/// let x = try loader.next()       // (64, 3, 64, 64) in [-1, 1]
/// ```
public final class BatchLoader: @unchecked Sendable {
    // @unchecked Sendable: state is touched only under `lock` or by the one prefetch task in flight.
    public let folder: ImageFolder
    public let batchSize: Int
    public let size: Int
    public let flipProbability: Double
    /// Files skipped so far because they could not be decoded.
    public private(set) var skipped = 0
    private var rng: RandomGenerator
    private var order: [Int] = []
    private var cursor = 0
    private var pending: DispatchWorkItem?
    private var prefetched: Result<Tensor, ImageIOError>?
    private let lock = NSLock()
    private let queue = DispatchQueue(label: "maskdm.batchloader")

    public init(folder: ImageFolder, batchSize: Int, size: Int, seed: UInt64, flipProbability: Double = 0) throws(ImageIOError) {
        precondition(batchSize > 0 && size > 0, "BatchLoader: batch size and image size must be positive")
        self.folder = folder; self.batchSize = batchSize; self.size = size; self.flipProbability = flipProbability
        rng = RandomGenerator(seed: seed)
        prefetch()
    }

    /// The next batch (B, 3, size, size) in [-1, 1]; the following one starts decoding at once.
    public func next() throws(ImageIOError) -> Tensor {
        pending?.wait()
        let result = lock.withLock { prefetched }
        prefetch()
        switch result {
        case .success(let t): return t
        case .failure(let e): throw e
        case nil: throw .unreadableFile(path: folder.root.path, reason: "loader produced no batch")
        }
    }

    private func prefetch() {
        // Choose indices and flips on the caller's thread so the stream depends only on the seed.
        var picks: [Int] = [], flips: [Bool] = []
        for _ in 0..<batchSize {
            if cursor == order.count { order = Array(folder.files.indices).shuffled(using: &rng); cursor = 0 }
            picks.append(order[cursor]); cursor += 1
            flips.append(flipProbability > 0 && rng.nextUniformDouble() < flipProbability)
        }
        let work = DispatchWorkItem { [self] in
            let imgs = folder.load(picks, size: size)
            let good = imgs.enumerated().compactMap { i, im in im.map { flips[i] ? $0.flippedHorizontally() : $0 } }
            let result: Result<Tensor, ImageIOError>
            if good.isEmpty {
                result = .failure(.unreadableFile(path: folder.root.path, reason: "a whole batch of \(picks.count) files could not be decoded"))
            } else {
                // Refill the holes with decodable images of this batch so the batch stays full.
                let filled = (0..<picks.count).map { good[$0 % good.count] }
                result = .success(Image.batch(filled))
            }
            lock.withLock {
                skipped += picks.count - good.count
                prefetched = result
            }
        }
        pending = work
        queue.async(execute: work)
    }
}

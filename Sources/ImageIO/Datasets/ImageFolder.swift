import Foundation
import Tensor

/// The PNG and JPEG files under a folder, found recursively (extensions `png`, `jpg`, `jpeg`,
/// any case; hidden files and folders skipped), in sorted relative-path order.
///
/// Symbolic links are followed: the folder itself, files and folders inside it (a link back to a
/// folder above it is not walked again, so loops end). Nothing is dropped unseen: a file whose
/// name (or a folder name above it) is not valid UTF-8, a folder inside that cannot be opened,
/// a link that leads nowhere (its target is missing, or links loop), and a named pipe, socket or device with
/// an image extension are listed, and reading them fails with the problem (without opening
/// them), so the loaders name them among their failures.
///
/// ```swift
/// let folder = try ImageFolder(URL(fileURLWithPath: "samples"))
/// let (images, failures) = folder.loadImages(0..<folder.count)
/// ```
public struct ImageFolder: Sendable {
    /// One listed file.
    public struct Entry: Sendable, Equatable {
        /// The path relative to the folder (`a/b.png`); bytes that are not valid UTF-8 are
        /// written `\xHH` (see ``problem``).
        public let path: String
        /// Size in bytes.
        public let size: Int
        /// Modification time, seconds since 1970.
        public let modified: Double
        /// Why the file cannot be read, when that is known from the listing alone (a name that is
        /// not UTF-8, a folder that cannot be opened, a link that leads nowhere, a named pipe);
        /// nil otherwise.
        public let problem: String?

        init(path: String, size: Int, modified: Double, problem: String? = nil) {
            self.path = path; self.size = size; self.modified = modified; self.problem = problem
        }
    }

    /// File extensions that are listed (lower case).
    public static let extensions: Set<String> = ["png", "jpg", "jpeg"]

    /// The folder.
    public let root: URL
    /// The image files, sorted by relative path.
    public let entries: [Entry]

    /// Number of listed files.
    public var count: Int { entries.count }

    /// Lists the image files under `root`.
    /// - Throws: ``ImageIOError/unreadableFile(path:reason:)`` when `root` is not a readable folder.
    public init(_ root: URL) throws(ImageIOError) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw .unreadableFile(path: root.path, reason: "not a folder")
        }
        guard let entries = ImageFolderWalk.entries(under: root.path) else {
            throw .unreadableFile(path: root.path, reason: "not a readable folder: \(String(cString: strerror(errno)))")
        }
        self.root = root
        self.entries = entries.sorted { $0.path < $1.path }
    }

    /// The URL of entry `index`.
    public func url(_ index: Int) -> URL { root.appendingPathComponent(entries[index].path) }

    /// A 64-bit FNV-1a hash of every entry's relative path, size and modification time: it
    /// changes when a file is added, removed, renamed, resized or rewritten (file bytes are not read).
    public var fingerprint: UInt64 {
        var hash = FNV1a()
        for e in entries {
            hash.add(e.path)
            hash.add("\u{0}\(e.size)\u{0}\(e.modified.bitPattern)\n")
        }
        return hash.value
    }

    /// Decodes the files `range` (in parallel); files that cannot be read or decoded are left
    /// out and reported in `failures` (one message each, naming the file).
    public func loadImages(_ range: Range<Int>) -> (images: [Image], failures: [String]) {
        Self.partition(decode(Array(range), grain: 1) { $0 })
    }

    /// Decodes the files at `indices` in parallel, passing each image through `transform` as soon
    /// as it is decoded, so that no more than one full-size image per thread is alive (a way to
    /// reduce large photos while reading them). A file that cannot be read or decoded gives its
    /// error (naming the file and the problem).
    public func loadReporting<T>(_ indices: [Int], transform: (Image) -> T) -> [Result<T, ImageIOError>] {
        decode(indices, grain: 1, prepare: transform)
    }

    /// Decodes the files at `indices` in parallel (chunks of at least `grain`), each image passed
    /// through `prepare`; a file that cannot be read or decoded gives its error.
    func decode<T>(_ indices: [Int], grain: Int, prepare: (Image) -> T) -> [Result<T, ImageIOError>] {
        let results = ResultSlots<Result<T, ImageIOError>>(count: indices.count)
        parallelFor(indices.count, grain: grain) { part in
            for i in part {
                do throws(ImageIOError) {
                    if let problem = entries[indices[i]].problem {
                        throw .unreadableFile(path: url(indices[i]).path, reason: problem)
                    }
                    results.set(i, .success(prepare(try Image(contentsOf: url(indices[i])))))
                } catch {
                    results.set(i, .failure(error))
                }
            }
        }
        return results.values.map { $0 ?? .failure(.unreadableFile(path: root.path, reason: "not decoded")) }
    }

    /// The values of `results` (decoded images, or what a transform made of them) and one message
    /// per failure (naming the file and the problem), each in order.
    public static func partition<T>(_ results: [Result<T, ImageIOError>]) -> (images: [T], failures: [String]) {
        var images: [T] = [], failures: [String] = []
        for result in results {
            switch result {
            case .success(let image): images.append(image)
            case .failure(let error): failures.append(error.description)
            }
        }
        return (images, failures)
    }
}

extension ImageFolder {
    /// The URLs of all listed files, in listing order.
    public var files: [URL] { entries.indices.map(url) }

    /// Decodes the files at `indices` in parallel as RGB images (alpha composited on white),
    /// resized (short side, then centre crop) to `size` x `size` when given; failures are nil.
    public func load(_ indices: [Int], size: Int?) -> [Image?] {
        loadReporting(indices, size: size).map { try? $0.get() }
    }

    /// ``load(_:size:)`` with each failure's error (naming the file and the problem).
    public func loadReporting(_ indices: [Int], size: Int?) -> [Result<Image, ImageIOError>] {
        decode(indices, grain: 4) { image in
            let rgb = image.composited(on: (255, 255, 255))
            return size.map { rgb.resizedAndCenterCropped(to: $0) } ?? rgb
        }
    }

    /// Every image decoded and resized (for small folders); unreadable files are skipped, with
    /// their number in `skipped`. Throws if the folder has no image files or none could be read.
    public func loadAll(size: Int?) throws(ImageIOError) -> (images: [Image], skipped: Int) {
        let loaded = try loadAllReporting(size: size)
        return (loaded.images, loaded.failures.count)
    }

    /// The problem of a folder none of whose `count` image files could be decoded, naming the
    /// first of `failures` (one message each, naming the file and its problem) so that the
    /// reason shows: `none of the 4 image files could be decoded: "a.png": ...; ... (and 1 more)`.
    public static func noneDecoded(count: Int, failures: [String]) -> String {
        let shown = failures.prefix(3).joined(separator: "; ")
        let more = count > min(failures.count, 3) ? " (and \(count - min(failures.count, 3)) more)" : ""
        return "none of the \(count) image files could be decoded" + (shown.isEmpty ? "" : ": \(shown)\(more)")
    }

    /// ``loadAll(size:)`` with one message per unreadable file (naming it and the problem), in
    /// listing order.
    public func loadAllReporting(size: Int?) throws(ImageIOError) -> (images: [Image], failures: [String]) {
        if let size, size < 1 { throw .unreadableFile(path: root.path, reason: "cannot resize its images to \(size) px (the side must be positive)") }
        guard count > 0 else { throw .unreadableFile(path: root.path, reason: "no .png/.jpg/.jpeg files found (recursively)") }
        let (images, failures) = Self.partition(loadReporting(Array(entries.indices), size: size))
        guard !images.isEmpty else { throw .unreadableFile(path: root.path, reason: Self.noneDecoded(count: count, failures: failures)) }
        return (images, failures)
    }
}

/// Per-index result slots written from ``parallelFor(_:grain:_:)`` chunks (disjoint indices).
final class ResultSlots<T>: @unchecked Sendable {
    // @unchecked Sendable: each index is written by exactly one chunk through the raw buffer
    // (no Swift property access, so no exclusivity conflict), and read only after parallelFor returns.
    private let slots: UnsafeMutablePointer<T?>
    private let count: Int

    init(count: Int) {
        self.count = count
        slots = .allocate(capacity: Swift.max(count, 1))
        slots.initialize(repeating: nil, count: count)
    }

    deinit {
        slots.deinitialize(count: count)
        slots.deallocate()
    }

    func set(_ index: Int, _ value: T) {
        precondition(index >= 0 && index < count, "ResultSlots: index \(index) out of 0..<\(count)")
        slots[index] = value
    }

    var values: [T?] { Array(UnsafeBufferPointer(start: slots, count: count)) }
}

/// The 64-bit FNV-1a hash (a cache key, not a cryptographic hash).
public struct FNV1a: Sendable {
    /// The running hash.
    public private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// A hash of no bytes (the FNV-1a offset basis).
    public init() {}

    /// Hashes the UTF-8 bytes of `text`.
    public mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
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
    /// The images it draws from.
    public let folder: ImageFolder
    /// Images per batch.
    public let batchSize: Int
    /// Side of the square images in pixels.
    public let size: Int
    /// Probability of flipping each image horizontally.
    public let flipProbability: Double
    /// Files skipped so far because they could not be decoded.
    public var skipped: Int { slot.lock.withLock { slot.skipped } }
    private var rng: RandomGenerator
    private var order: [Int] = []
    private var cursor = 0
    private var pending: DispatchWorkItem?
    /// What the decoding thread hands back. The work item captures this, never the loader itself
    /// (the loader holds the work item: capturing `self` would make a cycle and leak the loader).
    private final class Slot: @unchecked Sendable {
        // @unchecked Sendable: every field is read and written under `lock`.
        let lock = NSLock()
        var prefetched: Result<Tensor, ImageIOError>?
        var skipped = 0
    }
    private let slot = Slot()
    private let queue = DispatchQueue(label: "maskdm.batchloader")

    /// A loader whose shuffles and flips derive from `seed`; starts decoding the first batch at once.
    public init(folder: ImageFolder, batchSize: Int, size: Int, seed: UInt64, flipProbability: Double = 0) throws(ImageIOError) {
        precondition(batchSize > 0 && size > 0, "BatchLoader: batch size and image size must be positive")
        guard folder.count > 0 else { throw .unreadableFile(path: folder.root.path, reason: "no .png/.jpg/.jpeg files found (recursively)") }
        self.folder = folder; self.batchSize = batchSize; self.size = size; self.flipProbability = flipProbability
        rng = RandomGenerator(seed: seed)
        prefetch()
    }

    /// The next batch (B, 3, size, size) in [-1, 1]; the following one starts decoding at once.
    public func next() throws(ImageIOError) -> Tensor {
        pending?.wait()
        let result = slot.lock.withLock { slot.prefetched }
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
            if cursor == order.count { order = Array(folder.entries.indices).shuffled(using: &rng); cursor = 0 }
            picks.append(order[cursor]); cursor += 1
            flips.append(flipProbability > 0 && rng.nextUniformDouble() < flipProbability)
        }
        let (folder, size, slot) = (folder, size, slot)
        let work = DispatchWorkItem {
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
            slot.lock.withLock {
                slot.skipped += picks.count - good.count
                slot.prefetched = result
            }
        }
        pending = work
        queue.async(execute: work)
    }
}

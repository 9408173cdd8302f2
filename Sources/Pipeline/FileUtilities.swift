import Foundation
import ImageIO

/// Appends `line` and a newline to `url`, creating the file if needed.
func appendLine(_ line: String, to url: URL) throws {
    if !FileManager.default.fileExists(atPath: url.path) {
        try Data().write(to: url)
    }
    let handle = try FileHandle(forWritingTo: url)
    defer { try? handle.close() }
    try handle.seekToEnd()
    try handle.write(contentsOf: Data((line + "\n").utf8))
}

/// Writing image sets as folders.
public enum ImageWriting {
    /// Writes `images` as `00000.png`, `00001.png`, ... (or `.jpg`) into `folder` (created).
    /// Returns the count.
    @discardableResult
    public static func writeNumbered(_ images: [Image], to folder: URL, fileExtension: String = "png") throws -> Int {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (i, img) in images.enumerated() {
            try img.write(to: folder.appendingPathComponent(String(format: "%05d.", i) + fileExtension))
        }
        return images.count
    }
}

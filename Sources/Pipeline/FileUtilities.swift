import Foundation
import ImageIO
import Tensor

/// The text of a log file (`log.jsonl`, `fid.jsonl`), "" when it cannot be read. Bytes that are
/// not UTF-8 (a damaged line) become U+FFFD, so only their line fails to parse, not the file.
func lenientText(of url: URL) -> String {
    (try? Data(contentsOf: url)).map { String(decoding: $0, as: UTF8.self) } ?? ""
}

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

/// `s` with every control character shown as `?`: text read from files (checkpoint metadata,
/// folder names) is printed on a terminal, where a control character could act.
func withoutControlCharacters(_ s: String) -> String {
    String(String.UnicodeScalarView(s.unicodeScalars.map { $0.properties.generalCategory == .control ? "?" : $0 }))
}

/// The encoder of the records a job writes (`report.json`, `evals.jsonl`): snake_case keys, as
/// `log.jsonl`, `fid.jsonl` and `fid --json`; sorted keys; one line unless `pretty`.
func recordEncoder(pretty: Bool) -> JSONEncoder {
    let enc = JSONEncoder()
    enc.keyEncodingStrategy = .convertToSnakeCase
    enc.outputFormatting = pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
    return enc
}

/// A value JSONSerialization produced (or a string) as one line of JSON, keys sorted and slashes
/// unescaped: `16`, `[16,32]`, `"linear"`, `"/data/faces"`.
func oneLineJSON(_ value: Any) -> String {
    (try? JSONSerialization.data(withJSONObject: value, options: [.fragmentsAllowed, .sortedKeys, .withoutEscapingSlashes]))
        .map { String(decoding: $0, as: UTF8.self) } ?? "\(value)"
}

/// The decoder of those records; it also reads the camelCase keys of older files.
func recordDecoder() -> JSONDecoder {
    let dec = JSONDecoder()
    dec.keyDecodingStrategy = .convertFromSnakeCase
    return dec
}

/// Removes Foundation's temporary files (`.dat.nosync...`) from `folder`: what an atomic write
/// killed before its rename leaves behind.
func removeFoundationTemporaries(in folder: URL) {
    for name in (try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? [] where name.hasPrefix(".dat.nosync") {
        try? FileManager.default.removeItem(at: folder.appendingPathComponent(name))
    }
}

/// Throws the error creating `folder` would give for the path itself, without touching anything:
/// when it, or the nearest parent that exists, is a file rather than a folder, or that folder
/// cannot be written.
func checkFolderCanBeMade(_ folder: URL) throws {
    var isDirectory: ObjCBool = false
    var path = folder.standardizedFileURL
    // The nearest existing ancestor (or the folder itself) must be a folder.
    while !FileManager.default.fileExists(atPath: path.path, isDirectory: &isDirectory) {
        let parent = path.deletingLastPathComponent()
        if parent.path == path.path { break }
        path = parent
    }
    guard FileManager.default.fileExists(atPath: path.path) else { return }
    if !isDirectory.boolValue {
        throw PipelineError.invalidOption(name: "folder (--out)", problem: "'\(path.path)' is a file, not a folder")
    }
    if access(path.path, W_OK) != 0 {
        throw PipelineError.invalidOption(name: "folder (--out)", problem: "cannot write into the folder '\(path.path)': \(String(cString: strerror(errno)))")
    }
}

/// Creates `folder` (and its parents) unless it exists, with an error naming the path when it,
/// or a parent, is a file rather than a folder (Foundation's own error is a raw dump).
func createFolder(_ folder: URL) throws {
    try checkFolderCanBeMade(folder)
    do {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    } catch {
        throw PipelineError.invalidOption(name: "folder (--out)", problem: "cannot create the folder '\(folder.path)': \(fileProblem(error, at: folder.path))")
    }
}

/// Writing image sets as folders.
public enum ImageWriting {
    /// Writes `images` as `00000.png`, `00001.png`, ... (or `.jpg`) into `folder` (created).
    /// Returns the count.
    @discardableResult
    public static func writeNumbered(_ images: [Image], to folder: URL, fileExtension: String = "png") throws -> Int {
        try createFolder(folder)
        for (i, img) in images.enumerated() {
            try img.write(to: folder.appendingPathComponent(String(format: "%05d.", i) + fileExtension))
        }
        return images.count
    }
}

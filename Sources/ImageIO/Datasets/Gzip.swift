import CZlib
import Foundation
import Tensor

/// gzip decompression through zlib (for the bundled datasets' `.gz` files).
public enum Gzip {
    /// The default bound on the decompressed size: 1 GiB (the bundled datasets are under 100 MB).
    public static let defaultMaximumBytes = 1 << 30

    /// Decompresses a complete gzip stream (concatenated members are joined). Errors name `path`.
    /// Output beyond `maximumBytes` is refused as soon as it is produced (a gzip bomb inflates a
    /// thousandfold).
    public static func decompress(_ data: Data, path: String,
                                  maximumBytes: Int = defaultMaximumBytes) throws(ImageIOError) -> [UInt8] {
        var input = [UInt8](data)
        var output: [UInt8] = []
        output.reserveCapacity(min(max(input.count * 4, 1024), maximumBytes))
        var stream = z_stream()
        guard inflateInit2_(&stream, 16 + MAX_WBITS, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
            throw .malformedDataset(path: path, problem: "zlib initialisation failed")
        }
        defer { inflateEnd(&stream) }
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        var status: Int32 = Z_OK
        try input.withUnsafeMutableBufferPointer { (inp: inout UnsafeMutableBufferPointer<UInt8>) throws(ImageIOError) in
            stream.next_in = inp.baseAddress
            stream.avail_in = uInt(inp.count)
            repeat {
                let produced: Int = chunk.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    status = inflate(&stream, Z_NO_FLUSH)
                    return out.count - Int(stream.avail_out)
                }
                if status != Z_OK && status != Z_STREAM_END {
                    let msg = stream.msg.map { String(cString: $0) } ?? "zlib error \(status)"
                    throw .malformedDataset(path: path, problem: "gzip: \(msg)")
                }
                guard output.count + produced <= maximumBytes else {
                    throw .malformedDataset(path: path, problem: "gzip: decompresses to more than \(maximumBytes) bytes")
                }
                output.append(contentsOf: chunk[0..<produced])
                if status == Z_STREAM_END && stream.avail_in > 0 {
                    guard inflateReset(&stream) == Z_OK else { throw .malformedDataset(path: path, problem: "gzip: reset failed") }
                    status = Z_OK
                }
                if status == Z_OK && produced == 0 && stream.avail_in == 0 {
                    throw .malformedDataset(path: path, problem: "gzip: truncated stream")
                }
            } while status != Z_STREAM_END
        }
        return output
    }

    /// Reads and decompresses a `.gz` file.
    public static func decompress(contentsOf url: URL) throws(ImageIOError) -> [UInt8] {
        let data: Data
        do { data = try Data(contentsOf: url) } catch { throw .unreadableFile(path: url.path, reason: fileProblem(error, at: url.path)) }
        return try decompress(data, path: url.path)
    }
}

import CImageCodecs
import Foundation
import Tensor

/// How large an image the decoders accept.
///
/// A file's header can claim any size; a decoder that trusted it would allocate gigabytes for a
/// few hundred bytes of input (a decompression bomb). Images whose header claims more than
/// ``maximumPixels`` pixels are refused before any pixel memory is allocated, as PIL refuses
/// images above its `MAX_IMAGE_PIXELS`.
public enum ImageLimits {
    /// The default limit: PIL's `MAX_IMAGE_PIXELS`, 89,478,485 pixels (about 9,459 x 9,459).
    public static let defaultMaximumPixels = 89_478_485
    private static let limit = PthreadLock<Int>(
        ProcessInfo.processInfo.environment["MASKDM_MAX_PIXELS"].flatMap(Int.init).map { max($0, 1) } ?? defaultMaximumPixels)

    /// The limit every decode uses unless given another: `MASKDM_MAX_PIXELS` if set, else
    /// ``defaultMaximumPixels``. Settable for the whole process.
    public static var maximumPixels: Int {
        get { limit.withLock { $0 } }
        set { limit.withLock { $0 = max(newValue, 1) } }
    }
}

extension Image {
    /// Decodes PNG or JPEG bytes; the format is detected from the signature, never from `name`.
    ///
    /// - Parameters:
    ///   - data: the whole file.
    ///   - name: the file name or path, used only in error messages.
    ///   - maximumPixels: images whose header claims more pixels are refused before decoding.
    /// - Returns: grey PNG/JPEG as 1 channel, RGB as 3, anything with alpha or transparency as 4.
    /// - Throws: ``ImageIOError/unknownFormat(name:leadingBytes:)`` or
    ///   ``ImageIOError/decodingFailed(name:format:message:)`` with libpng's / libjpeg's message
    ///   (or the pixel limit's).
    public static func decode(data: Data, name: String,
                              maximumPixels: Int = ImageLimits.maximumPixels) throws(ImageIOError) -> Image {
        guard let format = ImageFormat.detect(data) else {
            // A file cut inside its signature is a truncated image, not another kind of file.
            for format in [ImageFormat.png, .jpeg]
            where data.count >= 2 && data.count < format.signature.count && data.elementsEqual(format.signature.prefix(data.count)) {
                throw .decodingFailed(name: name, format: format,
                                      message: "the file is cut short: it ends after \(data.count) bytes, inside the \(format) signature")
            }
            let head = data.prefix(8).map { String(format: "%02X", $0) }.joined(separator: " ")
            throw .unknownFormat(name: name, leadingBytes: data.isEmpty ? "nothing: the file is empty" : head)
        }
        var result = mdm_decoded_image()
        let status = data.withUnsafeBytes { raw -> Int32 in
            let base = raw.bindMemory(to: UInt8.self).baseAddress
            switch format {
            case .png: return mdm_png_decode(base, raw.count, max(maximumPixels, 1), &result)
            case .jpeg: return mdm_jpeg_decode(base, raw.count, max(maximumPixels, 1), &result)
            }
        }
        defer { mdm_free(result.pixels) }
        guard status == 0, let pixels = result.pixels else {
            throw .decodingFailed(name: name, format: format, message: codecMessage(&result.message))
        }
        let count = Int(result.width) * Int(result.height) * Int(result.channels)
        return Image(width: Int(result.width), height: Int(result.height), channels: Int(result.channels),
                     pixels: Array(UnsafeBufferPointer(start: pixels, count: count)))
    }

    /// Reads and decodes a PNG or JPEG file (format detected from its bytes).
    /// - Throws: ``ImageIOError`` naming the file.
    public init(contentsOf url: URL) throws(ImageIOError) {
        let data: Data
        do { data = try Data(contentsOf: url) } catch {
            throw .unreadableFile(path: url.path, reason: fileProblem(error, at: url.path))
        }
        self = try Image.decode(data: data, name: url.path)
    }

    /// The image as a PNG file (8-bit, grey / RGB / RGBA as stored).
    public func encodePNG() throws(ImageIOError) -> Data {
        var result = mdm_encoded_data()
        let status = pixels.withUnsafeBufferPointer {
            mdm_png_encode($0.baseAddress, Int32(width), Int32(height), Int32(channels), &result)
        }
        return try Image.takeEncoded(&result, status: status, format: .png)
    }

    /// The image as a baseline JPEG of `quality` (1...100, libjpeg's scale, 4:2:0 chroma).
    ///
    /// JPEG has no alpha: RGBA images are composited onto white first.
    public func encodeJPEG(quality: Int = 90) throws(ImageIOError) -> Data {
        let source = channels == 4 ? composited(on: (255, 255, 255)) : self
        var result = mdm_encoded_data()
        let status = source.pixels.withUnsafeBufferPointer {
            mdm_jpeg_encode($0.baseAddress, Int32(source.width), Int32(source.height),
                            Int32(source.channels), Int32(quality), &result)
        }
        return try Image.takeEncoded(&result, status: status, format: .jpeg)
    }

    /// Writes the image atomically (temporary file, then rename): JPEG for `.jpg` / `.jpeg`
    /// paths (at `jpegQuality`), PNG otherwise.
    public func write(to url: URL, jpegQuality: Int = 90) throws(ImageIOError) {
        let data = ImageFormat.fromExtension(url.pathExtension) == .jpeg
            ? try encodeJPEG(quality: jpegQuality) : try encodePNG()
        do { try data.write(to: url, options: .atomic) } catch {
            throw .writeFailed(path: url.path, reason: fileProblem(error, at: url.path))
        }
    }

    private static func takeEncoded(_ result: inout mdm_encoded_data, status: Int32,
                                    format: ImageFormat) throws(ImageIOError) -> Data {
        defer { mdm_free(result.bytes) }
        guard status == 0, let bytes = result.bytes else {
            throw .encodingFailed(format: format, message: codecMessage(&result.message))
        }
        return Data(bytes: bytes, count: result.size)
    }
}

/// The NUL-terminated message of a codec result (a fixed-size C char array imported as a tuple).
private func codecMessage<T>(_ message: inout T) -> String {
    withUnsafeBytes(of: &message) { raw in
        let chars = raw.bindMemory(to: UInt8.self)
        let end = chars.firstIndex(of: 0) ?? chars.count
        let text = String(decoding: chars[..<end], as: UTF8.self)
        return text.isEmpty ? "unknown error" : text
    }
}

import Tensor

/// An 8-bit image: `width` x `height` pixels of `channels` interleaved samples.
///
/// Channels are 1 (grey), 3 (RGB) or 4 (RGBA, straight, not premultiplied alpha). Pixels are
/// row-major, top row first: the sample of channel `c` at column `x`, row `y` is
/// `pixels[(y * width + x) * channels + c]`, i.e. the layout is (H, W, C).
///
/// ```swift
/// var image = Image(width: 2, height: 1, channels: 3, repeating: 0)
/// image[x: 1, y: 0, channel: 0] = 255          // right pixel red
/// ```
public struct Image: Sendable, Equatable {
    /// Width in pixels.
    public let width: Int
    /// Height in pixels.
    public let height: Int
    /// Samples per pixel: 1, 3 or 4.
    public let channels: Int
    /// Interleaved samples, (H, W, C) row-major; `width * height * channels` values.
    public private(set) var pixels: [UInt8]

    /// An image over existing samples; `pixels.count` must be `width * height * channels`.
    public init(width: Int, height: Int, channels: Int, pixels: [UInt8]) {
        precondition(width >= 0 && height >= 0, "Image: negative size \(width)x\(height)")
        precondition(channels == 1 || channels == 3 || channels == 4,
                     "Image: channels must be 1, 3 or 4, got \(channels)")
        precondition(pixels.count == width * height * channels,
                     "Image: \(pixels.count) samples do not fill \(width)x\(height)x\(channels)")
        self.width = width
        self.height = height
        self.channels = channels
        self.pixels = pixels
    }

    /// An image with every sample equal to `value`.
    public init(width: Int, height: Int, channels: Int, repeating value: UInt8) {
        self.init(width: width, height: height, channels: channels,
                  pixels: [UInt8](repeating: value, count: max(0, width * height * channels)))
    }

    /// An image filled with one colour; `color.count` is the channel count (1, 3 or 4).
    public init(width: Int, height: Int, color: [UInt8]) {
        precondition(color.count == 1 || color.count == 3 || color.count == 4,
                     "Image: fill colour must have 1, 3 or 4 samples, got \(color.count)")
        var pixels = [UInt8](repeating: 0, count: width * height * color.count)
        for i in 0..<(width * height) {
            for c in 0..<color.count { pixels[i * color.count + c] = color[c] }
        }
        self.init(width: width, height: height, channels: color.count, pixels: pixels)
    }

    /// The sample of `channel` at column `x`, row `y`.
    public subscript(x x: Int, y y: Int, channel channel: Int) -> UInt8 {
        get { pixels[offset(x, y, channel)] }
        set { pixels[offset(x, y, channel)] = newValue }
    }

    /// All samples of the pixel at column `x`, row `y`.
    public subscript(x x: Int, y y: Int) -> [UInt8] {
        let o = offset(x, y, 0)
        return Array(pixels[o..<(o + channels)])
    }

    /// Whether the image has an alpha channel.
    public var hasAlpha: Bool { channels == 4 }

    /// Calls `body` with the samples for writing.
    public mutating func withUnsafeMutablePixels<R>(
        _ body: (UnsafeMutableBufferPointer<UInt8>) throws -> R
    ) rethrows -> R {
        try pixels.withUnsafeMutableBufferPointer { try body($0) }
    }

    private func offset(_ x: Int, _ y: Int, _ c: Int) -> Int {
        precondition(x >= 0 && x < width && y >= 0 && y < height && c >= 0 && c < channels,
                     "Image: (x \(x), y \(y), channel \(c)) outside \(width)x\(height)x\(channels)")
        return (y * width + x) * channels + c
    }
}

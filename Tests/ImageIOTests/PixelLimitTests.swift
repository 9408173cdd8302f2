import Foundation
import Testing
@testable import ImageIO

/// Decompression bombs: a header that claims more pixels than ``ImageLimits`` allows is refused
/// before the decoder allocates pixel memory, naming the claimed size and the limit.
@Suite struct PixelLimitTests {
    let image = Image(width: 100, height: 80, channels: 3, repeating: 200)

    @Test(arguments: ["png", "jpeg"])
    func limitIsInclusiveAndNamedInTheError(format: String) throws {
        let data = format == "png" ? try image.encodePNG() : try image.encodeJPEG()
        #expect(try Image.decode(data: data, name: "ok.\(format)", maximumPixels: 8000).width == 100)
        #expect {
            _ = try Image.decode(data: data, name: "big.\(format)", maximumPixels: 7999)
        } throws: { error in
            let text = "\(error)"
            return text.contains("big.\(format)") && text.contains("100 x 80 pixels") && text.contains("limit of 7999")
        }
    }

    /// A 67-byte PNG whose header claims 1,000,000 x 1,000,000 pixels (a valid IHDR, no data):
    /// refused by the default limit, which ``ImageLimits/maximumPixels`` carries.
    @Test func headerClaimingATerapixelIsRefusedByTheDefaultLimit() throws {
        var png = Array(try Image(width: 1, height: 1, channels: 3, repeating: 0).encodePNG())
        // IHDR data starts at byte 16: width and height, big-endian; its CRC follows the 13 data bytes.
        for (offset, value) in [(16, UInt32(1_000_000)), (20, UInt32(1_000_000))] {
            for i in 0..<4 { png[offset + i] = UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt32(i))) }
        }
        let crc = crc32(Array(png[12..<29]))
        for i in 0..<4 { png[29 + i] = UInt8(truncatingIfNeeded: crc >> (24 - 8 * UInt32(i))) }
        #expect(ImageLimits.maximumPixels == ImageLimits.defaultMaximumPixels || ProcessInfo.processInfo.environment["MASKDM_MAX_PIXELS"] != nil)
        #expect {
            _ = try Image.decode(data: Data(png), name: "bomb.png")
        } throws: { "\($0)".contains("1000000 x 1000000 pixels") }
    }

    private func crc32(_ bytes: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xFFFF_FFFF
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 0 ? 0 : 0xEDB8_8320) }
        }
        return ~c
    }
}

import Foundation
import Tensor
import Testing
@testable import ImageIO

@Suite struct CodecTests {
    @Test func everyFixtureDecodesToItsKnownPixels() throws {
        let expected = try Fixtures.expected()
        #expect(expected.count == 21)
        for (name, want) in expected.sorted(by: { $0.key < $1.key }) {
            let image = try Image(contentsOf: Fixtures.url(name))
            #expect(image.width == want.width && image.height == want.height, "\(name)")
            #expect(image.channels == want.channels, "\(name): \(image.channels) channels")
            #expect(image.pixels.count == want.pixels.count, "\(name)")
            let diff = maxDifference(image.pixels, want.pixels)
            #expect(diff <= want.tolerance, "\(name): max difference \(diff) > \(want.tolerance)")
        }
    }

    /// 16-bit samples keep their high byte, as PIL reads them: R 0xFF00, G 0x00FF, B 0x8000 give
    /// (255, 0, 128) (rounding v * 255 / 65535 would give 254, 1, 128).
    @Test func sixteenBitSamplesKeepTheirHighByte() throws {
        let image = try Image(contentsOf: Fixtures.url("rgb16_high_byte.png"))
        #expect(image.width == 16 && image.height == 16 && image.channels == 3)
        #expect(image.pixels == [UInt8]((0..<256).flatMap { _ in [255, 0, 128] as [UInt8] }))
    }

    @Test func formatIsDetectedFromBytesNotName() throws {
        let data = try Data(contentsOf: Fixtures.url("png_named.jpg"))
        #expect(ImageFormat.detect(data) == .png)
        #expect(ImageFormat.detect(try Data(contentsOf: Fixtures.url("rgb.jpg"))) == .jpeg)
        #expect(ImageFormat.detect(Data([0x47, 0x49, 0x46])) == nil)
        let viaName = try Image.decode(data: data, name: "whatever.jpg")
        #expect(viaName == (try Image(contentsOf: Fixtures.url("rgb8.png"))))
    }

    @Test(arguments: [1, 3, 4])
    func pngRoundTripIsExact(channels: Int) throws {
        let image = testImage(width: 19, height: 7, channels: channels)
        let data = try image.encodePNG()
        #expect(ImageFormat.detect(data) == .png)
        #expect(try Image.decode(data: data, name: "roundtrip.png") == image)
    }

    @Test(arguments: [1, 3])
    func jpegRoundTripIsCloseAtHighQuality(channels: Int) throws {
        // A smooth image: JPEG at quality 100 keeps it within a few levels.
        var pixels: [UInt8] = []
        for y in 0..<24 { for x in 0..<40 { for c in 0..<channels { pixels.append(UInt8(20 + 3 * x + 2 * y + 10 * c)) } } }
        let image = Image(width: 40, height: 24, channels: channels, pixels: pixels)
        let decoded = try Image.decode(data: try image.encodeJPEG(quality: 100), name: "roundtrip.jpg")
        #expect(decoded.width == 40 && decoded.height == 24 && decoded.channels == channels)
        #expect(maxDifference(decoded.pixels, pixels.map(Int.init)) <= 4)
        let small = try image.encodeJPEG(quality: 10), large = try image.encodeJPEG(quality: 100)
        #expect(small.count < large.count)
    }

    @Test func jpegOfRGBAIsCompositedOnWhite() throws {
        let clear = Image(width: 8, height: 8, color: [0, 0, 0, 0])
        let decoded = try Image.decode(data: try clear.encodeJPEG(quality: 95), name: "clear.jpg")
        #expect(decoded.channels == 3)
        #expect(decoded.pixels.allSatisfy { $0 >= 253 })
    }

    @Test func everyCorruptFileThrowsAnErrorNamingTheFile() throws {
        let names = try Fixtures.corrupt()
        #expect(names.count == 14)
        for name in names {
            let url = Fixtures.url("corrupt/\(name)")
            do {
                let image = try Image(contentsOf: url)
                Issue.record("\(name) decoded to \(image.width)x\(image.height)")
            } catch {
                #expect(error.description.contains(url.path), "\(name): \(error)")
            }
        }
    }

    @Test func corruptFilesGiveTheLibraryMessage() throws {
        func message(_ name: String) -> String {
            do { _ = try Image(contentsOf: Fixtures.url("corrupt/\(name)")); return "" } catch { return error.description }
        }
        #expect(message("bad_crc.png").contains("as PNG") && message("bad_crc.png").contains("CRC"))
        #expect(message("bad_crc_ihdr.png").contains("CRC"))
        #expect(message("truncated.png").contains("truncated") || message("truncated.png").contains("end of file"))
        #expect(message("empty.png").contains("empty"))
        #expect(message("garbage.png").contains("not a PNG or JPEG"))
        // A file cut inside its signature is named as a cut-short image of that format.
        func decoding(_ bytes: [UInt8]) -> String {
            do { _ = try Image.decode(data: Data(bytes), name: "cut"); return "" } catch { return error.description }
        }
        #expect(decoding([0xFF, 0xD8]) == "cannot decode \"cut\" as JPEG: the file is cut short: it ends after 2 bytes, inside the JPEG signature")
        #expect(decoding([0x89, 0x50, 0x4E, 0x47]).contains("as PNG: the file is cut short: it ends after 4 bytes"))
        #expect(decoding([0xFF]).contains("not a PNG or JPEG file (starts with FF)"))
        #expect(decoding([0xFF, 0xD9]).contains("not a PNG or JPEG file"))
        #expect(message("truncated_scan.jpg").contains("as JPEG") && message("truncated_scan.jpg").contains("Premature end"))
        #expect(message("truncated_png_named.jpg").contains("as PNG"))
        #expect(message("garbage_after_soi.jpg").contains("as JPEG"))
        #expect(message("huge_dimensions.png").contains("60000 x 60000 pixels, more than the limit"))
        #expect(message("huge_dimensions.jpg").contains("65000 x 65000 pixels, more than the limit"))
        // Without the pixel limit, the 1 GiB bound on decoded bytes still refuses them.
        for name in ["huge_dimensions.png", "huge_dimensions.jpg"] {
            let data = try Data(contentsOf: Fixtures.url("corrupt/\(name)"))
            #expect { try Image.decode(data: data, name: name, maximumPixels: .max) } throws: { "\($0)".contains("too large") }
        }
    }

    @Test func randomlyDamagedFilesDecodeOrThrowButNeverCrash() throws {
        var rng = RandomGenerator(seed: 7)
        var thrown = 0, decoded = 0
        for name in ["rgb8.png", "palette4_trns.png", "rgb8_interlaced.png", "rgb.jpg", "grey.jpg", "cmyk_adobe.jpg"] {
            let original = [UInt8](try Data(contentsOf: Fixtures.url(name)))
            for trial in 0..<60 {
                var bytes = original
                if trial % 3 == 0 {
                    bytes.removeLast(1 + rng.nextInt(below: bytes.count - 4))      // truncate
                } else {
                    for _ in 0..<(1 + rng.nextInt(below: 4)) {                      // overwrite bytes past the signature
                        bytes[3 + rng.nextInt(below: bytes.count - 3)] = UInt8(rng.nextInt(below: 256))
                    }
                }
                do {
                    let image = try Image.decode(data: Data(bytes), name: "\(name)#\(trial)")
                    #expect(image.pixels.count == image.width * image.height * image.channels)
                    decoded += 1
                } catch {
                    #expect(error.description.contains("\(name)#\(trial)"))
                    thrown += 1
                }
            }
        }
        #expect(thrown + decoded == 360 && thrown > 100)
    }

    @Test func missingFileThrowsUnreadable() {
        let url = Fixtures.url("no/such/file.png")
        #expect(throws: ImageIOError.self) { try Image(contentsOf: url) }
        do { _ = try Image(contentsOf: url) } catch {
            guard case .unreadableFile(let path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == url.path)
        }
    }

    @Test func writeIsAtomicAndPicksFormatFromExtension() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("imageio-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let image = testImage(width: 16, height: 16, channels: 3)
        try image.write(to: dir.appendingPathComponent("a.png"))
        try image.write(to: dir.appendingPathComponent("a.JPG"))
        #expect(ImageFormat.detect(try Data(contentsOf: dir.appendingPathComponent("a.png"))) == .png)
        #expect(ImageFormat.detect(try Data(contentsOf: dir.appendingPathComponent("a.JPG"))) == .jpeg)
        #expect(try Image(contentsOf: dir.appendingPathComponent("a.png")) == image)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["a.JPG", "a.png"])
        #expect(throws: ImageIOError.self) { try image.write(to: dir.appendingPathComponent("missing/dir/b.png")) }
    }
}

import Foundation
import Tensor
import Testing
@testable import ImageIO

@Suite struct TransformTests {
    /// 255 where x + y is odd, else 0.
    func checkerboard(_ w: Int, _ h: Int) -> Image {
        var image = Image(width: w, height: h, channels: 1, repeating: 0)
        for y in 0..<h { for x in 0..<w where (x + y) % 2 == 1 { image[x: x, y: y, channel: 0] = 255 } }
        return image
    }

    @Test(arguments: [ResizeFilter.area, .bilinear])
    func resizingAConstantImageKeepsItConstant(filter: ResizeFilter) {
        for color: [UInt8] in [[7], [1, 128, 254], [9, 200, 33, 255], [90, 60, 30, 77]] {
            let image = Image(width: 23, height: 17, color: color)
            for (w, h) in [(5, 4), (32, 32), (23, 9), (50, 3), (1, 1)] {
                let out = image.resized(width: w, height: h, filter: filter)
                #expect(out.width == w && out.height == h && out.channels == color.count)
                #expect(out == Image(width: w, height: h, color: color), "\(color) -> \(w)x\(h) with \(filter)")
            }
        }
    }

    @Test func areaDownscaleOfACheckerboardAverages() {
        // Integer factor: every 2x2 cell holds two 0s and two 255s -> 127.5, rounded to 128.
        let half = checkerboard(8, 8).resized(width: 4, height: 4, filter: .area)
        #expect(half.pixels == [UInt8](repeating: 128, count: 16))
        // Factor 1.5: each output covers one input pixel fully, two by half and one by a quarter
        // (total 2.25). Where the full pixel is 0 the halves are 255: 255 * 1 / 2.25 = 113.3;
        // where it is 255: 255 * 1.25 / 2.25 = 141.7. The full pixels sit at 0, 2, 3, 5.
        let third = checkerboard(6, 6).resized(width: 4, height: 4, filter: .area)
        let full = [0, 2, 3, 5]
        for y in 0..<4 { for x in 0..<4 {
            #expect(third[x: x, y: y, channel: 0] == ((full[x] + full[y]) % 2 == 0 ? 113 : 142))
        } }
        // A whole-image average.
        #expect(checkerboard(16, 16).resized(width: 1, height: 1).pixels == [128])
    }

    @Test func bilinearDownscaleIsAntialiased() {
        // PIL's BILINEAR at factor 2: support 2, interior taps 1/8, 3/8, 3/8, 1/8 -> 127.5 -> 128.
        let out = checkerboard(16, 16).resized(width: 8, height: 8, filter: .bilinear)
        for y in 1..<7 { for x in 1..<7 { #expect(out[x: x, y: y, channel: 0] == 128) } }
    }

    @Test func upscalingMatchesHandComputedWeights() {
        let ramp = Image(width: 2, height: 1, channels: 1, pixels: [0, 255])
        // PIL BILINEAR 2 -> 4: centres 0.25, 0.75, 1.25, 1.75 -> 0, 63.75, 191.25, 255.
        #expect(ramp.resized(width: 4, height: 1, filter: .bilinear).pixels == [0, 64, 191, 255])
        #expect(ramp.resized(width: 4, height: 1, filter: .area).pixels == [0, 0, 255, 255])
        // 2 -> 3 by area: the middle output covers half of each input.
        #expect(ramp.resized(width: 3, height: 1, filter: .area).pixels == [0, 128, 255])
    }

    @Test func rgbaResizeUsesPremultipliedAlpha() {
        let image = Image(width: 2, height: 1, channels: 4, pixels: [255, 0, 0, 255, 0, 0, 255, 0])
        #expect(image.resized(width: 1, height: 1).pixels == [255, 0, 0, 128])
    }

    @Test func cropsAndShortSideResize() {
        let image = testImage(width: 5, height: 4, channels: 3)
        let crop = image.cropped(x: 1, y: 2, width: 3, height: 2)
        #expect(crop.width == 3 && crop.height == 2)
        #expect(crop[x: 0, y: 0] == image[x: 1, y: 2] && crop[x: 2, y: 1] == image[x: 3, y: 3])
        #expect(image.centerCropped(width: 3, height: 2) == image.cropped(x: 1, y: 1, width: 3, height: 2))
        #expect(image.centerCropped(width: 5, height: 4) == image)
        let wide = testImage(width: 40, height: 20, channels: 3)
        let short = wide.resizedShortSide(to: 10)
        #expect(short.width == 20 && short.height == 10)
        #expect(testImage(width: 30, height: 45, channels: 1).resizedShortSide(to: 20).height == 30)
        let square = wide.resizedAndCenterCropped(to: 10)
        #expect(square.width == 10 && square.height == 10)
        #expect(square == short.cropped(x: 5, y: 0, width: 10, height: 10))
    }

    /// The centre crop of the short-side resize is computed alone, with the same pixels as the
    /// whole resize cropped, for every filter, channel count and aspect (thin strips included).
    @Test(arguments: [ResizeFilter.area, .bilinear])
    func resizedAndCroppedEqualsTheWholeResizeCropped(filter: ResizeFilter) {
        for channels in [1, 3, 4] {
            for (w, h, size) in [(40, 20, 10), (20, 41, 9), (3, 700, 16), (900, 2, 16), (13, 13, 32), (7, 5, 3), (1, 300, 4)] {
                let image = testImage(width: w, height: h, channels: channels)
                let whole = image.resizedShortSide(to: size, filter: filter)
                let expected = whole.centerCropped(width: size, height: size)
                #expect(image.resizedAndCenterCropped(to: size, filter: filter) == expected, "\(w)x\(h)x\(channels) -> \(size)")
            }
        }
        // A 1 x 1,000,000 strip at 16 px: the square alone (the whole resize would be 16 x 16,000,000).
        let strip = Image(width: 1, height: 1_000_000, color: [10, 20, 30])
        #expect(strip.resizedAndCenterCropped(to: 16, filter: filter) == Image(width: 16, height: 16, color: [10, 20, 30]))
    }

    @Test func horizontalFlip() {
        let image = testImage(width: 5, height: 3, channels: 4)
        let flipped = image.flippedHorizontally()
        for y in 0..<3 { for x in 0..<5 { #expect(flipped[x: x, y: y] == image[x: 4 - x, y: y]) } }
        #expect(flipped.flippedHorizontally() == image)
    }

    @Test func compositingAndColourConversion() {
        let image = Image(width: 1, height: 1, channels: 4, pixels: [100, 150, 200, 128])
        // (a c + (255 - a) bg) / 255, rounded.
        #expect(image.composited(on: (0, 0, 0)).pixels == [50, 75, 100])
        #expect(image.composited(on: (255, 255, 255)).pixels == [177, 202, 227])
        #expect(Image(width: 1, height: 1, color: [9, 9, 9, 0]).composited(on: (1, 2, 3)).pixels == [1, 2, 3])
        #expect(Image(width: 1, height: 1, color: [9, 8, 7, 255]).composited(on: (1, 2, 3)).pixels == [9, 8, 7])
        #expect(image.rgb().pixels == [100, 150, 200])
        #expect(Image(width: 2, height: 1, channels: 1, pixels: [3, 250]).rgb().pixels == [3, 3, 3, 250, 250, 250])
        #expect(Image(width: 1, height: 1, color: [255, 0, 0]).grey().pixels == [76])
        let padded = Image(width: 2, height: 1, color: [5]).paddedToSquare(fill: [9])
        #expect(padded.width == 2 && padded.height == 2 && padded.pixels == [5, 5, 9, 9])
        let tall = Image(width: 1, height: 3, color: [1, 2, 3]).paddedToSquare(fill: [7, 7, 7])
        #expect(tall.width == 3 && tall.pixels == Array([[UInt8]](repeating: [7, 7, 7, 1, 2, 3, 7, 7, 7], count: 3).joined()))
    }

    @Test func tensorConversionRoundTrips() {
        let image = testImage(width: 6, height: 4, channels: 3)
        let x = image.tensor()
        #expect(x.shape == [3, 4, 6])
        #expect(x[2, 3, 5] == Float(image[x: 5, y: 3, channel: 2]) / 255 * 2 - 1)
        #expect(Image(tensor: x) == image)
        #expect(Image(tensor: Image(width: 1, height: 1, color: [0, 255, 128]).tensor()).pixels == [0, 255, 128])
        let wild = Tensor([2, -3, .nan, 0, 0.004], shape: [1, 1, 5])
        // (x + 1) / 2 * 255 rounded and clamped; 0 -> 127.5 -> 128; 0.004 -> 128.01 -> 128; NaN -> 0.
        #expect(Image(tensor: wild).pixels == [255, 0, 0, 128, 128])
    }

    @Test func batchStacksToBCHW() {
        let images = [testImage(width: 4, height: 3, channels: 3), testImage(width: 4, height: 3, channels: 1),
                      testImage(width: 4, height: 3, channels: 4)]
        let batch = Image.batch(images)
        #expect(batch.shape == [3, 3, 3, 4])
        #expect(batch[1, 2, 1, 3] == Float(images[1][x: 3, y: 1, channel: 0]) / 255 * 2 - 1)
        let back = Image.images(fromBatch: batch)
        #expect(back.count == 3)
        #expect(back[0] == images[0] && back[1] == images[1].rgb() && back[2] == images[2].rgb())
    }

    @Test func gridPlacesTilesRowMajor() {
        let tiles = (0..<5).map { Image(width: 4, height: 3, color: [UInt8(10 * $0), 1, 2]) }
        let sheet = Image.grid(tiles, columns: 2, padding: 1, background: (255, 255, 255))
        #expect(sheet.width == 2 * 5 + 1 && sheet.height == 3 * 4 + 1 && sheet.channels == 3)
        #expect(sheet[x: 6, y: 5] == [30, 1, 2])        // tile 3: column 1, row 1
        #expect(sheet[x: 9, y: 7] == [30, 1, 2])
        #expect(sheet[x: 1, y: 9] == [40, 1, 2])        // tile 4: column 0, row 2
        #expect(sheet[x: 6, y: 9] == [255, 255, 255])   // empty cell
        #expect(sheet[x: 0, y: 0] == [255, 255, 255])   // frame
        let fromBatch = Image.grid(batch: Image.batch(tiles), columns: 2, padding: 1, background: (255, 255, 255))
        #expect(fromBatch == sheet)
    }

    /// Nearest-neighbour enlargement repeats each pixel as a square; sheets of small tiles are
    /// enlarged to at least 64 pixels a side unless a scale is given.
    @Test func enlargedRepeatsPixelsAndSheetsOfSmallTilesGrow() throws {
        let image = testImage(width: 3, height: 2, channels: 3)
        let big = image.enlarged(by: 3)
        #expect(big.width == 9 && big.height == 6 && big.channels == 3)
        for y in 0..<6 { for x in 0..<9 { #expect(big[x: x, y: y] == image[x: x / 3, y: y / 3]) } }
        #expect(image.enlarged(by: 1) == image)
        let grey = testImage(width: 2, height: 2, channels: 1).enlarged(by: 2)
        #expect(grey.channels == 1 && grey[x: 3, y: 1] == testImage(width: 2, height: 2, channels: 1)[x: 1, y: 0])

        #expect(Image.sheetScale(width: 16, height: 16) == 4)
        #expect(Image.sheetScale(width: 28, height: 28) == 3)      // 84 px: the smallest integer factor reaching 64
        #expect(Image.sheetScale(width: 64, height: 64) == 1 && Image.sheetScale(width: 256, height: 128) == 1)
        #expect(Image.sheetScale(width: 2, height: 2) == 8)        // at most 8x

        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("sheet-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let tiles = (0..<3).map { Image(width: 16, height: 16, color: [UInt8(50 * $0), 7, 9]) }
        let auto = folder.appendingPathComponent("auto.png"), plain = folder.appendingPathComponent("plain.png")
        try Image.writeGrid(tiles, columns: 3, to: auto)
        try Image.writeGrid(tiles, columns: 3, to: plain, scale: 1)
        #expect(try Image(contentsOf: auto) == Image.grid(tiles.map { $0.enlarged(by: 4) }, columns: 3))
        #expect(try Image(contentsOf: plain) == Image.grid(tiles, columns: 3))
        #expect(throws: ImageIOError.self) { try Image.writeGrid(tiles, columns: 3, to: plain, scale: 0) }
        #expect(throws: ImageIOError.self) { try Image.writeGrid(tiles, columns: 3, to: plain, scale: 1 << 40) }   // no overflow trap
        #expect(throws: ImageIOError.self) { try Image.writeGrid(tiles, columns: 3, to: plain, scale: 700) }      // 3 x 11,200 px
    }
}

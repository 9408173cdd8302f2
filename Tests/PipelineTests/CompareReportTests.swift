import Foundation
import ImageIO
import Testing
@testable import Pipeline

/// The comparison's side-by-side grid names each arm above its samples.
@Suite struct CompareReportTests {
    @Test func armGridsAreTitledWithWholeWords() {
        let grid = Image(width: 120, height: 40, color: [10, 200, 30])
        let titled = CompareExperiment.titled(grid, CompareExperiment.Arm.maskedPretrain.label)
        let band = BitmapFont.height() + 8
        #expect(titled.width == 120 && titled.height == 40 + band)
        // The samples are below the band, unchanged; the band is white but for black text.
        #expect(titled[x: 60, y: band + 20] == [10, 200, 30])
        let bandPixels = (0..<band).flatMap { y in (0..<120).map { x in titled[x: x, y: y] } }
        #expect(bandPixels.allSatisfy { $0 == [255, 255, 255] || $0 == [0, 0, 0] })
        #expect(bandPixels.contains([0, 0, 0]))
        // "A: masked pre-train + fine-tune" (185 px) is cut to the whole words that fit in 112 px.
        var expected = Image(width: 120, height: band, color: [255, 255, 255])
        BitmapFont.draw("A: masked", into: &expected, x: 4, y: 4, color: (0, 0, 0))
        #expect(bandPixels == (0..<band).flatMap { y in (0..<120).map { x in expected[x: x, y: y] } })
        // A grid wide enough shows the whole label.
        let wide = CompareExperiment.titled(Image(width: 200, height: 8, color: [0, 0, 0]), "B: from scratch")
        var whole = Image(width: 200, height: band, color: [255, 255, 255])
        BitmapFont.draw("B: from scratch", into: &whole, x: 4, y: 4, color: (0, 0, 0))
        #expect((0..<band).allSatisfy { y in (0..<200).allSatisfy { x in wide[x: x, y: y] == whole[x: x, y: y] } })
    }

    /// The scored points are written with snake_case keys (as `log.jsonl` and `fid --json`),
    /// KID's spread included, and the camelCase lines of an older `evals.jsonl` still resume.
    @Test func pointsAreSnakeCaseAndOlderLinesStillRead() throws {
        let point = CompareExperiment.Point(arm: .scratch, index: 2, trainSeconds: 15, stage: "train", steps: 30, imagesSeen: 960,
                                            flops: 1.5e12, samples: 100, fid: 80.5, kid: 0.05, kidStd: 0.004)
        let line = String(decoding: try recordEncoder(pretty: false).encode(point), as: UTF8.self)
        #expect(line == #"{"arm":"B","fid":80.5,"flops":1500000000000,"images_seen":960,"index":2,"kid":0.05,"kid_std":0.004,"#
                + #""samples":100,"stage":"train","steps":30,"train_seconds":15}"#)
        #expect(try recordDecoder().decode(CompareExperiment.Point.self, from: Data(line.utf8)) == point)
        let older = #"{"arm":"B","fid":80.5,"flops":1500000000000,"imagesSeen":960,"index":2,"kid":0.05,"samples":100,"stage":"train","steps":30,"trainSeconds":15}"#
        var expected = point
        expected.kidStd = nil
        #expect(try recordDecoder().decode(CompareExperiment.Point.self, from: Data(older.utf8)) == expected)
    }
}

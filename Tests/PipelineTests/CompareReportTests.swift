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
}

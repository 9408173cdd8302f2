import Foundation
@testable import ImageIO

/// The committed fixtures (written by scripts/make_imageio_fixtures.py).
enum Fixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// What a valid fixture must decode to.
    struct Expected: Decodable {
        let width: Int
        let height: Int
        let channels: Int
        let pixels: [Int]
        let tolerance: Int
    }

    static func expected() throws -> [String: Expected] {
        try JSONDecoder().decode([String: Expected].self, from: Data(contentsOf: url("expected.json")))
    }

    /// Names of the corrupt files.
    static func corrupt() throws -> [String] {
        try FileManager.default.contentsOfDirectory(atPath: directory.appendingPathComponent("corrupt").path).sorted()
    }
}

/// Largest absolute sample difference between two equally sized sample arrays.
func maxDifference(_ a: [UInt8], _ b: [Int]) -> Int {
    zip(a, b).map { abs(Int($0) - $1) }.max() ?? 0
}

/// A deterministic test image with varied content.
func testImage(width: Int, height: Int, channels: Int) -> Image {
    var pixels: [UInt8] = []
    for y in 0..<height {
        for x in 0..<width {
            for c in 0..<channels { pixels.append(UInt8((x * 29 + y * 47 + c * 71 + x * y) % 256)) }
        }
    }
    return Image(width: width, height: height, channels: channels, pixels: pixels)
}

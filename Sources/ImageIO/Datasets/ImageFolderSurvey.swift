import Foundation

extension ImageFolder {
    /// What decoding every file of a folder found: how many images are readable, their sizes
    /// and kinds, and every file that is not (``ImageFolder/survey(chunk:progress:)``).
    public struct Survey: Sendable, Equatable {
        /// One image size and kind.
        public struct Shape: Hashable, Sendable, Comparable {
            /// Width and height in pixels.
            public let width: Int, height: Int
            /// Samples per pixel as stored: 1 (grey), 3 (RGB) or 4 (RGBA).
            public let channels: Int

            /// Larger areas first, then by width, height and channels.
            public static func < (a: Shape, b: Shape) -> Bool {
                (b.width * b.height, a.width, a.height, a.channels) < (a.width * a.height, b.width, b.height, b.channels)
            }
        }

        /// Files listed under the folder.
        public var files = 0
        /// Images that decode.
        public var readable = 0
        /// Readable images per size and kind.
        public var shapes: [Shape: Int] = [:]
        /// One message per file that does not decode (naming it and the problem), in listing order.
        public var failures: [String] = []

        /// The smallest side among the readable images (nil when there are none).
        public var smallestSide: Int? { shapes.keys.map { min($0.width, $0.height) }.min() }
    }

    /// Decodes every listed file, `chunk` at a time (in parallel within a chunk; only each
    /// image's size is kept, so a folder of any size fits in memory), calling `progress(done,
    /// total)` after each chunk.
    public func survey(chunk: Int = 512, progress: ((Int, Int) -> Void)? = nil) -> Survey {
        var survey = Survey(files: count)
        var next = 0
        while next < count {
            let ids = Array(next..<min(count, next + max(1, chunk)))
            next += ids.count
            let (shapes, failures) = Self.partition(loadReporting(ids) { Survey.Shape(width: $0.width, height: $0.height, channels: $0.channels) })
            for shape in shapes { survey.shapes[shape, default: 0] += 1 }
            survey.readable += shapes.count
            survey.failures += failures
            progress?(next, count)
        }
        return survey
    }
}

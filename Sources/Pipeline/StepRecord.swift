import Foundation

/// One line of `RUN/log.jsonl`: what one optimisation step did.
public struct StepRecord: Codable, Sendable, Equatable {
    /// Steps completed after this one (1-based).
    public var step: Int
    /// The step's loss (NaN for a skipped non-finite step).
    public var loss: Float
    /// Learning rate the update used.
    public var learningRate: Float
    /// Global gradient norm before clipping.
    public var gradientNorm: Float
    /// Wall-clock seconds of the step (data, forward, backward, update, EMA).
    public var seconds: Double
    /// Training images per second in this step.
    public var imagesPerSecond: Double
    /// Summed step seconds of the run so far (pauses and resumption do not count).
    public var trainSeconds: Double
    /// Seconds rank 0 spent in the step's collectives (loss and gradient all-reduce, waiting for
    /// the other ranks included); nil in a single process.
    public var communicationSeconds: Double?

    /// A record of the values above.
    public init(step: Int, loss: Float, learningRate: Float, gradientNorm: Float, seconds: Double,
                imagesPerSecond: Double, trainSeconds: Double, communicationSeconds: Double? = nil) {
        self.step = step; self.loss = loss; self.learningRate = learningRate; self.gradientNorm = gradientNorm
        self.seconds = seconds; self.imagesPerSecond = imagesPerSecond; self.trainSeconds = trainSeconds
        self.communicationSeconds = communicationSeconds
    }

    enum CodingKeys: String, CodingKey {
        case step, loss, learningRate = "learning_rate", gradientNorm = "grad_norm", seconds
        case imagesPerSecond = "images_per_second", trainSeconds = "train_seconds", communicationSeconds = "comm_seconds"
    }

    static let encoder: JSONEncoder = {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return e
    }()

    static let decoder: JSONDecoder = {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return d
    }()

    /// The record as one JSON line (no newline).
    public var jsonLine: String {
        (try? Self.encoder.encode(self)).flatMap { String(data: $0, encoding: .utf8) } ?? "{}"
    }

    /// Parses `log.jsonl` text; a torn last line (a kill during a write) is ignored.
    public static func parseLog(_ text: String) -> [StepRecord] {
        text.split(separator: "\n").compactMap { try? decoder.decode(StepRecord.self, from: Data($0.utf8)) }
    }
}

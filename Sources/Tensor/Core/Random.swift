import Foundation

/// A seeded, reproducible pseudo-random generator (xoshiro256++ seeded through SplitMix64).
///
/// There is no global generator: pass one `inout` to everything that draws. Streams depend only on
/// the seed (never on thread count); the full state can be saved and restored for exact resume.
///
/// ```swift
/// var rng = RandomGenerator(seed: 42)
/// let noise = Tensor.randomNormal([2, 3, 32, 32], using: &rng)
/// let saved = rng.state           // store in a checkpoint
/// var again = RandomGenerator(state: saved)
/// ```
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    /// The four 64-bit words of xoshiro256++ state.
    public private(set) var state: [UInt64]

    /// A generator whose stream is determined by `seed`.
    public init(seed: UInt64) {
        var sm = seed
        func splitmix() -> UInt64 {
            sm &+= 0x9E37_79B9_7F4A_7C15
            var z = sm
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        state = [splitmix(), splitmix(), splitmix(), splitmix()]
    }

    /// Restores a generator from a saved ``state`` (four words, not all zero).
    public init(state: [UInt64]) {
        precondition(state.count == 4 && state.contains { $0 != 0 }, "RandomGenerator: invalid state \(state)")
        self.state = state
    }

    @inline(__always) private static func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// The next 64 random bits.
    public mutating func next() -> UInt64 {
        let result = Self.rotl(state[0] &+ state[3], 23) &+ state[0]
        let t = state[1] << 17
        state[2] ^= state[0]; state[3] ^= state[1]; state[1] ^= state[2]; state[0] ^= state[3]
        state[2] ^= t
        state[3] = Self.rotl(state[3], 45)
        return result
    }

    /// A uniform Float in [0, 1) with 24 random bits.
    public mutating func nextUniform() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// A uniform Double in [0, 1) with 53 random bits.
    public mutating func nextUniformDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// A standard normal sample (Box-Muller in Double precision).
    public mutating func nextNormal() -> Float {
        let u1 = 1.0 - nextUniformDouble()          // (0, 1]
        let u2 = nextUniformDouble()
        return Self.boxMuller(u1, u2)
    }

    /// The Box-Muller transform of ``nextNormal()``: u1 in (0, 1], u2 in [0, 1).
    @inline(__always) static func boxMuller(_ u1: Double, _ u2: Double) -> Float {
        Float((-2.0 * Foundation.log(u1)).squareRoot() * Foundation.cos(2.0 * Double.pi * u2))
    }

    /// Fills `buffer` with normal samples of the given mean and standard deviation: the values
    /// of ``nextNormal()`` drawn one after another (what ``Tensor/randomNormal(_:mean:std:using:)``
    /// holds). From 16k values on, and with ``Parallel/threads`` above 1, the uniforms are drawn in
    /// that order on the calling thread and only the log/cos transform (30-40x the cost of a draw)
    /// runs on all threads, with the same arithmetic, so the values do not depend on the threads.
    public mutating func fillNormal(_ buffer: UnsafeMutableBufferPointer<Float>, mean: Float = 0, std: Float = 1) {
        guard let p = buffer.baseAddress else { return }
        let n = buffer.count
        if n < Tensor.parallelNormalCount || Parallel.threads == 1 {
            for i in 0..<n { p[i] = mean + std * nextNormal() }
            return
        }
        let uniforms = UnsafeMutablePointer<Double>.allocate(capacity: 2 * n)
        defer { uniforms.deallocate() }
        for i in 0..<n {
            uniforms[2 * i] = 1.0 - nextUniformDouble()
            uniforms[2 * i + 1] = nextUniformDouble()
        }
        let us = SendablePointer(uniforms), ps = SendablePointer(p)
        parallelFor(n, grain: Tensor.parallelNormalCount / 2) { r in
            for i in r { ps[i] = mean + std * Self.boxMuller(us[2 * i], us[2 * i + 1]) }
        }
    }

    /// A uniform integer in `0..<upperBound` without modulo bias.
    public mutating func nextInt(below upperBound: Int) -> Int {
        precondition(upperBound > 0, "nextInt: upper bound must be positive")
        return Int(next(upperBound: UInt64(upperBound)))
    }

    /// A derived generator for an independent sub-stream (e.g. one per data-loader worker).
    public mutating func split() -> RandomGenerator { RandomGenerator(seed: next()) }
}

extension Tensor {
    /// Uniform samples in `[low, high)`.
    public static func randomUniform(_ shape: Shape, low: Float = 0, high: Float = 1,
                                     using rng: inout RandomGenerator) -> Tensor {
        var t = Tensor(uninitialized: shape)
        let p = t.mutablePointer()
        for i in 0..<shape.count { p[i] = low + (high - low) * rng.nextUniform() }
        return t
    }

    /// Normal samples with the given mean and standard deviation.
    public static func randomNormal(_ shape: Shape, mean: Float = 0, std: Float = 1,
                                    using rng: inout RandomGenerator) -> Tensor {
        var t = Tensor(uninitialized: shape)
        rng.fillNormal(UnsafeMutableBufferPointer(start: t.mutablePointer(), count: shape.count), mean: mean, std: std)
        return t
    }

    /// Standard normal samples of `shape` (B, ...) whose item i (`shape[0]` items, the first
    /// axis) comes from `generators[i]` alone: what `randomNormal(itemShape, using: &generators[i])`
    /// gives, stacked. An item's values do not depend on which other items share the batch.
    public static func randomNormal(_ shape: Shape, itemGenerators generators: inout [RandomGenerator]) -> Tensor {
        precondition(shape.rank >= 1 && generators.count == shape[0],
                     "randomNormal: \(generators.count) generators for a batch of shape \(shape)")
        var t = Tensor(uninitialized: shape)
        let p = t.mutablePointer(), item = shape.count / Swift.max(shape[0], 1)
        for i in generators.indices {
            generators[i].fillNormal(UnsafeMutableBufferPointer(start: p + i * item, count: item))
        }
        return t
    }

    /// Sizes from which ``RandomGenerator/fillNormal(_:mean:std:)`` (and so
    /// ``randomNormal(_:mean:std:using:)``) transforms on all threads.
    static let parallelNormalCount = 16_384

    /// Normal samples redrawn until they fall in `[low, high]` (absolute bounds, as
    /// `torch.nn.init.trunc_normal_`).
    public static func truncatedNormal(_ shape: Shape, mean: Float = 0, std: Float = 1,
                                       low: Float = -2, high: Float = 2,
                                       using rng: inout RandomGenerator) -> Tensor {
        precondition(low < high, "truncatedNormal: empty interval [\(low), \(high)]")
        var t = Tensor(uninitialized: shape)
        let p = t.mutablePointer()
        for i in 0..<shape.count {
            var v: Float
            repeat { v = mean + std * rng.nextNormal() } while v < low || v > high
            p[i] = v
        }
        return t
    }
}

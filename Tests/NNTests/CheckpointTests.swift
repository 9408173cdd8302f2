import Foundation
import Tensor
import Testing
@testable import NN

@Suite struct CheckpointTests {
    func tempDir() throws -> URL {
        let d = FileManager.default.temporaryDirectory.appendingPathComponent("ckpt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: d, withIntermediateDirectories: true)
        return d
    }

    func makeStore(seed: UInt64, extra: Bool = false) -> ParameterStore {
        let s = ParameterStore()
        var rng = RandomGenerator(seed: seed)
        _ = Linear(s.builder.scope("a"), inputDimensions: 3, outputDimensions: 4, rng: &rng)
        _ = LayerNorm(s.builder.scope("n"), dimensions: 4)
        if extra { _ = Linear(s.builder.scope("b"), inputDimensions: 4, outputDimensions: 2, rng: &rng) }
        return s
    }

    @Test func roundTripWithEMAAndOptimizerState() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        let s = makeStore(seed: 1)
        let opt = AdamW(store: s)
        for i in 0..<s.count { s.gradients.mutableBase[i] = Float(i % 7) - 3 }
        opt.update(); opt.update()
        let ema = ExponentialMovingAverage(online: s)
        ema.update()
        try Checkpoint.save(to: url, store: s, ema: ema, optimizer: opt, metadata: ["step": "2"])
        let s2 = makeStore(seed: 2)
        let opt2 = AdamW(store: s2), ema2 = ExponentialMovingAverage(online: s2)
        let report = try Checkpoint.load(from: url, into: s2, ema: ema2, optimizer: opt2)
        #expect(report.metadata["step"] == "2" && report.metadata["format"] == Checkpoint.formatVersion)
        for p in s.parameters { #expect(s2.value(p).scalars == s.value(p).scalars) }
        #expect(opt2.step == 2 && ema2.updates == 1)
        for i in 0..<s.count { #expect(opt2.m.base[i] == opt.m.base[i] && opt2.v.base[i] == opt.v.base[i]) }
    }

    @Test func strictLoadingNamesMissingUnusedAndMisshapedKeys() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try Checkpoint.save(to: url, store: makeStore(seed: 1))
        #expect { try Checkpoint.load(from: url, into: makeStore(seed: 1, extra: true)) } throws: { "\($0)".contains("b.weight") && "\($0)".contains("missing") }
        let big = dir.appendingPathComponent("big.safetensors")
        try Checkpoint.save(to: big, store: makeStore(seed: 1, extra: true))
        #expect { try Checkpoint.load(from: big, into: makeStore(seed: 1)) } throws: { "\($0)".contains("unused") && "\($0)".contains("b.bias") }
        // Lenient: loads what matches, reports the rest.
        let target = makeStore(seed: 9, extra: true)
        let report = try Checkpoint.load(from: url, into: target, strict: false)
        #expect(report.missing == ["b.weight", "b.bias"])
        #expect(target.value(target.parameter(named: "a.weight")!).scalars == makeStore(seed: 1).value(makeStore(seed: 1).parameter(named: "a.weight")!).scalars)
        // Shape mismatch.
        let other = ParameterStore()
        other.add("a.weight", .zeros([4, 4])); other.add("a.bias", .zeros([4])); other.add("n.weight", .zeros([4])); other.add("n.bias", .zeros([4]))
        #expect { try Checkpoint.load(from: url, into: other) } throws: { "\($0)".contains("a.weight") && "\($0)".contains("shape") }
        // Missing file.
        #expect { try Checkpoint.load(from: dir.appendingPathComponent("nope.safetensors"), into: other) } throws: { "\($0)".contains("nope.safetensors") }
    }

    @Test func truncatedOrCorruptedCheckpointsFailCleanly() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try Checkpoint.save(to: url, store: makeStore(seed: 1), ema: ExponentialMovingAverage(online: makeStore(seed: 1)))
        let bytes = try Data(contentsOf: url)
        let bad = dir.appendingPathComponent("bad.safetensors")
        for cut in Swift.stride(from: 0, to: bytes.count, by: 3) {
            try bytes.prefix(cut).write(to: bad)
            #expect(throws: CheckpointError.self) { try Checkpoint.load(from: bad, into: makeStore(seed: 3)) }
        }
        // Flip bytes inside the JSON header: must throw (or, if the JSON stays valid and consistent, load), never crash.
        let headerLength = Int(bytes[0]) | Int(bytes[1]) << 8
        var thrown = 0
        for i in Swift.stride(from: 8, to: 8 + headerLength, by: 5) {
            var m = bytes
            m[i] ^= 0x5A
            try m.write(to: bad)
            do { try Checkpoint.load(from: bad, into: makeStore(seed: 3)) } catch { thrown += 1 }
        }
        #expect(thrown > headerLength / 10)
    }

    /// A value changed on disk to another finite number is found by the recorded CRC-32 of the
    /// tensors; a file without the record (an older checkpoint) still loads.
    @Test func damagedValuesAreCaughtByTheContentChecksum() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        try Checkpoint.save(to: url, store: makeStore(seed: 1), ema: ExponentialMovingAverage(online: makeStore(seed: 1)))
        let file = try SafetensorsFile(contentsOf: url)
        #expect(file.metadata[Safetensors.contentChecksumKey]?.hasPrefix("0x") == true)
        try file.verifyContentChecksum()
        let bytes = try Data(contentsOf: url)
        let dataStart = 8 + (Int(bytes[0]) | Int(bytes[1]) << 8)
        var damaged = bytes
        // The last tensor's last value becomes 4.3e9: finite, so only the checksum can tell.
        damaged.replaceSubrange((bytes.count - 4)..<bytes.count, with: [0x00, 0x00, 0x80, 0x4F])
        #expect(damaged.count - 4 >= dataStart)
        let bad = dir.appendingPathComponent("bad.safetensors")
        try damaged.write(to: bad)
        #expect { try Checkpoint.load(from: bad, into: makeStore(seed: 3)) } throws: { "\($0)".contains("CRC-32") && "\($0)".contains("bad.safetensors") }
        // Without the record (as written before checkpoints had it) the same file loads.
        let store = makeStore(seed: 1)
        var tensors: [String: Tensor] = [:]
        for p in store.parameters { tensors[p.name] = store.value(p) }
        let old = dir.appendingPathComponent("old.safetensors")
        try Safetensors.write(tensors, metadata: ["format": Checkpoint.formatVersion], to: old)
        try Checkpoint.load(from: old, into: makeStore(seed: 3))
    }

    @Test func nonFiniteWeightsAreNeverWrittenAndThePreviousCheckpointSurvives() throws {
        let dir = try tempDir(); defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("c.safetensors")
        let s = makeStore(seed: 1)
        try Checkpoint.save(to: url, store: s)
        let good = try Data(contentsOf: url)
        s.values.mutableBase[0] = .nan
        #expect { try Checkpoint.save(to: url, store: s) } throws: { "\($0)".contains("non-finite") }
        #expect(try Data(contentsOf: url) == good)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["c.safetensors"])
    }
}

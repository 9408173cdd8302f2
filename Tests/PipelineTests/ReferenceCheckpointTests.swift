import Foundation
import NN
import Pipeline
import Tensor
import Testing
import ViTDiffusion

/// A real reference training state (3 steps of the reference's GaussianDiffusion + ema-pytorch
/// training, saved as its train_step.py does) converted and loaded by the pipeline: the network's
/// outputs must match the reference's own, online and EMA.
@Suite struct ReferenceCheckpointTests {
    /// x, t and the reference's outputs.
    struct Expected {
        let x: Tensor
        let t: [Int]
        let online: Tensor
        let ema: Tensor
    }

    static func expected() throws -> Expected {
        let f = try SafetensorsFile(contentsOf: Fixtures.referenceOutputs)
        return Expected(x: try f.tensor("x"), t: try f.int64s("t").map { Int($0) },
                        online: try f.tensor("out_online"), ema: try f.tensor("out_ema"))
    }

    static func fixtureModel() throws -> MaskedUViT {
        var rng = RandomGenerator(seed: 99)
        return MaskedUViT(config: try ReferenceConfig(contentsOf: Fixtures.referenceConfig).model, rng: &rng)
    }

    @Test func fixtureOutputsTellOnlineFromEMA() throws {
        let e = try Self.expected()
        #expect(e.x.shape == [2, 3, 8, 8] && e.t == [17, 733] && e.online.shape == [2, 3, 8, 8] && e.ema.shape == [2, 3, 8, 8])
        // Otherwise the EMA checks below would pass with the online weights.
        #expect(relativeError(e.ema, e.online) > 1e-3)
    }

    @Test func convertedCheckpointReproducesReferenceOutputs() throws {
        let e = try Self.expected()
        try withTemporaryFolder("convert") { dir in
            let out = dir.appendingPathComponent("converted.safetensors")
            let report = try ReferenceConversion.convert(reference: Fixtures.referenceState, config: Fixtures.referenceConfig, output: out)
            #expect(report.step == 3)
            #expect(report.hasEMA)
            #expect(report.parameters == 3044)                     // the reference's count for this network
            let meta = try SafetensorsFile(contentsOf: out).metadata
            #expect(meta["step"] == "3")
            #expect(meta["ema_updates"] == "3")
            #expect(meta["source"] == Fixtures.referenceState.path)

            let online = try MaskedUViT.load(checkpoint: out, ema: false)
            let ema = try MaskedUViT.load(checkpoint: out, ema: true)
            #expect(online.config == MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 8, depth: 3, heads: 2))
            let errOnline = relativeError(online.predictNoise(e.x, timesteps: e.t), e.online)
            let errEMA = relativeError(ema.predictNoise(e.x, timesteps: e.t), e.ema)
            #expect(errOnline < 1e-5, "online: relative error \(errOnline)")
            #expect(errEMA < 1e-5, "ema: relative error \(errEMA)")

            // The converted checkpoint also loads through WeightLoading (prefix "" / "ema.").
            let m = try Self.fixtureModel()
            try WeightLoading.loadWeights(from: out, into: m, ema: true)
            #expect(relativeError(m.predictNoise(e.x, timesteps: e.t), e.ema) < 1e-5)
        }
    }

    @Test(arguments: [false, true])
    func loadWeightsFromReferenceStateDirectly(ema: Bool) throws {
        let e = try Self.expected()
        let model = try Self.fixtureModel()
        try WeightLoading.loadWeights(from: Fixtures.referenceState, into: model, ema: ema)
        let err = relativeError(model.predictNoise(e.x, timesteps: e.t), ema ? e.ema : e.online)
        #expect(err < 1e-5, "ema \(ema): relative error \(err)")
        let state = try WeightLoading.referenceState(Fixtures.referenceState)
        #expect(state.step == 3)
        #expect(state.hasEMA)
    }

    @Test func referenceStateIsRecognisedAsTorchFile() throws {
        #expect(WeightLoading.isTorchFile(Fixtures.referenceState))
        #expect(try WeightLoading.resolve(Fixtures.referenceState) == Fixtures.referenceState)
        #expect(!WeightLoading.isTorchFile(URL(fileURLWithPath: "/x/checkpoint.safetensors")))
    }

    @Test(arguments: ["not_a_training_state", "torch_nested", "garbage"])
    func torchFileThatIsNotATrainingStateIsRefused(_ which: String) throws {
        try withTemporaryFolder("notstate") { dir in
            let file: URL
            switch which {
            case "not_a_training_state": file = Fixtures.notATrainingState
            case "torch_nested": file = Fixtures.torchNested
            default:
                file = dir.appendingPathComponent("garbage.pt")
                try Data("this is not a zip archive".utf8).write(to: file)
            }
            try #require(FileManager.default.fileExists(atPath: file.path), "missing fixture \(file.path)")
            let model = try Self.fixtureModel()
            let error = #expect(throws: PipelineError.self) {
                try WeightLoading.loadWeights(from: file, into: model, ema: false)
            }
            guard case .badCheckpoint(let path, _)? = error else {
                Issue.record("expected badCheckpoint, got \(String(describing: error))"); return
            }
            #expect(path == file.path)
            #expect(error?.description.contains(file.path) == true)
            if which != "garbage" { #expect(error?.description.contains("not a reference training state") == true) }
            // convert refuses it the same way and writes nothing.
            let out = dir.appendingPathComponent("out.safetensors")
            #expect {
                try ReferenceConversion.convert(reference: file, config: Fixtures.referenceConfig, output: out)
            } throws: { "\($0)".contains(file.path) }
            #expect(!FileManager.default.fileExists(atPath: out.path))
        }
    }

    @Test func trainingStateOfAnotherNetworkIsRefusedNamingKey() throws {
        var rng = RandomGenerator(seed: 1)
        let wide = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 16, depth: 3, heads: 2), rng: &rng)
        let error = #expect(throws: PipelineError.self) {
            try WeightLoading.loadWeights(from: Fixtures.referenceState, into: wide, ema: false)
        }
        let text = error?.description ?? ""
        // Another width: the position embedding says which network the weights fit.
        #expect(text.contains(Fixtures.referenceState.path) && text.contains("patches of width 8") && text.contains("width 16"), "\(text)")
        // Another image size: the same, from the project checkpoint this state converts to.
        let converted = FileManager.default.temporaryDirectory.appendingPathComponent("tokens-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: converted) }
        try ReferenceConversion.convert(reference: Fixtures.referenceState, config: Fixtures.referenceConfig, output: converted)
        let (config, _) = try DiffusionTrainer.describe(checkpoint: converted)
        var larger = config
        larger.imageHeight *= 2; larger.imageWidth *= 2
        let big = MaskedUViT(config: larger, rng: &rng)
        #expect {
            try WeightLoading.loadWeights(from: converted, into: big, ema: true)
        } throws: { error in
            "\(error)".contains("its weights are for \(config.patchCount) patches") && "\(error)".contains("\(larger.patchCount) patches")
        }
        let deep = MaskedUViT(config: MaskedUViTConfig(imageSize: 8, patchSize: 2, embedDim: 8, depth: 5, heads: 2), rng: &rng)
        let missing = #expect(throws: PipelineError.self) {
            try WeightLoading.loadWeights(from: Fixtures.referenceState, into: deep, ema: true)
        }
        #expect(missing?.description.contains("missing key 'encoder.in_blocks.1.") == true, "\(String(describing: missing))")
    }

    @Test func missingWeightsAreNamed() throws {
        let model = try Self.fixtureModel()
        let path = "/nonexistent/run-\(UUID().uuidString)"
        #expect(throws: PipelineError.missingFile(path: path, hint: "expected a run folder, a .safetensors checkpoint or a reference .pt")) {
            try WeightLoading.loadWeights(from: URL(fileURLWithPath: path), into: model, ema: false)
        }
    }
}

import Foundation
import Masking
import NN
import Tensor

/// Running the network on tensors from files, for checking ports against the reference
/// (`maskdm forward`).
public enum Interop {
    /// Loads `config` and `weights`, runs the network on `inputs` and writes `output`:
    /// `out` (image-shaped, or (B, NV, P*P*C) with a mask) and, when the inputs hold `eps`,
    /// `loss` and `grad.<name>` for every parameter.
    public static func forward(weights: URL, config: URL, inputs: URL, output: URL) throws {
        let cfg = try MaskedUViTConfig.load(from: config)
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: cfg, rng: &rng)
        try Checkpoint.load(from: weights, into: model.store)
        let results = try evaluate(model, inputs: inputs)
        try Safetensors.write(results, metadata: ["config": cfg.json], to: output)
    }

    /// Runs `model` on the tensors of an inputs file (see ``forward(weights:config:inputs:output:)``)
    /// and returns `out` and, with `eps`, `loss` and `grad.<name>`.
    public static func evaluate(_ model: MaskedUViT, inputs: URL) throws -> [String: Tensor] {
        let cfg = model.config
        let file: SafetensorsFile
        do { file = try SafetensorsFile(contentsOf: inputs) } catch {
            throw ViTDiffusionError.invalidInput(file: inputs.path, key: nil, problem: "\(error)")
        }
        let name = inputs.lastPathComponent
        func need(_ key: String) throws -> SafetensorsFile.TensorInfo {
            guard let info = file.info(key) else { throw ViTDiffusionError.missingTensor(file: name, key: key) }
            return info
        }
        let xInfo = try need("x")
        let expected = [cfg.inChannels, cfg.imageHeight, cfg.imageWidth]
        guard xInfo.shape.count == 4, Array(xInfo.shape.dropFirst()) == expected else {
            throw ViTDiffusionError.wrongShape(file: name, key: "x", found: xInfo.shape,
                                               expected: "(B, \(expected.map(String.init).joined(separator: ", ")))")
        }
        let b = xInfo.shape[0]
        let x = try file.tensor("x")
        let tInfo = try need("t")
        guard tInfo.shape == [b] else { throw ViTDiffusionError.wrongShape(file: name, key: "t", found: tInfo.shape, expected: "[\(b)]") }
        let t: [Float] = tInfo.dtype.isInteger ? try file.int64s("t").map(Float.init) : try file.tensor("t").scalars
        guard t.allSatisfy(\.isFinite) else {
            throw ViTDiffusionError.invalidInput(file: name, key: "t", problem: "holds NaN or infinite timesteps")
        }
        guard x.isFinite else { throw ViTDiffusionError.invalidInput(file: name, key: "x", problem: "holds NaN or infinite values") }
        var visible: [[Int]]? = nil
        if let mInfo = file.info("mask") {
            guard mInfo.shape == [b, 1 + cfg.patchCount] else {
                throw ViTDiffusionError.wrongShape(file: name, key: "mask", found: mInfo.shape, expected: "[\(b), \(1 + cfg.patchCount)]")
            }
            // U8 / BOOL as specified; integer and float masks are read too (nonzero = dropped).
            let flat: [Int64] = mInfo.dtype.isInteger || mInfo.dtype == .bool ? try file.int64s("mask")
                                                                             : try file.tensor("mask").scalars.map { $0 != 0 ? 1 : 0 }
            let rows = (0..<b).map { i in flat[(i * (1 + cfg.patchCount))..<((i + 1) * (1 + cfg.patchCount))].map { $0 != 0 } }
            do { visible = try Mask(tokenMask: rows).visible } catch {
                throw ViTDiffusionError.invalidInput(file: name, key: "mask", problem: "\(error)")
            }
        }
        var results: [String: Tensor] = [:]
        if let eInfo = file.info("eps") {
            guard eInfo.shape == xInfo.shape else {
                throw ViTDiffusionError.wrongShape(file: name, key: "eps", found: eInfo.shape, expected: "\(xInfo.shape)")
            }
            let eps = try file.tensor("eps")
            model.store.zeroGrad()
            let tape = Tape()
            let pred = model.tokens(x, timesteps: t, visiblePatches: visible, tape: tape)
            let loss = Functional.mseLoss(pred, target: MaskedUViT.targetTokens(eps, patch: cfg.patchSize, visiblePatches: visible), tape: tape)
            tape.backward(from: loss)
            results["loss"] = loss.value
            results["out"] = pred.value
            for p in model.store.parameters { results["grad." + p.name] = model.store.gradient(p) }
        } else {
            results["out"] = model.tokens(x, timesteps: t, visiblePatches: visible, tape: nil).value
        }
        if visible == nil, let out = results["out"] {
            results["out"] = out.unpatchified(patch: cfg.patchSize, channels: cfg.inChannels, height: cfg.imageHeight, width: cfg.imageWidth)
        }
        return results
    }
}

import ArgumentParser
import Foundation
import Pipeline
import Tensor
import ViTDiffusion

/// `maskdm forward`: run the network on tensors from safetensors files (port checking).
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run MaskedUViT on inputs from a safetensors file; with `eps`, also the loss and every gradient.")

    @Option(help: "Weights: a safetensors file of reference state-dict keys, a project checkpoint or run folder, or a reference .pt training state.")
    var weights: String
    @Option(help: "Config: JSON with the reference's names (img_size, patch_size, ...) or a reference YAML; optional for project checkpoints.")
    var config: String?
    @Option(help: "Inputs: x (B,C,H,W) F32, t (B) I64/F32, optional mask (B,1+N) U8/BOOL (1 = dropped), optional eps.") var inputs: String
    @Option(name: [.customLong("output"), .customLong("out")], help: "Where to write out (and loss, grad.<name>); --out is the same.")
    var output: String
    @Flag(help: "Use the online or the EMA weights of a checkpoint or training state (a port check compares the online ones).")
    var weightChoice: WeightChoice = .online

    func run() throws {
        let weightsURL = try WeightLoading.resolve(URL(fileURLWithPath: weights))
        let cfg: MaskedUViTConfig
        if let config {
            let url = URL(fileURLWithPath: config)
            cfg = ["yml", "yaml"].contains(url.pathExtension.lowercased()) ? try ReferenceConfig(contentsOf: url).model
                                                                           : try MaskedUViTConfig.load(from: url)
        } else if !WeightLoading.isTorchFile(weightsURL) {
            cfg = try DiffusionTrainer.describe(checkpoint: weightsURL).config
        } else {
            throw ValidationError("--config is required for a .pt file (the reference's YAML or a JSON config)")
        }
        var rng = RandomGenerator(seed: 0)
        let model = MaskedUViT(config: cfg, rng: &rng)
        try WeightLoading.loadWeights(from: weightsURL, into: model, ema: weightChoice == .ema)
        let results = try Interop.evaluate(model, inputs: URL(fileURLWithPath: inputs))
        try Safetensors.write(results, metadata: ["config": cfg.json], to: URL(fileURLWithPath: output))
        print("wrote \(output)")
    }
}

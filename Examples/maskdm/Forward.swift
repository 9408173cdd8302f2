import ArgumentParser
import Foundation
import ViTDiffusion

/// `maskdm forward`: run the network on tensors from safetensors files (port checking).
struct Forward: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run MaskedUViT on inputs from a safetensors file; with `eps`, also the loss and every gradient.")

    @Option(help: "Weights (safetensors, Float32, reference state-dict keys without prefix).") var weights: String
    @Option(help: "Config JSON with the reference's names (img_size, patch_size, in_chans, encoder_embed_dim, ...).") var config: String
    @Option(help: "Inputs: x (B,C,H,W) F32, t (B) I64/F32, optional mask (B,1+N) U8/BOOL (1 = dropped), optional eps.") var inputs: String
    @Option(help: "Where to write out (and loss, grad.<name>).") var output: String

    func run() throws {
        try Interop.forward(weights: URL(fileURLWithPath: weights), config: URL(fileURLWithPath: config),
                            inputs: URL(fileURLWithPath: inputs), output: URL(fileURLWithPath: output))
        print("wrote \(output)")
    }
}

import Foundation
import Tensor
import Testing

/// The committed fixtures (written by scripts/make_reference_state_fixture.py).
enum Fixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// `reference_state.pt`: torch.save({step, model, opt, ema, scaler}) of 3 reference training steps.
    static var referenceState: URL { url("reference_state.pt") }
    /// `reference_tiny.yml`: the config of that network, in the reference's YAML layout.
    static var referenceConfig: URL { url("reference_tiny.yml") }
    /// `reference_outputs.safetensors`: x, t and the reference network's out_online / out_ema.
    static var referenceOutputs: URL { url("reference_outputs.safetensors") }
    /// `not_a_training_state.pt`: {step, model: <a bare network state dict>}.
    static var notATrainingState: URL { url("not_a_training_state.pt") }

    /// A `torch.save` fixture of another test target (a nested dict of tensors, no network).
    static var torchNested: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TorchCheckpointTests/Fixtures/torch_nested.pt")
    }
}

/// A fresh temporary folder, removed by `body`'s end.
func withTemporaryFolder<R>(_ label: String = "pipeline", _ body: (URL) throws -> R) throws -> R {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: url) }
    return try body(url)
}

/// Largest absolute difference over the largest magnitude of `want`.
func relativeError(_ got: Tensor, _ want: Tensor) -> Float {
    got.reshaped(to: want.shape).maxAbsDifference(want) / max(want.maxAbs(), 1e-12)
}

/// The sorted names of the files in `folder` with their bytes (to check a folder is untouched).
func snapshot(_ folder: URL) throws -> [String: Data] {
    var out: [String: Data] = [:]
    let walker = FileManager.default.enumerator(at: folder, includingPropertiesForKeys: [.isRegularFileKey])
    while let url = walker?.nextObject() as? URL {
        guard (try url.resourceValues(forKeys: [.isRegularFileKey])).isRegularFile == true else { continue }
        out[String(url.standardizedFileURL.path.dropFirst(folder.standardizedFileURL.path.count))] = try Data(contentsOf: url)
    }
    return out
}

import Foundation
import Metrics
import Testing
@testable import Pipeline

/// The whole two-stage demo end to end in its `--quick` form (tiny network, tiny budgets): both run
/// folders, samples, grid, FID/KID against the target, report; then a re-run resumes without training.
@Suite(.serialized) struct DemoQuickTests {
    @Test func quickDemoRunsEndToEndAndResumes() throws {
        guard FileManager.default.fileExists(atPath: FIDInceptionV3.defaultWeightsURL.path) else {
            Issue.record("FID Inception weights missing at \(FIDInceptionV3.defaultWeightsURL.path): run scripts/fetch-fid-weights.sh")
            return
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("demo-quick-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        let demo = TwoStageDemo(folder: folder, recipe: .quick)
        let report = try demo.run(source: .bundled(.emojiOthers), target: .bundled(.emojiFaces))
        #expect(report.stages.map(\.stage) == ["pretrain", "finetune"])
        #expect(report.stages.map(\.steps) == [ExperimentRecipe.quick.pretrain.steps, ExperimentRecipe.quick.finetune.steps])
        #expect(report.stages.allSatisfy { $0.finalLoss.isFinite && $0.finalLoss > 0 && $0.imagesPerSecond > 0 })
        let fid = try #require(report.fid)
        #expect(fid.isFinite && fid > 0)
        #expect(SampleWriter.existingCount(in: folder.appendingPathComponent("samples")) == ExperimentRecipe.quick.sampleCount)
        #expect(SampleWriter.existingCount(in: folder.appendingPathComponent("target")) == 115)
        for file in ["samples.png", "report.json", "pretrain/checkpoint.safetensors", "pretrain/loss.png",
                     "finetune/checkpoint.safetensors", "finetune/log.jsonl", "finetune/config.json"] {
            #expect(FileManager.default.fileExists(atPath: folder.appendingPathComponent(file).path), "\(file)")
        }
        // The fine-tuning run started from the pre-trained checkpoint and trained unmasked.
        let fineConfig = try JSONDecoder().decode(RunConfig.self, from: Data(contentsOf: folder.appendingPathComponent("finetune/config.json")))
        #expect(fineConfig.recipe.mask == .none && fineConfig.initialization?.hasSuffix("pretrain/checkpoint.safetensors") == true)
        // Re-running finds both stages complete and the samples written: nothing is trained or drawn again.
        let before = try String(contentsOf: folder.appendingPathComponent("finetune/log.jsonl"), encoding: .utf8)
        let again = try demo.run(source: .bundled(.emojiOthers), target: .bundled(.emojiFaces), evaluateFID: false)
        #expect(try String(contentsOf: folder.appendingPathComponent("finetune/log.jsonl"), encoding: .utf8) == before)
        #expect(again.stages.map(\.steps) == report.stages.map(\.steps))
    }
}

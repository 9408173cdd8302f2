import Foundation
import Masking
import Pipeline
import Schedules
import Testing
import ViTDiffusion

/// The reference's YAML configs resolved to a model and a recipe; unsupported keys and values are
/// refused naming the key.
@Suite struct ReferenceConfigTests {
    /// A small config in the reference's layout, with extra lines appended to each section.
    static func yaml(top: String = "", dataset: String = "", network: String = "", imgSize: Int = 16, patchSize: Int = 4) -> String {
        """
        batch_size: 8
        lr: 2.0e-4
        weight_decay: 0.03
        ema_decay: 0.999
        beta_schedule: "cosine"
        \(top)
        dataset:
          NAME: celebahq
          MASK_RATIO: 0.5
          MASK_TYPE: "block"
          MASK_BLOCK_SIZE: 2
          IMG_SIZE: \(imgSize)
          \(dataset)
        network:
          name: 'maskdm'
          img_size: \(imgSize)
          patch_size: \(patchSize)
          encoder_embed_dim: 32
          encoder_depth: 5
          encoder_heads: 4
          \(network)
        """
    }

    /// The key of a ``PipelineError/badConfig(path:key:problem:)``, or nil for anything else.
    static func badKey(_ text: String) -> String? {
        do {
            _ = try ReferenceConfig(yaml: text, path: "test.yml")
            return nil
        } catch let PipelineError.badConfig(path, key, _) {
            #expect(path == "test.yml")
            return key
        } catch {
            Issue.record("expected badConfig, got \(error)")
            return nil
        }
    }

    @Test func fixtureConfigResolvesToModelAndRecipe() throws {
        let ref = try ReferenceConfig(contentsOf: Fixtures.referenceConfig)
        #expect(ref.model == MaskedUViTConfig(imageSize: 8, patchSize: 2, inChannels: 3, embedDim: 8, depth: 3, heads: 2,
                                              mlpRatio: 4, qkvBias: false))
        let r = ref.recipe
        #expect(r.batchSize == 4)
        #expect(r.learningRate == Float(1e-3))
        #expect(r.warmupSteps == 0)
        #expect(r.beta1 == 0.9 && r.beta2 == 0.99)
        #expect(r.weightDecay == Float(0.03))
        #expect(r.emaBeta == Float(0.999))
        #expect(r.gradientClip == 1.0)
        #expect(r.schedule == .linear)
        #expect(r.mask == .patch(ratio: 0.5))
        #expect(r.flipProbability == 0)
        #expect(r.objective == .noise && r.loss == .l2)
        #expect(ref.shortSideSize == nil)
        #expect(ref.pretrainedCheckpoint == nil)
        // The same network as the reference counted (sum of numel of trainable parameters).
        #expect(ref.model.trainableParameterCount == 3044)
        let d = try ModelDescription(describing: Fixtures.referenceConfig)
        #expect(d.parameters == 3044 && d.visibleTokens == 8)
        #expect(d.maskProblem == nil && d.text.contains("8 of 16 patch tokens visible"), "\(d.text)")
        // A mask the grid cannot take is named as unusable, as a training run would refuse it.
        var unfit = d
        unfit.recipe.mask = .block(size: 3, ratio: 0.5)
        #expect(unfit.maskProblem == "masking strategy 'block3(0.5)' cannot mask a 4x4 patch grid: 3x3 blocks must tile it (both sides a multiple of 3)")
        #expect(unfit.text.contains("block3(0.5): unusable, masking strategy"), "\(unfit.text)")
        // So is a mask that drops every patch.
        var empty = d
        empty.recipe.mask = .patch(ratio: 1)
        #expect(empty.maskProblem == "masking strategy 'patch(1.0)' cannot mask a 4x4 patch grid: it drops all 16 patches; "
                    + "keep at least one patch visible (a lower ratio)")
    }

    @Test func inlineConfigResolves() throws {
        let ref = try ReferenceConfig(yaml: Self.yaml(top: "clip_grad: null\nwarmup_steps: 5\nobjective: pred_v\nloss_type: l1\nadam_betas: [0.9, 0.95]",
                                                      dataset: "SHORT_SIDE_SIZE: 20\n  hflip_prob: 0.5"))
        #expect(ref.model == MaskedUViTConfig(imageSize: 16, patchSize: 4, embedDim: 32, depth: 5, heads: 4))
        #expect(ref.recipe.mask == .block(size: 2, ratio: 0.5))
        #expect(ref.recipe.schedule == .cosine)
        #expect(ref.recipe.gradientClip == nil)
        #expect(ref.recipe.warmupSteps == 5)
        #expect(ref.recipe.beta1 == 0.9 && ref.recipe.beta2 == 0.95)
        #expect(ref.recipe.objective == .velocity && ref.recipe.loss == .l1)
        #expect(ref.recipe.flipProbability == 0.5)
        #expect(ref.shortSideSize == 20)
    }

    @Test("gradient_accumulate_every: the reference's batch_size is one micro-batch, ours the whole step's; it may change on resume")
    func gradientAccumulation() throws {
        let ref = try ReferenceConfig(yaml: Self.yaml(top: "gradient_accumulate_every: 3"))
        let plain = try ReferenceConfig(yaml: Self.yaml())
        #expect(plain.recipe.accumulationSteps == 1)
        #expect(ref.recipe.accumulationSteps == 3 && ref.recipe.batchSize == 3 * plain.recipe.batchSize)
        #expect { try ReferenceConfig(yaml: Self.yaml(top: "gradient_accumulate_every: 0"), path: "acc.yml") } throws: {
            "\($0)".contains("acc.yml") && "\($0)".contains("gradient_accumulate_every")
        }
        let run = RunConfig(stage: .pretrain, model: plain.model, recipe: plain.recipe, data: "emoji")
        var other = run
        other.recipe.accumulationSteps = 4
        #expect(run.conflict(with: other) == nil)
        other.recipe.batchSize += 1
        // The field that differs, with both values (not the two whole recipes).
        let conflict = run.conflict(with: other)
        #expect(conflict?.key == "recipe.batchSize" && conflict?.existing == "\(plain.recipe.batchSize)"
                && conflict?.requested == "\(plain.recipe.batchSize + 1)", "\(String(describing: conflict))")
    }

    @Test(arguments: [
        ("top", "FOO: 1", "FOO"),
        ("dataset", "FOO: 1", "dataset.FOO"),
        ("network", "FOO: 1", "network.FOO"),
        ("network", "decoder_depth: 2", "network.decoder_depth"),
        ("network", "use_final_conv: True", "network.use_final_conv"),
        ("network", "mlp_time_embed: True", "network.mlp_time_embed"),
        ("network", "num_classes: 10", "network.num_classes"),
        ("network", "qkv_bias: maybe", "network.qkv_bias"),
        ("network", "encoder_depth2: 3", "network.encoder_depth2"),
        ("dataset", "TASK: cond", "dataset.TASK"),
        ("dataset", "MASK_CROP_SIZE: [2]", "dataset.MASK_CROP_SIZE"),
        ("top", "p2_loss_weight_gamma: 1", "p2_loss_weight_gamma"),
        ("top", "shift: true", "shift"),
        ("top", "adam_betas: [0.9]", "adam_betas"),
        ("top", "loss_type: huber", "loss_type"),
        ("top", "objective: pred_eps", "objective"),
    ])
    func unsupportedKeyOrValueIsNamed(section: String, line: String, key: String) throws {
        let text: String
        switch section {
        case "dataset": text = Self.yaml(dataset: line)
        case "network": text = Self.yaml(network: line)
        default: text = Self.yaml(top: line)
        }
        #expect(Self.badKey(text) == key, "\(line)")
    }

    /// Problems of the file as a whole name no key: not YAML, a duplicate key, not a mapping.
    @Test func wholeFileProblemsNameNoKey() throws {
        for (text, problem) in [("a: [1, 2", "not valid YAML"), ("a: 1\na: 2", "not valid YAML"), ("- 1\n- 2", "the top level is not a mapping")] {
            #expect(Self.badKey(text) == "", "\(text)")
            #expect { _ = try ReferenceConfig(yaml: text, path: "t.yml") } throws: { error in
                let message = "\(error)"
                return message.hasPrefix("config 't.yml': \(problem)") && !message.contains("key ''")
            }
        }
    }

    @Test func supportedValuesOfRefusedKeysAreAccepted() throws {
        let ref = try ReferenceConfig(yaml: Self.yaml(network: "decoder_depth: 0\n  use_final_conv: False\n  mlp_time_embed: False\n  num_classes: -1"))
        #expect(ref.model.depth == 5)
    }

    /// Found by fuzzing (Fuzz/, target yaml): Yams' untyped loader trapped on a mapping key that
    /// is not a scalar. Such keys, alias bombs, deep nesting and huge integers are errors now.
    @Test(arguments: [
        ("? [a]\n: 1\n", "not a plain value"),
        ("{[1, 2]: 3}", "not a plain value"),
        ("a: &x [1]\nb: {*x : 2}\n", "not a plain value"),
        (String(repeating: "[", count: 200) + String(repeating: "]", count: 200), "levels deep"),
        ("a: &a [x, x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
            + "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\nd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
            + "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n", "aliases expanding"),
    ])
    func hostileYAMLIsAnErrorNotACrash(text: String, problem: String) {
        #expect { try ReferenceConfig(yaml: text, path: "evil.yml") } throws: { "\($0)".contains("evil.yml") && "\($0)".contains(problem) }
    }

    /// The input the fuzzer crashed Yams with (Fuzz/Regressions/yaml), verbatim.
    @Test func fuzzerFindingIsAnError() throws {
        let url = try #require(Bundle.module.url(forResource: "fuzz_yaml_crash_1", withExtension: "yml", subdirectory: "Fixtures"))
        #expect(throws: PipelineError.self) { try ReferenceConfig(contentsOf: url) }
    }

    @Test func hugeIntegersAreErrors() {
        let text = Self.yaml(top: "warmup_steps: 1.0e300")
        #expect { try ReferenceConfig(yaml: text, path: "huge.yml") } throws: { "\($0)".contains("warmup_steps") }
    }

    @Test func errorDescriptionNamesFileAndKey() throws {
        try withTemporaryFolder("cfg") { dir in
            let url = dir.appendingPathComponent("bad.yml")
            try Self.yaml(dataset: "FOO: 3").write(to: url, atomically: true, encoding: .utf8)
            #expect {
                try ReferenceConfig(contentsOf: url)
            } throws: { "\($0)".contains(url.path) && "\($0)".contains("'dataset.FOO'") }
            #expect(throws: PipelineError.self) { try ReferenceConfig(contentsOf: dir.appendingPathComponent("missing.yml")) }
        }
    }

    @Test func imageSizeNotDivisibleByPatchIsRefused() throws {
        let key = Self.badKey(Self.yaml(imgSize: 18, patchSize: 4))
        #expect(key == "network")
        #expect {
            try ReferenceConfig(yaml: Self.yaml(imgSize: 18, patchSize: 4))
        } throws: { "\($0)".contains("not divisible") }
        // IMG_SIZE must agree with network.img_size.
        #expect(Self.badKey(Self.yaml().replacingOccurrences(of: "IMG_SIZE: 16", with: "IMG_SIZE: 32")) == "dataset.IMG_SIZE")
    }

    /// A config whose dataset section is exactly `dataset` (and extra top-level lines `top`).
    static func yaml(datasetSection dataset: String, top: String = "") -> String {
        "batch_size: 8\n\(top)\ndataset:\n  IMG_SIZE: 16\n" + dataset.split(separator: "\n").map { "  \($0)\n" }.joined()
            + "network:\n  name: maskdm\n  img_size: 16\n  patch_size: 2\n  encoder_embed_dim: 16\n  encoder_depth: 3\n  encoder_heads: 2\n"
    }

    @Test("Defaults as the reference's main.py: clip_grad 1.0 when absent (null or 0: none), MASK_RATIO 0.9 under a type, a sized crop whatever the ratio")
    func referenceDefaults() throws {
        let plain = try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_TYPE: block\nMASK_RATIO: 0.0"))
        #expect(plain.recipe.gradientClip == 1 && plain.recipe.mask == MaskSpec.none && plain.seed == nil && plain.pretrainedCheckpoint == nil)
        for (line, clip) in [("clip_grad: null", nil), ("clip_grad: 0", nil), ("clip_grad: 0.5", 0.5)] as [(String, Float?)] {
            #expect(try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_RATIO: 0.0", top: line)).recipe.gradientClip == clip, "\(line)")
        }
        #expect(try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_TYPE: block\nMASK_BLOCK_SIZE: 2")).recipe.mask == .block(size: 2, ratio: 0.9))
        #expect(try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_TYPE: crop\nMASK_RATIO: 0.0\nMASK_CROP_SIZE: 3")).recipe.mask == .crop(size: 3))
        #expect(try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_TYPE: crop\nMASK_RATIO: 0.0\nMASK_CROP_SIZE: -1")).recipe.mask == MaskSpec.none)
        #expect(try ReferenceConfig(yaml: Self.yaml(datasetSection: "hflip_prob: 0.0")).recipe.mask == MaskSpec.none)
        #expect(Self.badKey(Self.yaml(datasetSection: "MASK_RATIO: 0.5")) == "dataset.MASK_TYPE")
        // Recorded keys: the seed when given, the pre-trained weights' path.
        let recorded = try ReferenceConfig(yaml: Self.yaml(datasetSection: "MASK_RATIO: 0.0", top: "seed: 1232\npretrained_model_ckpt: /w/model-10.pt"))
        #expect(recorded.seed == 1232 && recorded.recipe.seed == 1232 && recorded.pretrainedCheckpoint == "/w/model-10.pt")
    }

    @Test func yamlAnchorsResolve() throws {
        let text = """
        define: &img_size 64
        define2: &patch 8
        batch_size: 2
        dataset:
          IMG_SIZE: *img_size
          MASK_RATIO: 0.0
        network:
          name: maskdm
          img_size: *img_size
          patch_size: *patch
          encoder_embed_dim: 16
          encoder_depth: 3
          encoder_heads: 2
        """
        // `define2` is not a reference key; with the reference's own `define:` twice (as its
        // transfer configs write it) anchors work as well.
        #expect(Self.badKey(text) == "define2")
        let twice = text.replacingOccurrences(of: "define2: &patch 8", with: "define: &patch 8")
        let ref = try ReferenceConfig(yaml: twice)
        #expect(ref.model.imageHeight == 64 && ref.model.imageWidth == 64 && ref.model.patchSize == 8)
        #expect(ref.recipe.mask == MaskSpec.none)
    }

    /// Opt-in: every `.yml` under `$MASKDM_REFERENCE_CONFIGS` (e.g. the reference's `configs/`,
    /// `git --git-dir <maskdm> archive HEAD configs | tar -x -C /tmp/ref`) loads.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["MASKDM_REFERENCE_CONFIGS"] != nil,
                   "set MASKDM_REFERENCE_CONFIGS to a folder of the reference's configs/*.yml to run this test"))
    func everyReferenceConfigLoads() throws {
        let root = URL(fileURLWithPath: try #require(ProcessInfo.processInfo.environment["MASKDM_REFERENCE_CONFIGS"]))
        let walker = try #require(FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil))
        var files: [URL] = []
        while let url = walker.nextObject() as? URL {
            if ["yml", "yaml"].contains(url.pathExtension) { files.append(url) }
        }
        try #require(!files.isEmpty, "no .yml files under \(root.path)")
        for url in files.sorted(by: { $0.path < $1.path }) {
            do {
                let ref = try ReferenceConfig(contentsOf: url)
                #expect(ref.model.trainableParameterCount > 0)
            } catch {
                Issue.record("\(url.path): \(error)")
            }
        }
    }
}

// maskdm: command-line front end of the MaskDM library (thin: parsing and progress only).
import ArgumentParser

@main
struct MaskDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maskdm",
        abstract: "Masked diffusion models on CPU: masked pre-training, then unmasked fine-tuning.",
        subcommands: [Pretrain.self, Finetune.self, Train.self, Sample.self, Describe.self, Convert.self,
                      PipelineCommand.self, Compare.self, Forward.self, Dataset.self, FID.self, Grid.self])
}

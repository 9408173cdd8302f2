// maskdm: command-line front end of the MaskDM library (thin: parsing and progress only).
import ArgumentParser
import Foundation
import MPI
import Masking
import Pipeline
import Schedules
import Tensor
import ViTDiffusion

@main
struct MaskDM: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "maskdm",
        abstract: "Masked diffusion models on CPU: masked pre-training, then unmasked fine-tuning.",
        discussion: """
            Under mpirun (a build with MPI: make mpi), pretrain, finetune, train, resume, sample and fid split their work over the ranks.

            Exit status: 0 done; 64 a setting the command cannot use (a flag, a config key, a run folder of other settings); \
            1 anything else that failed (a missing or damaged file, unusable data, a non-finite loss); \
            128 + the signal when stopped by one after writing a checkpoint (130 for Ctrl-C); \
            a second signal kills the process at once, by that signal.
            """,
        version: "maskdm \(maskdmVersion)",
        subcommands: [Pretrain.self, Finetune.self, Train.self, Resume.self, Sample.self, Describe.self, Convert.self,
                      PipelineCommand.self, Compare.self, Forward.self, Dataset.self, Check.self, FID.self, Grid.self,
                      PlotLoss.self])

    /// Starts MPI when launched by mpirun, runs the command, and ends the whole job on an error
    /// of any rank (so that no rank waits forever for a dead or failed peer).
    static func main() {
        do { try World.start() } catch {
            writeToStandardError("maskdm: \(error)\n")
            Foundation.exit(1)
        }
        // The parsed subcommand: its usage, not the root's, goes with an error it throws.
        var parsed: any ParsableCommand.Type = MaskDM.self
        do {
            _ = try Gemm.environmentInstructionSet()   // a bad MASKDM_GEMM_ISA: an error, not a crash later
            // An empty argument ('' from an unset shell variable) would name the working folder.
            // (`--title ""` of plot-loss is free text, and may be empty.)
            let arguments = CommandLine.arguments
            for i in arguments.indices.dropFirst() where arguments[i - 1] != "--title" {
                let a = arguments[i]
                if a.isEmpty {
                    throw ValidationError(arguments[i - 1].hasPrefix("-") && i > 1 ? "\(arguments[i - 1]) is given an empty value" : "argument \(i) is empty")
                }
                if a.hasPrefix("--"), a.hasSuffix("="), a != "--title=" { throw ValidationError("\(a.dropLast()) is given an empty value") }
            }
            var command = try parseAsRoot()
            parsed = type(of: command)
            if World.communicator.size > 1, !(command is any DataParallelCommand) {
                throw ValidationError("'\(type(of: command)._commandName)' runs in one process; "
                                      + "under mpirun use pretrain, finetune, train, resume, sample or fid")
            }
            try command.run()
        } catch let stop as ExitCode where stop != .success && stop != .validationFailure && stop != .failure {
            // A requested stop (the checkpoint is written, every rank has passed it): leave MPI
            // in order and exit with the signal's status, not through MPI_Abort.
            MPICommunicator.finish()
            Foundation.exit(stop.rawValue)
        } catch {
            if World.communicator.size > 1 {
                let code = status(for: error)
                if code != .success {
                    let text = fullMessage(for: error)
                    writeToStandardError("maskdm (rank \(World.communicator.rank) of \(World.communicator.size)): \(text)\n")
                    // When every rank stops at a failed step, rank 0 reports (its message names
                    // the failed rank's error) and gives the job's status: the others wait a
                    // moment, as their abort would end rank 0 before it printed.
                    if World.communicator.rank != 0 { usleep(200_000) }
                    MPICommunicator.abort(code: code.rawValue)
                }
            }
            // An error from a subcommand's run: its message, and where that command's help is (a
            // bad MASKDM_GEMM_ISA, found before parsing, gets the same status as under mpirun).
            if parsed != MaskDM.self || error is Gemm.InstructionSetError, exitCode(for: error) != .success {
                let name = parsed._commandName
                let help = status(for: error) == .validationFailure && parsed != MaskDM.self
                    ? "\n  See 'maskdm \(name) --help' for more information." : ""
                let text = message(for: error)                    // empty for a bare exit status (check's)
                if !text.isEmpty { writeToStandardError("Error: \(text)\(help)\n") }
                Foundation.exit(status(for: error).rawValue)
            }
            exit(withError: error)
        }
        MPICommunicator.finish()
    }
}

/// The exit status of an error: 64 (`EX_USAGE`, as ArgumentParser gives its own usage errors) for
/// a setting the command cannot use, whichever layer found it; ArgumentParser's status (1) for
/// everything else: files, data, checkpoints, the run itself.
func status(for error: any Error) -> ExitCode {
    let isSetting: Bool
    switch error {
    case let e as PipelineError:
        switch e {
        case .invalidOption, .runMismatch: isSetting = true
        case .badConfig(_, let key, _): isSetting = !key.isEmpty              // a key's value, not the file as a whole
        default: isSetting = false
        }
    case let e as ViTDiffusionError:
        switch e {
        case .invalidRecipe, .invalidArgument, .invalidConfig: isSetting = true
        default: isSetting = false
        }
    case is MaskingError, is ScheduleError, is Gemm.InstructionSetError: isSetting = true
    default: return MaskDM.exitCode(for: error)
    }
    return isSetting ? .validationFailure : .failure
}

/// A command that splits its work over the ranks of an mpirun job.
protocol DataParallelCommand {}
extension Pretrain: DataParallelCommand {}
extension Finetune: DataParallelCommand {}
extension Train: DataParallelCommand {}
extension Sample: DataParallelCommand {}
extension FID: DataParallelCommand {}

/// The processes of this invocation: MPI's world under mpirun, else this process alone.
enum World {
    nonisolated(unsafe) static var communicator: any Communicator = SingleProcessCommunicator()

    static func start() throws {
        guard let n = MPICommunicator.worldSizeFromEnvironment else { return }
        guard MPICommunicator.isAvailable else {
            if n > 1 {
                throw ValidationError("started by mpirun with \(n) ranks, but this maskdm was built without MPI: "
                                      + "build it with `make mpi` (swift build -c release --traits MPI)")
            }
            return
        }
        let world = try MPICommunicator.start()
        communicator = world
        if world.rank != 0 {                                            // rank 0 alone prints progress
            let null = open("/dev/null", O_WRONLY)
            if null >= 0 { dup2(null, STDOUT_FILENO); close(null) }
        }
    }
}

/// Writes `text` to stderr; a closed or full stderr loses the text rather than stopping the
/// program (Foundation's non-throwing `write` traps on a failed write).
func writeToStandardError(_ text: String) {
    try? FileHandle.standardError.write(contentsOf: Data(text.utf8))
}

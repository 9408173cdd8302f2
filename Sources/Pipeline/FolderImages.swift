import Foundation
import ImageIO
import Tensor
import ViTDiffusion

/// A folder of images decoded per batch instead of held in memory (for folders too large to
/// decode up front). Opening it decodes every file once to find the readable ones; batches then
/// decode their images again (in parallel) at `size` px.
public struct FolderImages: TrainingImages {
    /// The folder.
    public let folder: ImageFolder
    /// Indices (into `folder`) of the decodable images.
    public let readable: [Int]
    /// Side of the square training images.
    public let size: Int

    /// Scans `url`; throws when it has no decodable image. `skipped` counts undecodable files.
    public init(_ url: URL, size: Int) throws {
        try self.init(try ImageFolder(url), size: size)
    }

    /// Scans the files of an already listed `folder`.
    public init(_ folder: ImageFolder, size: Int) throws {
        self.folder = folder
        let url = folder.root
        guard folder.count > 0 else { throw PipelineError.badData(path: url.path, problem: "no .png/.jpg/.jpeg files found (recursively)") }
        self.size = size
        var good: [Int] = [], bad: [String] = []
        let chunk = 512
        for start in stride(from: 0, to: folder.count, by: chunk) {
            let ids = Array(start..<min(start + chunk, folder.count))
            for (i, result) in zip(ids, folder.loadReporting(ids, size: 8)) {
                switch result {
                case .success: good.append(i)
                case .failure(let error): if bad.count < 5 { bad.append(error.description) }
                }
            }
        }
        guard !good.isEmpty else { throw PipelineError.badData(path: url.path, problem: ImageFolder.noneDecoded(count: folder.count, failures: bad)) }
        readable = good
        firstFailures = bad
    }

    /// The first (up to 5) undecodable files, each with its problem.
    public let firstFailures: [String]

    /// Undecodable files.
    public var skipped: Int { folder.count - readable.count }
    /// Readable images.
    public var count: Int { readable.count }

    /// Decodes the picked files (in parallel) at ``size`` px, flipping where the picks say.
    public func batch(_ picks: [ImagePick]) throws -> Tensor {
        let images = folder.load(picks.map { readable[$0.index] }, size: size)
        var out: [Image] = []
        for (img, pick) in zip(images, picks) {
            guard let img else { throw PipelineError.badData(path: folder.url(readable[pick.index]).path, problem: "became unreadable during training") }
            out.append(pick.flipped ? img.flippedHorizontally() : img)
        }
        return Image.batch(out)
    }
}

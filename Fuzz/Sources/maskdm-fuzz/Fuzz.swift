// One libFuzzer harness for every parser; FUZZ_TARGET picks which one runs:
//   safetensors  SafetensorsFile(bytes:) and every tensor in it
//   torch        TorchCheckpoint(bytes:) (zip + pickle), every tensor, number and description
//   image        Image.decode (PNG and JPEG, detected from the bytes), with a 4-Mpx limit
//   font         EmojiFont(bytes:) (the sfnt tables: cmap, CBLC/CBDT, GSUB ligatures) and every bitmap
//   yaml         ReferenceConfig(yaml:) (the reference's config files)
//   idx, npy, csv  GreyDatasets' readers (IDX images and labels, .npy, the MNIST-5k CSV)
//   gzip         Gzip.decompress with a 16 MB bound
// Every input must either parse or throw the parser's error: a crash, a trap (overflow, index out
// of range), a leak, a timeout or an out-of-memory is a finding.
import Foundation
import ImageIO
import Pipeline
import Tensor
import TorchCheckpoint

private let target = ProcessInfo.processInfo.environment["FUZZ_TARGET"] ?? ""

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    switch target {
    case "safetensors":
        if let file = try? SafetensorsFile(bytes: bytes, name: "fuzz.safetensors") {
            for key in file.keys { _ = try? file.tensor(key) }
            _ = file.metadata
        }
    case "torch":
        // Half the inputs without the CRC check, so mutated bytes reach the parsers behind it.
        if let ckpt = try? TorchCheckpoint(bytes: bytes, name: "fuzz.pt", verifyingChecksums: size % 2 == 0) {
            for key in ckpt.keys {
                _ = try? ckpt.tensor(key)
                _ = ckpt.describe(key)
            }
            _ = try? ckpt.stateDict()
        }
    case "image":
        _ = try? Image.decode(data: Data(bytes), name: "fuzz", maximumPixels: 1 << 22)
    case "font":
        if let font = try? EmojiFont(bytes: bytes, path: "fuzz.ttf") {
            for glyph in font.glyphsByScalar.values.prefix(64) { _ = font.bitmap(forGlyph: glyph) }
            for sequence in font.ligatures.keys.prefix(16) { _ = font.glyphID(forSequence: sequence.map(UInt32.init)) }
        }
    case "yaml":
        _ = try? ReferenceConfig(yaml: String(decoding: bytes, as: UTF8.self), path: "fuzz.yml")
    case "idx":
        _ = try? GreyDatasets.idxImages(bytes: bytes, name: "fuzz-idx3-ubyte")
        _ = try? GreyDatasets.idxLabels(bytes: bytes, name: "fuzz-idx1-ubyte")
    case "npy":
        _ = try? GreyDatasets.npyImages(bytes: bytes, name: "fuzz.npy")
    case "csv":
        _ = try? GreyDatasets.mnist5k(bytes: bytes, name: "fuzz.csv")
    case "gzip":
        _ = try? Gzip.decompress(Data(bytes), path: "fuzz.gz", maximumBytes: 16 << 20)
    default:
        FileHandle.standardError.write(Data("set FUZZ_TARGET to one of: safetensors torch image font yaml idx npy csv gzip\n".utf8))
        exit(2)
    }
    return 0
}

// SwiftPM links an executable with `main` defined as `<product>_main`; with -parse-as-library
// there is none, so this is it: hand over to libFuzzer's driver (the archive's own `main` is then
// never pulled in).
@_silgen_name("LLVMFuzzerRunDriver")
private func runDriver(_ argc: UnsafeMutablePointer<CInt>,
                       _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
                       _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt) -> CInt

@_cdecl("maskdm_fuzz_main")
public func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments, fuzzOneInput)
}

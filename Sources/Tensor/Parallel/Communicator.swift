/// The processes of a data-parallel job and the collective operations that training, sampling
/// and evaluation need from them.
///
/// The library never starts processes itself: a launcher (`mpirun`) does, and the `MPI` module's
/// `MPICommunicator` conforms to this protocol over Open MPI. Everything that trains or samples
/// takes a communicator and defaults to ``SingleProcessCommunicator``, where every collective is
/// the identity, so one process needs no MPI at all.
///
/// Contract: every rank calls the same collectives in the same order with the same counts; a
/// collective returns only when every rank has entered it (or throws when the job broke).
///
/// ```swift
/// let world: any Communicator = SingleProcessCommunicator()
/// var partial = [Double(world.rank), 1]
/// try world.allReduceSum(&partial)          // [sum of ranks, number of ranks]
/// ```
public protocol Communicator: AnyObject, Sendable {
    /// This process's index, `0..<size`. Rank 0 writes files and logs.
    var rank: Int { get }
    /// Number of processes in the job.
    var size: Int { get }
    /// Sums `buffer` element-wise over all ranks, in place (every rank gets the sum).
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Sums `values` element-wise over all ranks, in place.
    func allReduceSum(_ values: inout [Double]) throws
    /// Copies rank `root`'s `buffer` to every rank.
    func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws
    /// Every rank's `values` (each rank passes the same count), in rank order.
    func allGather(_ values: [Int64]) throws -> [[Int64]]
    /// On `root`, every rank's `values` in rank order (counts may differ); elsewhere `[]`.
    func gather(_ values: [Float], root: Int) throws -> [[Float]]
    /// Returns when every rank has called it.
    func barrier() throws
}

extension Communicator {
    /// Whether this process writes the job's files (rank 0).
    public var isWriter: Bool { rank == 0 }

    /// The items `0..<count` this rank handles when they are dealt out in contiguous blocks: the
    /// first `count % size` ranks take one more.
    public func share(of count: Int) -> Range<Int> {
        let base = count / size, extra = count % size
        let start = rank * base + min(rank, extra)
        return start..<(start + base + (rank < extra ? 1 : 0))
    }

    /// Sums the first `count` values of `storage` over all ranks, in place, `bucket` values per
    /// collective call (so a fast network can start on one bucket while the next is read).
    public func allReduceSum(_ storage: TensorStorage, count: Int, bucket: Int = 1 << 22) throws {
        precondition(count >= 0 && count <= storage.count, "allReduceSum: \(count) values of a \(storage.count)-value storage")
        let base = storage.mutableBase
        var done = 0
        while done < count {
            let n = min(bucket, count - done)
            try allReduceSum(UnsafeMutableBufferPointer(start: base + done, count: n))
            done += n
        }
    }

    /// Every rank's `text`, in rank order (its UTF-8 bytes through ``allGather(_:)``; the texts'
    /// lengths may differ).
    public func allGather(text: String) throws -> [String] {
        let bytes = Array(text.utf8)
        let lengths = try allGather([Int64(bytes.count)]).map { Int($0.first ?? 0) }
        let padded = bytes.map(Int64.init) + Array(repeating: 0, count: (lengths.max() ?? 0) - bytes.count)
        return try zip(allGather(padded), lengths).map { values, length in
            String(decoding: values.prefix(length).map { UInt8(truncatingIfNeeded: $0) }, as: UTF8.self)
        }
    }

    /// Copies rank `root`'s first `count` values of `storage` to every rank.
    public func broadcast(_ storage: TensorStorage, count: Int, root: Int = 0) throws {
        precondition(count >= 0 && count <= storage.count, "broadcast: \(count) values of a \(storage.count)-value storage")
        try broadcast(UnsafeMutableBufferPointer(start: storage.mutableBase, count: count), root: root)
    }
}

/// The communicator of a job of one process: rank 0 of 1, every collective the identity.
public final class SingleProcessCommunicator: Communicator {
    /// A communicator for this process alone.
    public init() {}
    /// Always 0.
    public var rank: Int { 0 }
    /// Always 1.
    public var size: Int { 1 }
    /// Leaves `buffer` as it is (the sum over one rank).
    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {}
    /// Leaves `values` as they are.
    public func allReduceSum(_ values: inout [Double]) throws {}
    /// Leaves `buffer` as it is.
    public func broadcast(_ buffer: UnsafeMutableBufferPointer<Float>, root: Int) throws {
        precondition(root == 0, "broadcast: root \(root) in a job of one process")
    }
    /// `[values]`.
    public func allGather(_ values: [Int64]) throws -> [[Int64]] { [values] }
    /// `[values]`.
    public func gather(_ values: [Float], root: Int) throws -> [[Float]] {
        precondition(root == 0, "gather: root \(root) in a job of one process")
        return [values]
    }
    /// Returns at once.
    public func barrier() throws {}
}

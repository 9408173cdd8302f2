import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a run folder (`flock` on `RUN/.lock`) held while a ``TrainingRun`` is
/// open, so a second process training into the same folder stops at once instead of overwriting
/// the first one's checkpoints and log. Runs opened again within one process (a resumed stage,
/// tests) share the process's lock. The kernel drops the lock when the process ends, however it
/// ends, so a killed run never leaves its folder locked.
final class RunFolderLock: @unchecked Sendable {
    // @unchecked Sendable: the descriptor is only read, and the registry is behind its lock.
    private let path: String
    private let descriptor: Int32

    /// The process's held locks, by lock-file path: descriptor and number of open runs.
    private static let held = PthreadLock<[String: (descriptor: Int32, users: Int)]>([:])

    /// Takes the lock of `folder` (which must exist), or throws
    /// ``PipelineError/invalidOption(name:problem:)`` naming the folder when another process
    /// holds it.
    init(folder: URL) throws {
        // One key per folder however it is spelled (a trailing slash, `..`, a symlink).
        path = folder.standardizedFileURL.resolvingSymlinksInPath().appendingPathComponent(".lock").path
        let lockPath = path
        descriptor = try Self.held.withLock { held -> Int32 in
            if let mine = held[lockPath] {
                held[lockPath] = (mine.descriptor, mine.users + 1)
                return mine.descriptor
            }
            let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
            guard fd >= 0 else {
                throw PipelineError.invalidOption(name: "folder (--out)", problem: "cannot open '\(lockPath)': \(String(cString: strerror(errno)))")
            }
            guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
                close(fd)
                throw PipelineError.invalidOption(
                    name: "folder (--out)", problem: "run folder '\(folder.path)' is in use by another process (another training run into it "
                        + "is still going); wait for it to finish or stop it, or choose another folder (--out)")
            }
            held[lockPath] = (fd, 1)
            return fd
        }
    }

    deinit {
        let lockPath = path
        Self.held.withLock { held in
            guard let mine = held[lockPath] else { return }
            if mine.users > 1 {
                held[lockPath] = (mine.descriptor, mine.users - 1)
            } else {
                held[lockPath] = nil
                close(mine.descriptor)              // releases the flock
            }
        }
    }
}

import Foundation
import Tensor
#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a run folder (`flock` on `RUN/.lock`) held while a ``TrainingRun`` is
/// open, so a second process training into the same folder stops at once instead of overwriting
/// the first one's checkpoints and log. Runs opened again within one process (a resumed stage,
/// tests) share the process's lock. The kernel drops the lock when the process ends, however it
/// ends, so a killed run never leaves its folder locked. A lock file deleted while the run goes on
/// is noticed by ``confirm()``: made again if no other process has, else the run stops.
final class RunFolderLock: @unchecked Sendable {
    // @unchecked Sendable: the descriptor is only read, and the registry is behind its lock.
    private let path: String
    private let folder: String

    /// The process's held locks, by lock-file path: descriptor and number of open runs.
    private static let held = PthreadLock<[String: (descriptor: Int32, users: Int)]>([:])

    /// Takes the lock of `folder` (which must exist), or throws
    /// ``PipelineError/folderInUse(folder:problem:)`` naming the folder when another process
    /// holds it.
    init(folder: URL) throws {
        path = Self.lockPath(of: folder)
        self.folder = folder.path
        let lockPath = path, folderPath = self.folder
        try Self.held.withLock { held in
            if let mine = held[lockPath] {
                held[lockPath] = (mine.descriptor, mine.users + 1)
                return
            }
            // The file can be deleted (by a hand or another run's clean-up) between our open and
            // our flock: a lock on a deleted file guards nothing, so take the one at the path.
            for _ in 0..<100 {
                switch Self.lock(lockPath, exclusively: false) {
                case .locked(let fd):
                    held[lockPath] = (fd, 1)
                    return
                case .heldElsewhere: throw Self.inUse(folderPath)
                case .cannotOpen(let error):
                    throw PipelineError.folderInUse(folder: folderPath, problem: "cannot open its lock file '\(lockPath)': \(String(cString: strerror(error)))")
                case .replaced: continue
                }
            }
            throw PipelineError.folderInUse(folder: folderPath, problem: "cannot hold '\(lockPath)': it is replaced as soon as it is opened")
        }
    }

    /// Checks that the lock file at the path is still the one this process holds; call it before
    /// each write into the folder. A lock file that was deleted is made and locked again (the
    /// folder is still this run's). One that another process has made in the meantime throws
    /// ``PipelineError/folderInUse(folder:problem:)``: another run has been in the folder, so this
    /// one stops before it writes anything more over that run's files.
    func confirm() throws {
        let lockPath = path, folderPath = folder
        try Self.held.withLock { held in
            guard let mine = held[lockPath], !Self.isFile(at: lockPath, openAs: mine.descriptor) else { return }
            var found = stat()
            let missing = stat(lockPath, &found) != 0
            if missing, errno != ENOENT {
                throw PipelineError.folderInUse(folder: folderPath, problem: "its lock file '\(lockPath)' cannot be checked "
                                                + "(\(String(cString: strerror(errno)))); this run stops without writing more")
            }
            if missing {                                                   // deleted: made and locked again
                switch Self.lock(lockPath, exclusively: true) {
                case .locked(let fd):
                    close(mine.descriptor)
                    held[lockPath] = (fd, mine.users)
                    return
                case .cannotOpen(let error) where error != EEXIST:                // the folder itself is gone, or read-only now
                    throw PipelineError.folderInUse(folder: folderPath, problem: "its lock file '\(lockPath)' was deleted and cannot be "
                                                    + "made again (\(String(cString: strerror(error)))); this run stops without writing more")
                default: break                                                   // another process made it first
                }
            }
            throw PipelineError.folderInUse(
                folder: folderPath, problem: "its lock file '\(lockPath)' was deleted while this run trained, and another process "
                    + "has since made a new one (another run is in the folder); this run stops without writing more, so that run's files "
                    + "stay whole (this run's steps since its last checkpoint are lost; never delete .lock while a run is going)")
        }
    }

    /// Throws ``PipelineError/folderInUse(folder:problem:)`` when another process holds the lock
    /// of `folder` now (a probe: nothing is kept), so a front end can say so before it loads
    /// data; the lock taken when the run opens is what keeps a second run out.
    static func checkNotHeldElsewhere(folder: URL) throws {
        let lockPath = lockPath(of: folder)
        if held.withLock({ $0[lockPath] != nil }) { return }                  // this process's own run
        let fd = open(lockPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return }                                        // no lock file: nobody holds it
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) != 0, errno == EWOULDBLOCK { throw inUse(folder.path) }
        _ = flock(fd, LOCK_UN)
    }

    /// `folder/.lock`, one key per folder however it is spelled (a trailing slash, `..`, a symlink).
    private static func lockPath(of folder: URL) -> String {
        folder.standardizedFileURL.resolvingSymlinksInPath().appendingPathComponent(".lock").path
    }

    /// What one attempt to lock the file at a path found.
    private enum Attempt {
        /// Locked, and the open file is the one at the path: its descriptor.
        case locked(Int32)
        /// Another process holds the lock.
        case heldElsewhere
        /// The file at the path was replaced between the open and the lock.
        case replaced
        /// The open failed with this `errno` (`EEXIST` when `exclusively` and the file exists).
        case cannotOpen(Int32)
    }

    /// Opens (creating it if need be; when `exclusively`, only a file this call creates) and locks the file at
    /// `path` without waiting, and checks that the locked file is still the one at the path.
    private static func lock(_ path: String, exclusively: Bool) -> Attempt {
        let fd = open(path, O_RDWR | O_CREAT | (exclusively ? O_EXCL : 0) | O_CLOEXEC, 0o644)
        guard fd >= 0 else { return .cannotOpen(errno) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else { close(fd); return .heldElsewhere }
        guard isFile(at: path, openAs: fd) else { close(fd); return .replaced }
        return .locked(fd)
    }

    /// Whether `path` names the file open as `descriptor` (same device and inode).
    private static func isFile(at path: String, openAs descriptor: Int32) -> Bool {
        var atPath = stat(), open = stat()
        guard stat(path, &atPath) == 0, fstat(descriptor, &open) == 0 else { return false }
        return atPath.st_dev == open.st_dev && atPath.st_ino == open.st_ino
    }

    private static func inUse(_ folder: String) -> PipelineError {
        .folderInUse(folder: folder, problem: "it is in use by another process (another training run into it is still going); "
                         + "wait for it to finish or stop it, or train into another folder")
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

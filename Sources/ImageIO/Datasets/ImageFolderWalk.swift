import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The directory walk behind ``ImageFolder/init(_:)``, on the POSIX calls so that nothing is
/// dropped unseen: a name that is not UTF-8 (which Foundation's walk leaves out) and a folder that
/// cannot be opened are listed with their problem, links to folders are walked unless they lead
/// back to a folder above them (one the walk is in, the root, or a folder above the root, such as
/// `..` or `/`), and a link whose target is missing is listed so that reading it names the problem.
struct ImageFolderWalk {
    private var entries: [ImageFolder.Entry] = []
    /// (device, inode) of the folders from the root down to the one being walked.
    private var ancestors: Set<FolderID> = []
    /// (device, inode) of the folders above the root, up to `/`: a link to one of them would walk
    /// the root again, or files outside it.
    private var aboveRoot: Set<FolderID> = []
    /// `errno` of the root's failed open, if it failed.
    private var rootError: Int32? = nil

    private struct FolderID: Hashable {
        let device: UInt64
        let inode: UInt64

        init(_ info: stat) { device = UInt64(info.st_dev); inode = UInt64(info.st_ino) }
    }

    /// The listed files under the folder at `path`, unsorted; nil when it cannot be opened.
    /// (`errno` is left as the failed open set it.)
    static func entries(under path: String) -> [ImageFolder.Entry]? {
        var walk = ImageFolderWalk()
        walk.aboveRoot = folders(above: Array(path.utf8))
        walk.visit(Array(path.utf8), relative: "", nameIsExact: true)
        if let error = walk.rootError {
            errno = error
            return nil
        }
        return walk.entries
    }

    /// The folders above `folder` (`folder/..`, `folder/../..`, ... up to `/`, as the kernel
    /// resolves them, links included).
    private static func folders(above folder: [UInt8]) -> Set<FolderID> {
        var found: Set<FolderID> = []
        var path = folder, info = stat()
        guard status(path, &info, follow: true) != nil else { return found }
        var current = FolderID(info)
        for _ in 0..<4096 {                                           // a path's depth is far less
            path += Array("/..".utf8)
            guard status(path, &info, follow: true) != nil else { break }
            let parent = FolderID(info)
            if parent == current { break }                          // `/..` is `/`
            found.insert(parent)
            current = parent
        }
        return found
    }

    /// Lists the folder at `folder` (bytes of its path), whose path relative to the root is
    /// `relative` (empty, or ending in "/"); `nameIsExact` is false below a folder whose name had
    /// to be escaped, so that the files there are listed with that problem.
    private mutating func visit(_ folder: [UInt8], relative: String, nameIsExact: Bool) {
        var info = stat()
        guard Self.status(folder, &info, follow: true) != nil else {
            if relative.isEmpty { rootError = errno }
            return                                                    // gone meanwhile
        }
        let id = FolderID(info)
        guard !ancestors.contains(id), !aboveRoot.contains(id) else { return }   // a loop of links, or out of the root
        guard let dir = Self.withCString(folder, { opendir($0) }) else {
            if relative.isEmpty {
                rootError = errno
            } else {
                let reason = String(cString: strerror(errno))
                entries.append(.init(path: relative, size: 0, modified: 0, problem: "cannot open this folder: \(reason)"))
            }
            return
        }
        defer { closedir(dir) }
        ancestors.insert(id)
        defer { ancestors.remove(id) }

        var names: [[UInt8]] = []
        while let item = readdir(dir) {
            let name = withUnsafeBytes(of: item.pointee.d_name) { raw in
                Array(raw.prefix(while: { $0 != 0 }))
            }
            if name.first == UInt8(ascii: ".") { continue }          // ".", "..", hidden files and folders
            names.append(name)
        }
        for name in names {
            let path = folder + [UInt8(ascii: "/")] + name
            let decoded = String(validating: name, as: UTF8.self)
            let shown = relative + (decoded ?? Self.escaped(name))
            let exact = nameIsExact && decoded != nil
            var own = stat()
            guard Self.status(path, &own, follow: false) != nil else { continue }   // removed meanwhile
            var target = own
            // Why a link leads nowhere (its target is missing, or links loop), nil when it leads somewhere.
            var dangling: String? = nil
            if Self.isKind(own, S_IFLNK), let error = Self.failure(path, &target, follow: true) {
                dangling = error == ELOOP ? "a loop of symbolic links (it leads back to itself)"
                    : error == ENOENT ? "a symbolic link to a file that does not exist"
                    : "a symbolic link that cannot be followed: \(String(cString: strerror(error)))"
            }
            if dangling == nil && Self.isKind(target, S_IFDIR) {
                visit(path, relative: shown + "/", nameIsExact: exact)
                continue
            }
            guard ImageFolder.extensions.contains(Self.pathExtension(name)) else { continue }
            // Named, never opened: a named pipe would block the read until a writer comes.
            let kind = dangling ?? Self.notAFile(target)
            let modified = kind != nil ? 0 : Self.modificationTime(target)
            let problem = kind ?? (exact ? nil
                : "the file name, or a folder name above it, is not valid UTF-8 (shown with \\x escapes); rename it to read it")
            entries.append(.init(path: shown, size: kind != nil ? 0 : Int(target.st_size), modified: modified, problem: problem))
        }
    }

    /// `errno` of a failed `stat` (following links) or `lstat` of `path`, taken at once; nil
    /// when it succeeds.
    private static func failure(_ path: [UInt8], _ info: inout stat, follow: Bool) -> Int32? {
        let result = withCString(path) { follow ? stat($0, &info) : lstat($0, &info) }
        return result == 0 ? nil : errno
    }

    /// `stat` (following links) or `lstat` of `path`; nil when it fails.
    private static func status(_ path: [UInt8], _ info: inout stat, follow: Bool) -> Int32? {
        failure(path, &info, follow: follow) == nil ? 0 : nil
    }

    /// Seconds since 1970.
    private static func modificationTime(_ info: stat) -> Double {
        #if canImport(Darwin)
        Double(info.st_mtimespec.tv_sec) + Double(info.st_mtimespec.tv_nsec) / 1e9
        #else
        Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        #endif
    }

    private static func isKind(_ info: stat, _ kind: mode_t) -> Bool { info.st_mode & S_IFMT == kind }

    /// Why `info` is not a file that can be read as an image (a named pipe, a socket, a
    /// device), or nil for a regular file.
    private static func notAFile(_ info: stat) -> String? {
        if isKind(info, S_IFREG) { return nil }
        let kind = isKind(info, S_IFIFO) ? "a named pipe" : isKind(info, S_IFSOCK) ? "a socket"
            : isKind(info, S_IFCHR) || isKind(info, S_IFBLK) ? "a device" : "not a regular file"
        return "not an image file but \(kind)"
    }

    private static func withCString<R>(_ bytes: [UInt8], _ body: (UnsafePointer<CChar>) -> R) -> R {
        (bytes + [0]).withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { body($0.baseAddress!) }
        }
    }

    /// The lower-cased extension of a file name (the bytes after its last dot), or "".
    static func pathExtension(_ name: [UInt8]) -> String {
        guard let dot = name.lastIndex(of: UInt8(ascii: ".")), dot > 0 else { return "" }
        return String(decoding: name[(dot + 1)...], as: UTF8.self).lowercased()
    }

    /// `name` with each byte that is not part of valid UTF-8 written as `\xHH`.
    static func escaped(_ name: [UInt8]) -> String {
        var out = ""
        var i = 0
        while i < name.count {
            // The longest valid UTF-8 sequence starting here (1 to 4 bytes), else one escaped byte.
            var taken = 0
            for length in 1...4 where i + length <= name.count {
                if let s = String(validating: name[i..<(i + length)], as: UTF8.self), s.unicodeScalars.count == 1 {
                    out += s
                    taken = length
                    break
                }
            }
            if taken == 0 {
                out += "\\x" + String(format: "%02X", name[i])
                taken = 1
            }
            i += taken
        }
        return out
    }
}

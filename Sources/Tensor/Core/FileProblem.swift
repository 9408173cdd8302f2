import Foundation

/// A short, readable reason for a failed file operation on `path`, for error messages: "it is a
/// folder", "the folder '...' does not exist", or the system's reason ("Permission denied", "No
/// space left on device"), instead of Foundation's "The operation could not be completed.
/// (NSCocoaErrorDomain error 512.)".
public func fileProblem(_ error: any Error, at path: String) -> String {
    let fm = FileManager.default
    var isFolder: ObjCBool = false
    if fm.fileExists(atPath: path, isDirectory: &isFolder), isFolder.boolValue { return "it is a folder" }
    let parent = (path as NSString).deletingLastPathComponent
    if !parent.isEmpty {
        if !fm.fileExists(atPath: parent, isDirectory: &isFolder) { return "the folder '\(parent)' does not exist" }
        if !isFolder.boolValue { return "'\(parent)' is a file, not a folder" }
    }
    let ns = error as NSError
    if ns.domain == NSPOSIXErrorDomain { return String(cString: strerror(Int32(ns.code))) }
    if let underlying = ns.userInfo[NSUnderlyingErrorKey] as? NSError, underlying.domain == NSPOSIXErrorDomain {
        return String(cString: strerror(Int32(underlying.code)))
    }
    return ns.localizedDescription
}

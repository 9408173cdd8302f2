// Preconditions that print their message in every build.
//
// Swift's own `precondition` and `preconditionFailure` drop the message in optimized (`-O`)
// builds: a release build (which training needs) then stops with "precondition failure" and no
// word of what was wrong. These two shadow them in every module that imports Tensor (a declaration
// of an imported module shadows the standard library's), so the library's checks say what failed,
// e.g. `Tensor/Tensor.swift:171: Fatal error: reshaped: cannot reshape [2, 3] to [4]`.

/// Stops the program with `message` (and the file and line) when `condition` is false, in every
/// build configuration, unlike the standard library's, which prints nothing in `-O` builds.
@inlinable @inline(__always)
public func precondition(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String = String(),
                         file: StaticString = #fileID, line: UInt = #line) {
    if _slowPath(!condition()) { stopWithMessage(message(), file: file, line: line) }
}

/// Stops the program with `message` (and the file and line), in every build configuration.
@inlinable @inline(__always)
public func preconditionFailure(_ message: @autoclosure () -> String = String(),
                                file: StaticString = #fileID, line: UInt = #line) -> Never {
    stopWithMessage(message(), file: file, line: line)
}

/// The cold path of ``precondition(_:_:file:line:)``: kept out of line so the checks stay small.
@usableFromInline @inline(never)
func stopWithMessage(_ message: String, file: StaticString, line: UInt) -> Never {
    fatalError(message, file: file, line: line)
}

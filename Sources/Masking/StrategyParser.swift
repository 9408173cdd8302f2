/// The masking strategy a config or command line names, at mask ratio `ratio`.
///
/// Names (case-insensitive): `none`; `patch` (alias `random`); `block<b>` such as `block4`;
/// `crop<c>` such as `crop8` (a fixed `c x c` kept square, `ratio` ignored); `crop` (square side
/// from `ratio`, see ``CropMasking``). A ratio of 0 with `patch`/`block<b>` drops nothing.
///
/// ```swift
/// let s = try maskingStrategy(named: "block4", ratio: 0.9)   // BlockMasking(blockSize: 4, ratio: 0.9)
/// ```
/// - Throws: ``MaskingError/unknownStrategy(_:)`` for an unknown name or a bad size,
///   ``MaskingError/invalidRatio(strategy:ratio:)`` for a ratio outside `[0, 1]`.
public func maskingStrategy(named name: String, ratio: Double) throws -> any MaskingStrategy {
    let key = name.lowercased()
    func checkedRatio(upTo high: Double = 1, open: Bool = false) throws -> Double {
        guard ratio.isFinite, ratio >= 0, open ? ratio < high : ratio <= high else {
            throw MaskingError.invalidRatio(strategy: name, ratio: ratio)
        }
        return ratio
    }
    func size(after prefix: String) throws -> Int {
        guard let n = Int(key.dropFirst(prefix.count)) else { throw MaskingError.unknownStrategy(name) }
        guard n >= 1 else { throw MaskingError.unknownStrategy("\(name) (the \(prefix) size must be at least 1)") }
        return n
    }
    switch key {
    case "none": return NoMasking()
    case "patch", "random": return PatchMasking(ratio: try checkedRatio())
    case "crop": return CropMasking(ratio: try checkedRatio(open: true))
    default:
        if key.hasPrefix("block") {
            return BlockMasking(blockSize: try size(after: "block"), ratio: try checkedRatio())
        }
        if key.hasPrefix("crop") { return CropMasking(cropSize: try size(after: "crop")) }
        throw MaskingError.unknownStrategy(name)
    }
}

/// Errors for masks and strategies read from outside the program (configs, files, other
/// frameworks) or made by a strategy's own code.
public enum MaskingError: Error, Equatable, CustomStringConvertible {
    /// A strategy name that `maskingStrategy(named:ratio:)` does not know.
    case unknownStrategy(String)
    /// A mask ratio outside `[0, 1]` (or not finite) given for the named strategy.
    case invalidRatio(strategy: String, ratio: Double)
    /// A `(B, 1+N)` token mask that cannot be a MaskDM mask; the reason says why.
    case invalidTokenMask(String)
    /// A strategy that cannot mask a `gridHeight x gridWidth` patch grid; `problem` says why
    /// (see ``MaskingStrategy/validate(gridHeight:gridWidth:)``).
    case unfitGrid(strategy: String, gridHeight: Int, gridWidth: Int, problem: String)
    /// A ``MaskSpec/custom(name:)`` (a strategy of its own code, recorded by name) asked to make
    /// its strategy: only the code can; pass the strategy itself to the trainer or run.
    case customStrategy(String)
    /// Patch indices that do not form a mask (out of the grid, repeated, or a different count
    /// per item); the text names the item and the patch.
    case invalidMask(String)

    /// The message, naming the offending name, ratio or row.
    public var description: String {
        switch self {
        case .unknownStrategy(let name):
            return "unknown masking strategy '\(name)' (expected none, patch, block<b>, crop or crop<c>)"
        case .invalidRatio(let strategy, let ratio):
            return "masking strategy '\(strategy)': ratio \(ratio) is not in [0, 1]"
        case .invalidTokenMask(let reason):
            return "invalid token mask: \(reason)"
        case .unfitGrid(let strategy, let gridHeight, let gridWidth, let problem):
            return "masking strategy '\(strategy)' cannot mask a \(gridHeight)x\(gridWidth) patch grid: \(problem)"
        case .customStrategy(let name):
            return "'\(name)' is a custom masking strategy, recorded by name: a name cannot make it; pass the strategy itself "
                + "(DiffusionTrainer(..., masking:), TrainingRun(..., masking:))"
        case .invalidMask(let reason):
            return "invalid mask: \(reason)"
        }
    }
}

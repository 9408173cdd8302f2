/// The per-element regression loss of a diffusion objective (the reference wrapper's `loss_type`).
public enum RegressionLoss: String, Codable, Sendable, CaseIterable, CustomStringConvertible {
    /// Mean squared error (MaskDM's runs).
    case l2
    /// Mean absolute error.
    case l1

    public var description: String { rawValue }
}

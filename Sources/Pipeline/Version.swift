/// The version of the MaskDM library and of its `maskdm` tool, as `maskdm --version` prints it.
/// Semantic versioning: before 1.0 a minor version may change the public API; checkpoints keep
/// their own format tag (`Checkpoint.formatVersion`), so a new version still reads older files.
public let maskdmVersion = "0.12.0"

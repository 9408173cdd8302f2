/// # ImageIO
///
/// Decoding, encoding and preprocessing of 8-bit images for diffusion training, plus a reader for
/// the bitmaps inside the Noto Color Emoji font.
///
/// - ``Image``: width x height x channels (1, 3 or 4) interleaved `UInt8` pixels.
/// - PNG and JPEG through setjmp-guarded libpng / libjpeg calls (`CImageCodecs`): a corrupt file
///   throws an ``ImageIOError`` naming the file and the library's message; the process survives.
/// - Preprocessing: alpha compositing, area-average and antialiased bilinear resize, crops, flips,
///   conversion to and from `Tensor` (C, H, W) in [-1, 1], batches and sample grids.
/// - ``EmojiFont`` / ``EmojiDataset``: the PNG strikes of `NotoColorEmoji.ttf` with their Unicode
///   groups and subgroups from `emoji-test.txt`.
///
/// ```swift
/// let image = try Image(contentsOf: URL(fileURLWithPath: "cat.jpg"))
/// let x = image.resizedAndCenterCropped(to: 64).tensor()          // (3, 64, 64) in [-1, 1]
/// let emoji = try EmojiDataset()
/// let faces = try emoji.images(group: "Smileys & Emotion", subgroups: ["face-*"], size: 32)
/// try Image.grid(faces, columns: 12).write(to: URL(fileURLWithPath: "faces.png"))
/// ```
public enum ImageIO {}

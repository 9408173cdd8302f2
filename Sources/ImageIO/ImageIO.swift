// ImageIO: decoding, encoding and preprocessing of 8-bit images for diffusion training, plus a
// reader for the bitmaps inside the Noto Color Emoji font.
//
// - `Image`: width x height x channels (1, 3 or 4) interleaved `UInt8` pixels, (H, W, C).
// - PNG and JPEG through setjmp-guarded libpng / libjpeg calls (`CImageCodecs`): a corrupt file
//   throws an `ImageIOError` naming the file and the library's message; the process survives.
//   The format comes from the file's signature, never from its name.
// - Preprocessing: alpha compositing, area-average and antialiased bilinear resize, crops, flips,
//   conversion to and from `Tensor` (C, H, W) in [-1, 1], batches (B, 3, H, W) and sample grids.
// - `EmojiFont` / `EmojiDataset`: the PNG strikes of `NotoColorEmoji.ttf` (CBLC/CBDT, cmap and
//   GSUB ligatures) labelled with their Unicode group and subgroup from `emoji-test.txt`.
//
// ```swift
// let image = try Image(contentsOf: URL(fileURLWithPath: "cat.jpg"))
// let x = image.resizedAndCenterCropped(to: 64).tensor()          // (3, 64, 64) in [-1, 1]
// let emoji = try EmojiDataset()
// let faces = try emoji.images(group: "Smileys & Emotion", subgroups: ["face-*"], size: 32)  // 115
// try Image.writeGrid(faces, columns: 12, to: URL(fileURLWithPath: "faces.png"))
// ```
//
// (No type is named `ImageIO`: a type with the module's name would shadow the module in
// qualified names such as `ImageIO.Image`.)

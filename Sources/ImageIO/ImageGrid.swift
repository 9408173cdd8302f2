import Foundation
import Tensor

extension Image {
    /// A sample sheet: `images` (all one size) as tiles in rows of `columns`, row-major,
    /// separated and framed by `padding` pixels of `background`. Rows = ceil(count / columns);
    /// unused cells stay background. Output is RGB (tiles converted with ``rgb()``).
    public static func grid(_ images: [Image], columns: Int, padding: Int = 2,
                            background: RGBColor = (0, 0, 0)) -> Image {
        precondition(!images.isEmpty && columns > 0 && padding >= 0,
                     "Image.grid: \(images.count) images, \(columns) columns, padding \(padding)")
        let w = images[0].width, h = images[0].height
        let cols = min(columns, images.count), rows = (images.count - 1) / columns + 1
        let outW = cols * (w + padding) + padding, outH = rows * (h + padding) + padding
        var sheet = Image(width: outW, height: outH, color: [background.r, background.g, background.b])
        sheet.withUnsafeMutablePixels { dst in
            for (n, image) in images.enumerated() {
                precondition(image.width == w && image.height == h,
                             "Image.grid: image \(n) is \(image.width)x\(image.height), image 0 is \(w)x\(h)")
                let tile = image.rgb()
                let x0 = padding + (n % columns) * (w + padding), y0 = padding + (n / columns) * (h + padding)
                tile.pixels.withUnsafeBufferPointer { src in
                    for y in 0..<h {
                        let d = ((y0 + y) * outW + x0) * 3
                        for i in 0..<(w * 3) { dst[d + i] = src[y * w * 3 + i] }
                    }
                }
            }
        }
        return sheet
    }

    /// A sample sheet from a (B, C, H, W) tensor in [-1, 1] (see ``grid(_:columns:padding:background:)``).
    public static func grid(batch: Tensor, columns: Int, padding: Int = 2,
                            background: RGBColor = (0, 0, 0)) -> Image {
        grid(images(fromBatch: batch), columns: columns, padding: padding, background: background)
    }

    /// The integer enlargement that shows a `width` x `height` tile at least `64` pixels a side
    /// (at most 8x; 1 for tiles of 64 pixels or more): what ``writeGrid(_:columns:to:padding:scale:)``
    /// uses by default, so a sheet of 16-pixel samples is not a postage stamp.
    public static func sheetScale(width: Int, height: Int, minimumSide: Int = 64) -> Int {
        let side = max(1, min(width, height))
        return max(1, min(8, (minimumSide + side - 1) / side))
    }

    /// The width and height of a sheet of `count` tiles of `tileWidth` x `tileHeight` in rows of
    /// `columns`, each enlarged `scale` times, with `padding` around them, as
    /// ``writeGrid(_:columns:to:padding:scale:)`` writes it; nil when a side would be over 32768
    /// pixels, the largest sheet it writes (checked a factor at a time, so nothing overflows).
    public static func sheetSize(count: Int, columns: Int, tileWidth: Int, tileHeight: Int,
                                 padding: Int = 2, scale: Int = 1) -> (width: Int, height: Int)? {
        let limit = 32_768
        guard count >= 1, columns >= 1, scale >= 1, padding >= 0 else { return nil }
        let cols = min(columns, count), rows = (count - 1) / columns + 1
        func side(_ tile: Int, _ n: Int) -> Int? {
            guard scale <= limit, tile <= limit, padding <= limit, n <= limit else { return nil }
            let total = (tile * scale + padding) * n + padding
            return total <= limit ? total : nil
        }
        guard let w = side(tileWidth, cols), let h = side(tileHeight, rows) else { return nil }
        return (w, h)
    }

    /// Writes a sample sheet of `images` (PNG, or JPEG for `.jpg` paths), atomically, each tile
    /// enlarged `scale` times (nearest neighbour; nil: ``sheetScale(width:height:minimumSide:)``,
    /// so tiles below 64 pixels a side are enlarged and larger ones are not).
    /// Throws ``ImageIOError/writeFailed(path:reason:)`` for an empty list, `columns` below 1,
    /// a negative padding, a scale below 1 or tiles of different sizes (nothing is written), and
    /// for write errors.
    public static func writeGrid(_ images: [Image], columns: Int, to url: URL, padding: Int = 2, scale: Int? = nil) throws(ImageIOError) {
        guard !images.isEmpty, columns >= 1, padding >= 0, (scale ?? 1) >= 1 else {
            throw .writeFailed(path: url.path, reason: "a grid needs images (got \(images.count)), columns >= 1 (got \(columns)), "
                               + "padding >= 0 (got \(padding)) and scale >= 1 (got \(scale.map(String.init) ?? "automatic"))")
        }
        if let n = images.firstIndex(where: { $0.width != images[0].width || $0.height != images[0].height }) {
            throw .writeFailed(path: url.path, reason: "grid tiles must share one size: image \(n) is \(images[n].width)x\(images[n].height), "
                               + "image 0 is \(images[0].width)x\(images[0].height)")
        }
        let factor = scale ?? sheetScale(width: images[0].width, height: images[0].height)
        guard sheetSize(count: images.count, columns: columns, tileWidth: images[0].width, tileHeight: images[0].height,
                        padding: padding, scale: factor) != nil else {
            throw .writeFailed(path: url.path, reason: "the grid would be over 32768 pixels a side (\(images.count) tiles of "
                               + "\(images[0].width)x\(images[0].height), \(columns) columns, scale \(factor)): "
                               + "fewer images or columns, or a smaller scale")
        }
        try grid(factor == 1 ? images : images.map { $0.enlarged(by: factor) }, columns: columns, padding: padding).write(to: url)
    }
}

#!/usr/bin/env python3
"""Writes the ImageIO test fixtures: tiny PNGs of every colour type, baseline JPEGs
(grey, YCbCr, Adobe CMYK), a corpus of corrupt files, and expected.json with the pixels
each valid fixture must decode to.

Only the standard library is used: PNG through zlib + struct, JPEG through a small baseline
encoder written here (so the decoder is tested on bytes libjpeg did not produce). Rerunnable:
the output is deterministic.

    python3 scripts/make_imageio_fixtures.py   # writes Tests/ImageIOTests/Fixtures/
"""
import json
import math
import os
import random
import struct
import zlib

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "ImageIOTests", "Fixtures")

# ---------------------------------------------------------------- PNG


def chunk(kind, data):
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c


def filter_rows(rows, bpp):
    """Filters scanlines with types 0..4 in turn, so the decoder meets every filter."""
    out = bytearray()
    prev = bytes(len(rows[0])) if rows else b""
    for y, row in enumerate(rows):
        kind = y % 5
        out.append(kind)
        for i, v in enumerate(row):
            a = row[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][kind]
            out.append((v - pred) & 0xFF)
        prev = row
    return bytes(out)


def pack_row(samples, depth):
    """Packs one scanline of samples (already in file order) at `depth` bits."""
    if depth == 8:
        return bytes(samples)
    if depth == 16:
        return b"".join(struct.pack(">H", s) for s in samples)
    out, acc, bits = bytearray(), 0, 0
    for s in samples:
        acc = (acc << depth) | s
        bits += depth
        if bits == 8:
            out.append(acc)
            acc, bits = 0, 0
    if bits:
        out.append(acc << (8 - bits))
    return bytes(out)


SAMPLES_PER_PIXEL = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png(width, height, depth, color, pixels, extra=b"", interlace=False):
    """pixels: rows of per-pixel sample tuples in file order (palette indices for colour type 3)."""
    spp = SAMPLES_PER_PIXEL[color]
    bpp = max(1, spp * depth // 8)

    def encode(sub):
        rows = [pack_row([s for px in r for s in px], depth) for r in sub]
        return filter_rows(rows, bpp) if rows and rows[0] else b""

    if interlace:
        raw = b""
        for x0, y0, dx, dy in [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]:
            sub = [[pixels[y][x] for x in range(x0, width, dx)] for y in range(y0, height, dy)]
            if sub and sub[0]:
                raw += encode(sub)
    else:
        raw = encode(pixels)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, 1 if interlace else 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + extra + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")


def grid(width, height, f):
    return [[f(x, y) for x in range(width)] for y in range(height)]


def flat(rows):
    return [s for r in rows for px in r for s in px]


def png_fixtures():
    """(name, bytes, expected (w, h, channels, pixels))."""
    W, H = 7, 5
    out = []

    def add(name, data, channels, expected_rows, w=W, h=H):
        out.append((name, data, (w, h, channels, flat(expected_rows))))

    g8 = grid(W, H, lambda x, y: ((x * 37 + y * 53) % 256,))
    add("grey8.png", png(W, H, 8, 0, g8), 1, g8)
    g1 = grid(W, H, lambda x, y: ((x + y) % 2,))
    add("grey1.png", png(W, H, 1, 0, g1), 1, [[(v * 255,) for (v,) in r] for r in g1])
    g2 = grid(W, H, lambda x, y: ((x + 2 * y) % 4,))
    add("grey2.png", png(W, H, 2, 0, g2), 1, [[(v * 85,) for (v,) in r] for r in g2])
    g4 = grid(W, H, lambda x, y: ((3 * x + y) % 16,))
    add("grey4.png", png(W, H, 4, 0, g4), 1, [[(v * 17,) for (v,) in r] for r in g4])
    add("grey16.png", png(W, H, 16, 0, [[(v * 257,) for (v,) in r] for r in g8]), 1, g8)
    key = g8[1][2][0]
    add("grey8_trns.png", png(W, H, 8, 0, g8, chunk(b"tRNS", struct.pack(">H", key))), 4,
        [[(v, v, v, 0 if v == key else 255) for (v,) in r] for r in g8])

    ga = grid(W, H, lambda x, y: ((x * 40 + y) % 256, (y * 60 + x * 5) % 256))
    add("greyalpha8.png", png(W, H, 8, 4, ga), 4, [[(g, g, g, a) for g, a in r] for r in ga])
    add("greyalpha16.png", png(W, H, 16, 4, [[(g * 257, a * 257) for g, a in r] for r in ga]), 4,
        [[(g, g, g, a) for g, a in r] for r in ga])

    rgb = grid(W, H, lambda x, y: ((x * 36) % 256, (y * 63) % 256, (x * y * 11 + 7) % 256))
    add("rgb8.png", png(W, H, 8, 2, rgb), 3, rgb)
    add("rgb16.png", png(W, H, 16, 2, [[tuple(s * 257 for s in px) for px in r] for r in rgb]), 3, rgb)
    k = rgb[2][3]
    add("rgb8_trns.png", png(W, H, 8, 2, rgb, chunk(b"tRNS", struct.pack(">HHH", *k))), 4,
        [[px + ((0 if px == k else 255),) for px in r] for r in rgb])

    rgba = grid(W, H, lambda x, y: ((x * 36) % 256, (y * 63) % 256, 200 - x * 3, (x * 30 + y * 17) % 256))
    add("rgba8.png", png(W, H, 8, 6, rgba), 4, rgba)
    add("rgba16.png", png(W, H, 16, 6, [[tuple(s * 257 for s in px) for px in r] for r in rgba]), 4, rgba)

    palette = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (10, 20, 30), (200, 100, 50)]
    plte = chunk(b"PLTE", b"".join(bytes(c) for c in palette))
    p8 = grid(W, H, lambda x, y: ((x + y) % 6,))
    add("palette8.png", png(W, H, 8, 3, p8, plte), 3, [[palette[i] for (i,) in r] for r in p8])
    p1 = grid(W, H, lambda x, y: ((x * y) % 2,))
    add("palette1.png", png(W, H, 1, 3, p1, plte), 3, [[palette[i] for (i,) in r] for r in p1])
    alphas = [0, 128, 255, 64]   # entries 4 and 5 have no tRNS value: opaque
    p4 = grid(W, H, lambda x, y: ((2 * x + y) % 6,))
    add("palette4_trns.png", png(W, H, 4, 3, p4, plte + chunk(b"tRNS", bytes(alphas))), 4,
        [[palette[i] + ((alphas[i] if i < len(alphas) else 255),) for (i,) in r] for r in p4])

    IW, IH = 11, 9
    il = grid(IW, IH, lambda x, y: ((x * 23) % 256, (y * 29) % 256, ((x + y) * 13) % 256))
    add("rgb8_interlaced.png", png(IW, IH, 8, 2, il, interlace=True), 3, il, IW, IH)
    return out

# ---------------------------------------------------------------- JPEG (baseline, no subsampling)


ZIGZAG = sorted(range(64), key=lambda i: (i // 8 + i % 8, (i % 8) if (i // 8 + i % 8) % 2 == 0 else (i // 8)))


class BitWriter:
    def __init__(self):
        self.out, self.acc, self.bits = bytearray(), 0, 0

    def write(self, value, length):
        for i in range(length - 1, -1, -1):
            self.acc = (self.acc << 1) | ((value >> i) & 1)
            self.bits += 1
            if self.bits == 8:
                self.out.append(self.acc)
                if self.acc == 0xFF:
                    self.out.append(0)        # byte stuffing
                self.acc, self.bits = 0, 0

    def flush(self):
        while self.bits:
            self.write(1, 1)                  # pad with ones
        return bytes(self.out)


def fdct(block):
    """8x8 forward DCT-II as in the JPEG spec (block is level-shifted)."""
    out = [0.0] * 64
    for v in range(8):
        for u in range(8):
            s = 0.0
            for y in range(8):
                for x in range(8):
                    s += block[y * 8 + x] * math.cos((2 * x + 1) * u * math.pi / 16) * math.cos((2 * y + 1) * v * math.pi / 16)
            cu = 1 / math.sqrt(2) if u == 0 else 1
            cv = 1 / math.sqrt(2) if v == 0 else 1
            out[v * 8 + u] = 0.25 * cu * cv * s
    return out


def size_of(v):
    return 0 if v == 0 else abs(v).bit_length()


def amplitude_bits(v, s):
    return v if v >= 0 else v + (1 << s) - 1


def fixed_length_table(symbols):
    """A valid Huffman table giving every symbol the same length (never the all-ones code)."""
    symbols = sorted(set(symbols))
    length = max(1, (len(symbols)).bit_length())   # len + 1 <= 2^length
    counts = [0] * 16
    counts[length - 1] = len(symbols)
    codes = {s: (i, length) for i, s in enumerate(symbols)}
    return bytes(counts) + bytes(symbols), codes


def jpeg(width, height, planes, adobe=None):
    """planes: list of per-component sample rows (0..255), all full resolution. Quantisation
    tables of ones (quality 100 without rounding loss beyond the DCT's)."""
    ncomp = len(planes)
    bw, bh = (width + 7) // 8, (height + 7) // 8
    blocks = []   # per MCU, per component: zigzagged quantised coefficients
    for by in range(bh):
        for bx in range(bw):
            mcu = []
            for p in planes:
                block = [p[min(by * 8 + y, height - 1)][min(bx * 8 + x, width - 1)] - 128 for y in range(8) for x in range(8)]
                coeffs = fdct(block)
                mcu.append([int(round(coeffs[ZIGZAG[i]])) for i in range(64)])
            blocks.append(mcu)
    # symbol statistics -> one DC and one AC table per component class (shared here)
    dc_syms, ac_syms, pred = [], [], [0] * ncomp
    events = []
    for mcu in blocks:
        for c, zz in enumerate(mcu):
            diff = zz[0] - pred[c]
            pred[c] = zz[0]
            s = size_of(diff)
            dc_syms.append(s)
            ev = [("dc", s, amplitude_bits(diff, s))]
            run = 0
            last = max([i for i in range(1, 64) if zz[i] != 0], default=0)
            for i in range(1, last + 1):
                if zz[i] == 0:
                    run += 1
                    continue
                while run > 15:
                    ev.append(("ac", 0xF0, None))
                    ac_syms.append(0xF0)
                    run -= 16
                s = size_of(zz[i])
                sym = (run << 4) | s
                ac_syms.append(sym)
                ev.append(("ac", sym, (amplitude_bits(zz[i], s), s)))
                run = 0
            if last < 63:
                ev.append(("ac", 0x00, None))
                ac_syms.append(0x00)
            events.append(ev)
    dc_spec, dc_codes = fixed_length_table(dc_syms)
    ac_spec, ac_codes = fixed_length_table(ac_syms)
    bw_ = BitWriter()
    for ev in events:
        for kind, sym, extra in ev:
            if kind == "dc":
                code, length = dc_codes[sym]
                bw_.write(code, length)
                if sym:
                    bw_.write(extra, sym)
            else:
                code, length = ac_codes[sym]
                bw_.write(code, length)
                if extra is not None:
                    bw_.write(extra[0], extra[1])
    scan = bw_.flush()

    def segment(marker, data):
        return struct.pack(">BBH", 0xFF, marker, len(data) + 2) + data

    out = b"\xFF\xD8"
    if adobe is None:
        out += segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    else:
        out += segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, adobe))
    out += segment(0xDB, b"\x00" + bytes([1] * 64))
    sof = struct.pack(">BHHB", 8, height, width, ncomp) + b"".join(bytes([i + 1, 0x11, 0]) for i in range(ncomp))
    out += segment(0xC0, sof)
    out += segment(0xC4, b"\x00" + dc_spec) + segment(0xC4, b"\x10" + ac_spec)
    sos = bytes([ncomp]) + b"".join(bytes([i + 1, 0x00]) for i in range(ncomp)) + b"\x00\x3F\x00"
    out += segment(0xDA, sos) + scan + b"\xFF\xD9"
    return out


def clamp8(v):
    return max(0, min(255, int(round(v))))


def jpeg_fixtures():
    W, H = 13, 11      # not multiples of 8: edge blocks are padded
    out = []
    grey = grid(W, H, lambda x, y: 40 + 12 * x + 7 * y)
    out.append(("grey.jpg", jpeg(W, H, [grey]), (W, H, 1, [v for r in grey for v in r])))
    rgb = grid(W, H, lambda x, y: (30 + 15 * x, 200 - 10 * y, 90 + 5 * (x + y)))
    ys, cbs, crs = [], [], []
    for r in rgb:
        ys.append([clamp8(0.299 * R + 0.587 * G + 0.114 * B) for R, G, B in r])
        cbs.append([clamp8(-0.168736 * R - 0.331264 * G + 0.5 * B + 128) for R, G, B in r])
        crs.append([clamp8(0.5 * R - 0.418688 * G - 0.081312 * B + 128) for R, G, B in r])
    out.append(("rgb.jpg", jpeg(W, H, [ys, cbs, crs]), (W, H, 3, flat(rgb))))
    # Adobe CMYK (transform 0): samples stored inverted (255 - ink), as Photoshop writes them.
    ink = grid(W, H, lambda x, y: (10 * x, 15 * y, 100, 20 + 3 * x))
    planes = [[[255 - px[c] for px in r] for r in ink] for c in range(4)]
    expected = [(round((255 - C) * (255 - K) / 255), round((255 - M) * (255 - K) / 255), round((255 - Y) * (255 - K) / 255))
                for r in ink for C, M, Y, K in r]
    out.append(("cmyk_adobe.jpg", jpeg(W, H, planes, adobe=0), (W, H, 3, [s for px in expected for s in px])))
    return out

# ---------------------------------------------------------------- corrupt corpus


def corrupt_fixtures(pngs, jpegs):
    rgb8 = dict((n, d) for n, d, _ in pngs)["rgb8.png"]
    rgbj = dict((n, d) for n, d, _ in jpegs)["rgb.jpg"]
    idat = rgb8.index(b"IDAT")
    bad_crc = bytearray(rgb8)
    crc_at = idat + 4 + struct.unpack(">I", rgb8[idat - 4:idat])[0]
    bad_crc[crc_at] ^= 0xFF
    bad_ihdr = bytearray(rgb8)
    bad_ihdr[29] ^= 0x01                       # last byte of IHDR's CRC
    huge_png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 60000, 60000, 8, 6, 0, 0, 0)) + rgb8[33:]
    huge_jpg = bytearray(rgbj)
    sof = rgbj.index(b"\xFF\xC0")
    huge_jpg[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)   # height, width
    rng = random.Random(1234)
    sos = rgbj.index(b"\xFF\xDA")
    scan_len = len(rgbj) - sos
    return [
        ("truncated.png", rgb8[: idat + 20]),                 # cut inside IDAT
        ("truncated_header.png", rgb8[:20]),                  # cut inside IHDR
        ("bad_crc.png", bytes(bad_crc)),                      # IDAT CRC
        ("bad_crc_ihdr.png", bytes(bad_ihdr)),
        ("garbage.png", bytes(rng.randrange(256) for _ in range(300))),
        ("garbage_after_signature.png", b"\x89PNG\r\n\x1a\n" + bytes(rng.randrange(256) for _ in range(100))),
        ("empty.png", b""),
        ("empty.jpg", b""),
        ("truncated_scan.jpg", rgbj[: sos + scan_len // 2]),   # cut in the middle of the scan
        ("truncated_header.jpg", rgbj[:30]),
        ("garbage_after_soi.jpg", b"\xFF\xD8\xFF" + bytes(rng.randrange(256) for _ in range(200))),
        ("truncated_png_named.jpg", rgb8[: idat + 20]),       # PNG bytes under a JPEG name
        ("huge_dimensions.png", huge_png),                     # 60000 x 60000 RGBA claimed
        ("huge_dimensions.jpg", bytes(huge_jpg)),              # 65000 x 65000 claimed
    ]


def main():
    os.makedirs(os.path.join(OUT, "corrupt"), exist_ok=True)
    pngs, jpegs = png_fixtures(), jpeg_fixtures()
    expected = {}
    for name, data, (w, h, c, px) in pngs + jpegs:
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        assert len(px) == w * h * c, name
        expected[name] = {"width": w, "height": h, "channels": c, "pixels": px,
                          "tolerance": 0 if name.endswith(".png") else 3}
    # A valid PNG under a .jpg name: the format comes from the bytes.
    with open(os.path.join(OUT, "png_named.jpg"), "wb") as f:
        f.write(dict((n, d) for n, d, _ in pngs)["rgb8.png"])
    expected["png_named.jpg"] = dict(expected["rgb8.png"])
    for name, data in corrupt_fixtures(pngs, jpegs):
        with open(os.path.join(OUT, "corrupt", name), "wb") as f:
            f.write(data)
    with open(os.path.join(OUT, "expected.json"), "w") as f:
        json.dump(expected, f, indent=None, separators=(",", ":"), sort_keys=True)
        f.write("\n")


if __name__ == "__main__":
    main()

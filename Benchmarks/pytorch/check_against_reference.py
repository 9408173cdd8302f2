#!/usr/bin/env python3
"""Checks maskdm_torch.py and the parity fixtures against the reference code itself (optional,
needs a checkout of github.com/jiachenlei/maskdm and its imports timm + einops; torchvision, PIL,
pywt and tqdm are only imported, never used on these paths, so they may be stubbed).

    .venv/bin/python -m pip install --no-deps --target /tmp/refsite timm einops   # aside, not in .venv
    PYTHONPATH=/tmp/refsite .venv/bin/python Benchmarks/pytorch/check_against_reference.py \
        <maskdm checkout> --stub-imports

(Checked with timm 1.0.31 and einops 0.8.2; the PyPI torchvision wheel does not load with the CPU
torch, hence --stub-imports.)

For every Tests/ViTDiffusionTests/Fixtures/parity_* folder it builds the reference MaskedUViT with the
fixture's config, loads weights.safetensors strictly, runs it in float64, computes the loss with the
reference GaussianDiffusion.loss_fn (l2, pred_noise; an all-False mask for the unmasked case, as the
reference trainer does) and compares out, loss and every gradient with the fixture. It then compares
our forward with the reference's on the small config with the reference init, and the mask
generators' visible counts and block structure.
"""
import argparse
import glob
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, HERE)
import maskdm_torch as ours  # noqa: E402
from reference_stubs import StubImports  # noqa: E402
from safetensors.torch import load_file  # noqa: E402


def max_rel(a, b):
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / (b.abs().max() + 1e-30))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("reference")
    ap.add_argument("--stub-imports", action="store_true")
    args = ap.parse_args()
    if args.stub_imports:
        sys.meta_path.insert(0, StubImports())
    sys.path.insert(0, args.reference)
    import warnings
    warnings.filterwarnings("ignore")
    from models.mask_uvit import MaskedUViT as RefModel
    from gaussian_ddpm import GaussianDiffusion
    from datasets.masking_generator import RandomMaskingGenerator, RandomBlockMaskingGenerator

    worst = 0.0
    for folder in sorted(glob.glob(os.path.join(ROOT, "Tests", "ViTDiffusionTests", "Fixtures", "parity_*"))):
        cfg = json.load(open(os.path.join(folder, "config.json")))
        img = tuple(cfg["img_size"]) if isinstance(cfg["img_size"], list) else cfg["img_size"]
        ref = RefModel(**{**cfg, "img_size": img})
        ref.load_state_dict(load_file(os.path.join(folder, "weights.safetensors")), strict=True)
        ref = ref.double()
        inp = load_file(os.path.join(folder, "inputs.safetensors"))
        exp = load_file(os.path.join(folder, "outputs.safetensors"))
        x, t, eps = inp["x"].double(), inp["t"], inp["eps"].double()
        n = ref.encoder.patch_embed.num_patches
        mask = inp["mask"].bool() if "mask" in inp else torch.zeros(x.shape[0], 1 + n, dtype=torch.bool)
        diff = GaussianDiffusion(ref, image_size=img, timesteps=1000, loss_type="l2", beta_schedule="linear",
                                 channels=cfg["in_chans"]).double()
        ref.zero_grad()
        tokens = ref(x, t, mask=mask)
        loss = diff.loss_fn(eps, x, t, tokens, mask=mask)["loss"]
        loss.backward()
        out = tokens
        if "mask" not in inp:
            with torch.no_grad():
                out = ref(x, t)                                  # the reference's sampling path
            assert torch.allclose(out, ours.unpatchify(tokens, cfg["patch_size"], cfg["in_chans"],
                                                       (x.shape[2] // cfg["patch_size"], x.shape[3] // cfg["patch_size"])))
        errs = {"out": max_rel(exp["out"], out), "loss": max_rel(exp["loss"], loss)}
        g = max(max_rel(exp[f"grad.{k}"], p.grad) for k, p in ref.named_parameters())
        errs["grads"] = g
        worst = max(worst, *errs.values())
        print(f"{os.path.basename(folder)}: " + ", ".join(f"{k} max rel err {v:.2e}" for k, v in errs.items()))

    # our forward vs the reference's at the reference init (small 64 px config, float32 and float64)
    torch.manual_seed(0)
    ref = RefModel(img_size=64, patch_size=4, in_chans=3, encoder_embed_dim=512, encoder_depth=13,
                   encoder_heads=8, mlp_ratio=4, qkv_bias=False)
    mine = ours.MaskedUViT(ours.SMALL)
    mine.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(4, 3, 64, 64)
    t = torch.tensor([0, 10, 500, 999])
    rng = np.random.default_rng(0)
    mask = ours.batch_mask([ours.block_mask((16, 16), 0.9, 4, rng) for _ in range(4)])
    with torch.no_grad():
        for m in (None, mask):
            e = max_rel(mine(x, t, m), ref(x, t, mask=m))
            print(f"small init, mask {'none' if m is None else 'block4 r0.9'}: max rel err float32 {e:.2e}")
            worst = max(worst, e * 1e-3)   # float32: only report

    # masks: visible counts and structure
    for grid, ratio, block in [(16, 0.9, 4), (8, 0.9, 4), (8, 0.9, 2), (16, 0.5, 2), (16, 0.1, 8)]:
        np.random.seed(0)
        r = RandomBlockMaskingGenerator(grid, ratio, block)()
        m = ours.block_mask((grid, grid), ratio, block, np.random.default_rng(0))
        tiles = lambda a: a.reshape(grid // block, block, grid // block, block).transpose(0, 2, 1, 3).reshape(-1, block * block)
        assert int((r == 0).sum()) == int((~m).sum()) == ours.visible_count("block", (grid, grid), ratio, block)
        assert all(len(set(row)) == 1 for row in tiles(r)) and all(len(set(row)) == 1 for row in tiles(m))
        print(f"block{block} grid {grid} r{ratio}: visible {int((~m).sum())} (reference {int((r == 0).sum())})")
    for grid, ratio in [(16, 0.9), (3, 0.5)]:
        r = RandomMaskingGenerator(grid, ratio)()
        assert int((r == 0).sum()) == ours.visible_count("patch", (grid, grid), ratio)
    print("worst fixture error:", f"{worst:.2e}", "OK" if worst < 1e-6 else "TOO LARGE")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Parity fixtures for the Swift MaskedUViT (Tests/ViTDiffusionTests/Fixtures/parity_<case>/).

The network is Benchmarks/pytorch/maskdm_torch.py (a re-implementation of the reference
models/mask_uvit.py, checked against it by Benchmarks/pytorch/check_against_reference.py).
Weights are random (not the init) so that every path matters; they and the inputs are rounded to
float32 first, then the whole computation runs in float64 and the results are stored as float32,
so the fixture is an exact oracle for the stored values. The time embedding is computed in float32
as the reference does (for these widths its float32 frequencies equal the correctly rounded ones).

Each folder holds:
  config.json          reference names: img_size (int, or [H, W]), patch_size, in_chans,
                       encoder_embed_dim, encoder_depth, encoder_heads, mlp_ratio, qkv_bias
  weights.safetensors  F32, reference state-dict keys
  inputs.safetensors   x (B,C,H,W) F32 = the network input x_t, t (B,) I64, eps (B,C,H,W) F32,
                       mask (B,1+N) U8 (1 = dropped, column 0 = time token, always 0) when masked
  outputs.safetensors  out: (B,C,H,W) unmasked, (B,N_vis,p*p*C) masked (visible patches, raster
                       order, layout (p1 p2 c)); loss: [] F32 (MSE; masked: against patchify(eps)
                       at the visible patches); time_embed (B,D) F32 (the raw sinusoid token);
                       grad.<key>: d loss / d parameter for every key of weights.safetensors

Rerun from the repository root: .venv/bin/python scripts/make_vit_fixtures.py (deterministic).
Needs torch, numpy, safetensors (scripts/setup-python.sh).
"""
import json
import os
import sys

import numpy as np
import torch

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(ROOT, "Benchmarks", "pytorch"))
from maskdm_torch import (MaskDMConfig, MaskedUViT, maskdm_loss, timestep_embedding,  # noqa: E402
                          block_mask, patch_mask, batch_mask)

try:
    from safetensors.torch import save_file
except ImportError:
    sys.exit("safetensors is not importable: run scripts/setup-python.sh")

OUT = os.path.join(ROOT, "Tests", "ViTDiffusionTests", "Fixtures")


def randomize(model: MaskedUViT, gen: torch.Generator):
    """Random parameters that exercise every path: Linear/conv weights N(0, 1/fan_in) (attention
    logits of order one), biases N(0, 0.1^2), LayerNorm weights 1 + N(0, 0.1^2), LayerNorm biases
    N(0, 0.1^2), position embedding N(0, 0.3^2). Rounded to float32 values."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            n = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            if name.endswith("encoder_pos_embed"):
                v = 0.3 * n
            elif ".norm" in name or name.startswith("encoder.norm"):
                v = (1.0 + 0.1 * n) if name.endswith("weight") else 0.1 * n
            elif name.endswith("weight"):
                fan_in = p[0].numel()
                v = n / fan_in ** 0.5
            else:  # biases, q_bias, v_bias
                v = 0.1 * n
            p.copy_(v.float().double())


def distinct_masks(make, batch: int, rng: np.random.Generator):
    """Per-sample masks, all different (so that positions matter)."""
    masks = []
    while len(masks) < batch:
        m = make(rng)
        if all((m != o).any() for o in masks):
            masks.append(m)
    return masks


def write_case(name: str, cfg: MaskDMConfig, batch: int, seed: int, mask_kind=None, ratio=0.0, block=1):
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = MaskedUViT(cfg).double()
    randomize(model, gen)
    h, w = cfg.image_hw
    x = torch.randn(batch, cfg.in_chans, h, w, generator=gen, dtype=torch.float64).float().double()
    eps = torch.randn(batch, cfg.in_chans, h, w, generator=gen, dtype=torch.float64).float().double()
    # large and small steps; 999 exercises the high-frequency end of the sinusoid
    t = torch.tensor(([999, 0, 417, 1, 250] * batch)[:batch], dtype=torch.int64)
    mask = None
    if mask_kind == "block":
        mask = batch_mask(distinct_masks(lambda r: block_mask(cfg.grid, ratio, block, r), batch, rng))
    elif mask_kind == "patch":
        mask = batch_mask(distinct_masks(lambda r: patch_mask(cfg.grid, ratio, r), batch, rng))

    model.zero_grad()
    loss, out = maskdm_loss(model, x, t, eps, mask)
    loss.backward()

    folder = os.path.join(OUT, f"parity_{name}")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg.to_json(), f, indent=1)
        f.write("\n")
    f32 = lambda v: v.detach().to(torch.float32).contiguous()
    save_file({k: f32(v) for k, v in model.state_dict().items()}, os.path.join(folder, "weights.safetensors"))
    inputs = {"x": f32(x), "t": t.contiguous(), "eps": f32(eps)}
    if mask is not None:
        inputs["mask"] = mask.to(torch.uint8).contiguous()
    save_file(inputs, os.path.join(folder, "inputs.safetensors"))
    outputs = {"out": f32(out), "loss": f32(loss.reshape([])),
               "time_embed": timestep_embedding(t, cfg.encoder_embed_dim).contiguous()}
    for k, p in model.named_parameters():
        outputs[f"grad.{k}"] = f32(p.grad)
    save_file(outputs, os.path.join(folder, "outputs.safetensors"))
    n_vis = cfg.num_patches if mask is None else int((~mask[0, 1:]).sum())
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))
    print(f"parity_{name}: out {tuple(out.shape)} loss {loss.item():.6f} visible {n_vis}/{cfg.num_patches} "
          f"params {sum(p.numel() for p in model.parameters())} ({size} bytes)")


def main():
    base = dict(patch_size=4, in_chans=3, mlp_ratio=4.0)
    small = MaskDMConfig(img_size=16, encoder_embed_dim=32, encoder_depth=3, encoder_heads=2, qkv_bias=False, **base)
    write_case("basic", small, batch=2, seed=1)
    write_case("block2", small, batch=2, seed=2, mask_kind="block", ratio=0.5, block=2)
    odd = MaskDMConfig(img_size=(12, 8), encoder_embed_dim=24, encoder_depth=4, encoder_heads=3, qkv_bias=True, **base)
    write_case("odd", odd, batch=3, seed=3, mask_kind="patch", ratio=0.5)
    deep = MaskDMConfig(img_size=8, encoder_embed_dim=16, encoder_depth=13, encoder_heads=2, qkv_bias=False, **base)
    write_case("deep", deep, batch=2, seed=4, mask_kind="patch", ratio=0.5)


if __name__ == "__main__":
    main()

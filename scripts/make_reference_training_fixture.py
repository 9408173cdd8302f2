#!/usr/bin/env python3
"""The first 10 training steps of the reference, pinned (llm.c's test_gpt2 style) for
Tests/ViTDiffusionTests/ReferenceTrainingTests.

Rerun from the repository root (deterministic), with the same set-up as
make_reference_state_fixture.py:

    bash scripts/setup-python.sh
    .venv/bin/python -m pip install --no-deps --target /tmp/refsite timm einops pyyaml   # aside, not in .venv
    PYTHONPATH=/tmp/refsite .venv/bin/python scripts/make_reference_training_fixture.py \
        /work/.mirror/jiachenlei+maskdm/repo

It imports the reference's own models/mask_uvit.py, gaussian_ddpm.py and
datasets/masking_generator.py unchanged and trains a small MaskedUViT (img 8, patch 2, D 16,
depth 3, heads 2, q/v biases) for 10 steps, as train_step.train does: the wrapper's q_sample,
model call and loss_fn; clip_grad_norm_ (0.8 and 0.2: below most steps' norms, so that
clipping acts); AdamW(lr 1e-3, betas (0.9, 0.99), weight decay
0.03); ema-pytorch's EMA(beta 0.999, update_after_step 0, so that it averages from the start).
The only departure from the wrapper's forward is that t and the noise are drawn here and
recorded (forward draws them inside), so the Swift test can replay them. Two runs:

  masked: objective pred_noise, loss l2, the reference's RandomMaskingGenerator at ratio 0.5;
  full:   objective pred_v, loss l1, no mask (all patches visible).

Written: Tests/ViTDiffusionTests/Fixtures/reference_training.safetensors with, per run R,
  R.init.<key>   initial network weights (the network's state-dict keys),
  R.x0.<s>, R.t.<s>, R.noise.<s>, R.mask.<s>   step s's inputs (x0 normalised to [-1, 1];
                  mask (B, 1 + N) with 1 = dropped, the time-token column 0),
  R.loss, R.grad_norm   (10,) the losses and the pre-clipping gradient norms,
  R.clip         () the clipping threshold,
  R.online.<key>, R.ema.<key>   the weights after 10 steps.
"""
import os
import sys
import tempfile
import shutil
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_reference_state_fixture import StubImports, extract_reference  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "Tests", "ViTDiffusionTests", "Fixtures", "reference_training.safetensors")
NETWORK = dict(img_size=8, patch_size=2, in_chans=3, encoder_embed_dim=16, encoder_depth=3, encoder_heads=2,
               decoder_depth=0, mlp_ratio=4, qkv_bias=True, num_classes=-1, use_final_conv=False,
               mlp_time_embed=False, use_checkpoint=False)
STEPS, BATCH = 10, 4


def run(name, objective, loss_type, mask_ratio, clip, out):
    from models.mask_uvit import MaskedUViT
    from gaussian_ddpm import GaussianDiffusion
    from datasets.masking_generator import RandomMaskingGenerator
    from ema_pytorch import EMA

    torch.manual_seed(1232)
    np.random.seed(1232)
    model = MaskedUViT(**NETWORK)
    diffusion = GaussianDiffusion(model, image_size=8, timesteps=1000, sampling_timesteps=500, loss_type=loss_type,
                                  objective=objective, normalization=True, channels=3, beta_schedule="linear")
    for k, v in model.state_dict().items():
        out[f"{name}.init.{k}"] = v.detach().float().contiguous().clone()
    ema = EMA(diffusion, beta=0.999, update_every=1, update_after_step=0)
    opt = torch.optim.AdamW(diffusion.parameters(), lr=1e-3, betas=(0.9, 0.99), weight_decay=0.03)
    window = NETWORK["img_size"] // NETWORK["patch_size"]
    masks = RandomMaskingGenerator(window, mask_ratio) if mask_ratio > 0 else None
    n = window * window
    losses, norms = [], []
    for s in range(STEPS):
        img = torch.rand(BATCH, 3, 8, 8)
        if masks is None:
            m = torch.zeros(BATCH, 1 + n)
        else:
            m = torch.stack([torch.cat([torch.tensor([0.0]), torch.from_numpy(masks()).float()]) for _ in range(BATCH)])
        mask = m.flatten(1).to(torch.bool)
        x_start = img * 2 - 1                                   # maybe_normalize_to_neg_one_to_one
        t = torch.randint(0, diffusion.num_timesteps, (BATCH,)).long()
        noise = torch.randn_like(x_start)
        noise, model_out = diffusion.p_losses(x_start, t, mask, noise=noise)
        loss = diffusion.loss_fn(noise, x_start, t, model_out, mask=mask)["loss"]
        loss.backward()
        norms.append(float(torch.nn.utils.clip_grad_norm_(diffusion.parameters(), clip)))
        opt.step()
        opt.zero_grad()
        ema.update()
        losses.append(loss.item())
        out[f"{name}.x0.{s}"] = x_start.contiguous()
        out[f"{name}.t.{s}"] = t.contiguous()
        out[f"{name}.noise.{s}"] = noise.contiguous()
        out[f"{name}.mask.{s}"] = m.to(torch.uint8).contiguous()
    out[f"{name}.loss"] = torch.tensor(losses, dtype=torch.float32)
    out[f"{name}.grad_norm"] = torch.tensor(norms, dtype=torch.float32)
    out[f"{name}.clip"] = torch.tensor(clip, dtype=torch.float32)
    for k, v in model.state_dict().items():
        out[f"{name}.online.{k}"] = v.detach().float().contiguous().clone()
    for k, v in ema.ema_model.model.state_dict().items():
        out[f"{name}.ema.{k}"] = v.detach().float().contiguous().clone()
    print(f"{name}: losses {['%.5f' % x for x in losses]}")
    print(f"{name}: grad norms {['%.3f' % x for x in norms]}  (clipping at {clip})")


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} REF_REPO_DIR   (git dir of github.com/jiachenlei/maskdm)")
    sys.meta_path.insert(0, StubImports())
    warnings.filterwarnings("ignore")
    try:
        import einops  # noqa: F401
        import timm  # noqa: F401
        from safetensors.torch import save_file
    except ImportError as e:
        sys.exit(f"{e}: see the install lines at the top of this script")
    tmp = tempfile.mkdtemp(prefix="maskdm-ref-")
    try:
        extract_reference(sys.argv[1], tmp)
        sys.path.insert(0, tmp)
        out = {}
        run("masked", "pred_noise", "l2", 0.5, 0.8, out)
        run("full", "pred_v", "l1", 0.0, 0.2, out)
        os.makedirs(os.path.dirname(OUT), exist_ok=True)
        save_file(out, OUT)
        print(f"{OUT}: {os.path.getsize(OUT)} bytes, {len(out)} tensors")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Reference training-state fixtures for Tests/PipelineTests (maskdm convert / --weights X.pt).

Rerun from the repository root (deterministic; the reference is a git dir or a checkout):

    bash scripts/setup-python.sh
    .venv/bin/python -m pip install --no-deps --target /tmp/refsite timm einops pyyaml   # aside, not in .venv
    PYTHONPATH=/tmp/refsite .venv/bin/python scripts/make_reference_state_fixture.py \
        /work/.mirror/jiachenlei+maskdm/repo

REF_REPO_DIR is a git directory (bare or not) of github.com/jiachenlei/maskdm, or a plain folder
holding its files. The script copies the reference's models/mask_uvit.py, gaussian_ddpm.py,
utils/helper.py and datasets/masking_generator.py out of it (`git show HEAD:<path>`) into a temp
folder and imports them unchanged. torchvision, PIL, pywt and tqdm are imported by that code but
never used on these paths (the PyPI torchvision wheel does not load with the CPU torch), so they
are answered with mock modules; timm (Mlp, PatchEmbed, trunc_normal_) and einops are real.

What it does, as the reference's main.py / train_step.py do:
  1. writes Tests/PipelineTests/Fixtures/reference_tiny.yml (the reference's config layout) and
     reads it back with yaml.safe_load (the reference's parse_yml);
  2. builds MaskedUViT(**network) (img 8, patch 2, D 8, depth 3, heads 2, mlp_ratio 4, no qkv
     bias: 3,044 parameters), wraps it in GaussianDiffusion(model, image_size, timesteps,
     sampling_timesteps, loss_type, normalization, clip_*, channels, beta_schedule) and
     EMA(wrapper, beta=ema_decay, update_every=ema_update_every), AdamW(wrapper.parameters(), lr,
     betas, weight_decay), a LambdaLR warm-up schedule (warmup_steps 0) and clip_grad_norm_.
     Deviations from main.py, to keep the fixtures small (< 200 KB in all) and meaningful:
     timesteps 100 instead of 1000 (only the wrapper's schedule buffers, stored twice, depend on
     it); EMA(update_after_step=0) (main.py keeps ema-pytorch's default 100, under which the first
     100 updates copy the online weights) so that the EMA weights differ from the online ones
     after 3 updates; and D 8 (the file holds 4 copies of the parameters: weights, EMA, AdamW's
     two moments; with D 16 it would be ~370 KB);
  3. runs 3 training steps through the wrapper's forward on random images in [0, 1] with the
     reference's patch mask (RandomMaskingGenerator, ratio 0.5, time-token column prepended),
     ema.update() after each;
  4. saves {'step', 'model', 'opt', 'ema', 'scaler': None} with torch.save exactly as
     train_step.save_training_state does -> Fixtures/reference_state.pt;
  5. evaluates wrapper.model and ema.ema_model.model (eval mode, no grad, unmasked: the path the
     wrapper's samplers take) on a fixed x (2, 3, 8, 8) F32 and t (2,) I64 and writes
     Fixtures/reference_outputs.safetensors {x, t, out_online, out_ema} (float32);
  6. writes Fixtures/not_a_training_state.pt: {'step': 3, 'model': <a bare network state dict>}
     (the network not wrapped in GaussianDiffusion), which the Swift loader must refuse.
"""
import os
import random
import shutil
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Benchmarks", "pytorch"))
from reference_stubs import StubImports  # noqa: E402

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "Tests", "PipelineTests", "Fixtures")
# main.py uses T = 1000 (sampling_timesteps 500); T = 100 here keeps the fixture small (the wrapper's
# 11 schedule buffers are stored twice, wrapper and EMA copy, and only they depend on T).
TIMESTEPS = 100
REF_FILES = ["models/mask_uvit.py", "gaussian_ddpm.py", "utils/helper.py", "datasets/masking_generator.py"]

# The config, in the reference's layout (configs/base.yml); anchors as its transfer configs use them.
CONFIG_YAML = """\
# Tiny MaskDM config for Tests/PipelineTests (written by scripts/make_reference_state_fixture.py).
define: &img_size 8
define: &patch_size 2

pretrained_model_ckpt: ""
batch_size: 4
lr: 1.0e-3
warmup_steps: 0
warmup_lr: -1
adam_betas: [0.9, 0.99]
weight_decay: 0.03
results_folder: ""

ema_decay: 0.999
ema_update_every: 1
clip_grad: 1.0

beta_schedule: "linear"
num_workers: 0

normalization: true
clip_max: 1
clip_min: -1

dataset:
  NAME: celebahq
  TASK: uncond
  PATH: ""

  MASK_RATIO: 0.5
  MASK_TYPE: "patch"
  MASK_BLOCK_SIZE: 1
  MASK_CROP_SIZE: -1

  IMG_SIZE: *img_size
  SHORT_SIDE_SIZE: -1
  MEAN: [0.5,0.5,0.5]
  STD: [0.5,0.5,0.5]
  hflip_prob: 0.0

network:
  name : 'maskdm'
  img_size : *img_size
  patch_size : *patch_size
  in_chans : 3

  encoder_embed_dim : 8
  encoder_depth : 3
  encoder_heads : 2

  decoder_depth: 0

  mlp_ratio : 4
  qkv_bias : False

  num_classes: -1

  use_final_conv: False
  mlp_time_embed : False
  use_checkpoint : False
"""


def extract_reference(ref, dest):
    """Copies REF_FILES from the git dir (or plain folder) `ref` into `dest`."""
    for rel in REF_FILES:
        target = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        plain = os.path.join(ref, rel)
        if os.path.isfile(plain):
            shutil.copyfile(plain, target)
            continue
        try:
            text = subprocess.run(["git", "--git-dir", ref, "show", f"HEAD:{rel}"], check=True,
                                  capture_output=True).stdout
        except subprocess.CalledProcessError:
            text = subprocess.run(["git", "-C", ref, "show", f"HEAD:{rel}"], check=True, capture_output=True).stdout
        with open(target, "wb") as f:
            f.write(text)


def main():
    if len(sys.argv) != 2:
        sys.exit(f"usage: {sys.argv[0]} REF_REPO_DIR   (git dir of github.com/jiachenlei/maskdm)")
    ref = sys.argv[1]
    sys.meta_path.insert(0, StubImports())
    warnings.filterwarnings("ignore")
    try:
        import yaml
        import einops  # noqa: F401
        import timm  # noqa: F401
        from ema_pytorch import EMA
        from safetensors.torch import save_file
    except ImportError as e:
        sys.exit(f"{e}: see the install lines at the top of this script")

    os.makedirs(OUT, exist_ok=True)
    yml_path = os.path.join(OUT, "reference_tiny.yml")
    with open(yml_path, "w") as f:
        f.write(CONFIG_YAML)

    tmp = tempfile.mkdtemp(prefix="maskdm-ref-")
    try:
        extract_reference(ref, tmp)
        sys.path.insert(0, tmp)
        from models.mask_uvit import MaskedUViT
        from gaussian_ddpm import GaussianDiffusion
        from datasets.masking_generator import RandomMaskingGenerator
        from torch.optim import AdamW
        from torch.optim.lr_scheduler import LambdaLR

        with open(yml_path) as f:
            cfg = yaml.safe_load(f)                        # the reference's parse_yml
        net, ds = cfg["network"], cfg["dataset"]

        seed = 1232                                        # main.py's default --seed
        torch.manual_seed(seed)
        random.seed(seed)
        np.random.seed(seed)

        model = MaskedUViT(**net)                          # main.py build_model
        diffusion = GaussianDiffusion(
            model,
            image_size=net["img_size"],
            timesteps=TIMESTEPS,
            sampling_timesteps=TIMESTEPS // 2,
            loss_type=cfg.get("loss_type", "l2"),
            normalization=ds.get("NORMALIZATION", True),
            clip_denoised=cfg.get("clip_denoised", True),
            clip_max=cfg.get("clip_max", 1),
            clip_min=cfg.get("clip_min", -1),
            channels=net.get("in_chans", 3),
            beta_schedule=cfg.get("beta_schedule", "cosine"),
        )
        # update_after_step=0: see the header (the reference leaves ema-pytorch's default of 100).
        ema = EMA(diffusion, beta=cfg["ema_decay"], update_every=cfg["ema_update_every"], update_after_step=0)
        opt = AdamW(diffusion.parameters(), lr=cfg["lr"], betas=cfg["adam_betas"], weight_decay=cfg["weight_decay"])
        warmup = cfg.get("warmup_steps", 0)
        sched = LambdaLR(opt, lambda s: min(s / warmup, 1) if warmup > 0 else 1)   # utils/lr_schedule.py

        window = net["img_size"] // net["patch_size"]
        masks = RandomMaskingGenerator(window, ds["MASK_RATIO"])
        b, steps = cfg["batch_size"], 3
        losses = []
        for _ in range(steps):                             # train_step.train, one batch per step
            img = torch.rand(b, net["in_chans"], net["img_size"], net["img_size"])
            m = torch.stack([torch.cat([torch.tensor([0.0]), torch.from_numpy(masks()).float()]) for _ in range(b)])
            loss = diffusion([img, m])["loss"]
            loss.backward()
            if cfg.get("clip_grad", 1.0):
                torch.nn.utils.clip_grad_norm_(diffusion.parameters(), cfg["clip_grad"])
            opt.step()
            sched.step()
            opt.zero_grad()
            ema.update()
            losses.append(loss.item())

        state = {"step": steps, "model": diffusion.state_dict(), "opt": opt.state_dict(),
                 "ema": ema.state_dict(), "scaler": None}
        torch.save(state, os.path.join(OUT, "reference_state.pt"))

        # Outputs of the online and EMA networks, unmasked, as the wrapper's samplers call them.
        diffusion.eval()
        ema.ema_model.eval()
        g = torch.Generator().manual_seed(7)
        x = torch.randn(2, net["in_chans"], net["img_size"], net["img_size"], generator=g)
        t = torch.tensor([17, 733], dtype=torch.int64)
        with torch.no_grad():
            out_online = diffusion.model(x, t)
            out_ema = ema.ema_model.model(x, t)
        diff = float((out_online - out_ema).abs().max())
        assert diff > 1e-4, "EMA equals the online weights: the fixture would not tell them apart"
        save_file({"x": x.contiguous(), "t": t, "out_online": out_online.float().contiguous(),
                   "out_ema": out_ema.float().contiguous()},
                  os.path.join(OUT, "reference_outputs.safetensors"))

        # A .pt that is not a reference training state: the network's state dict not wrapped.
        bare = {"step": steps, "model": {k: v for k, v in list(model.state_dict().items())[:2]}}
        torch.save(bare, os.path.join(OUT, "not_a_training_state.pt"))

        n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
        print(f"losses {['%.5f' % l for l in losses]}, parameters {n_params}, "
              f"max |online - ema| {diff:.3g}, ema.step {int(ema.step)}")
        for name in sorted(os.listdir(OUT)):
            print(f"  {name}: {os.path.getsize(os.path.join(OUT, name))} bytes")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

"""A PyTorch re-implementation of the MaskDM network (MaskedUViT) and its training pieces.

Written from /work/shared/MASKDM.md and checked line by line against the behaviour of the reference
code (github.com/jiachenlei/maskdm: models/mask_uvit.py, gaussian_ddpm.py, datasets/masking_generator.py,
main.py, train_step.py). No code is copied; names of modules and parameters follow the reference so
that `state_dict()` keys are the reference's:

    encoder.encoder_pos_embed                      (1, 1+N, D)
    encoder.patch_embed.proj.{weight,bias}         (D, C, p, p), (D,)
    encoder.{in_blocks.i,mid_block,out_blocks.i}.{norm1,norm2}.{weight,bias}
    ....attn.qkv.weight                            (3D, D)      (never a bias tensor of its own)
    ....attn.q_bias, ....attn.v_bias               (D,)          only when qkv_bias (BEiT style; k bias is 0)
    ....attn.proj.{weight,bias}, ....mlp.fc1.{weight,bias}, ....mlp.fc2.{weight,bias}
    encoder.out_blocks.i.skip_linear.{weight,bias} (D, 2D), (D,)
    encoder.norm.{weight,bias}, encoder_to_output.{weight,bias} (p*p*C, D)

Only torch and numpy are needed (ema-pytorch for the training-step EMA).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class MaskDMConfig:
    """Network configuration with the reference's argument names (configs/*.yml `network:`)."""
    img_size: int | tuple[int, int] = 64      # int (square) or (H, W)
    patch_size: int = 4
    in_chans: int = 3
    encoder_embed_dim: int = 512
    encoder_depth: int = 13                   # depth // 2 in-blocks, one mid-block, depth // 2 out-blocks
    encoder_heads: int = 8
    mlp_ratio: float = 4.0
    qkv_bias: bool = False

    @property
    def image_hw(self) -> tuple[int, int]:
        if isinstance(self.img_size, (tuple, list)):
            return int(self.img_size[0]), int(self.img_size[1])
        return int(self.img_size), int(self.img_size)

    @property
    def grid(self) -> tuple[int, int]:
        h, w = self.image_hw
        return h // self.patch_size, w // self.patch_size

    @property
    def num_patches(self) -> int:
        gh, gw = self.grid
        return gh * gw

    def to_json(self) -> dict:
        d = asdict(self)
        if isinstance(self.img_size, (tuple, list)):
            d["img_size"] = list(self.img_size)
        return d


TINY = MaskDMConfig(img_size=32, patch_size=4, encoder_embed_dim=256, encoder_depth=9, encoder_heads=4)
"""The demo network (DESIGN.md): D 256, 9 blocks (4 in, mid, 4 out), 4 heads, 32 px, patch 4."""
SMALL = MaskDMConfig(img_size=64, patch_size=4, encoder_embed_dim=512, encoder_depth=13, encoder_heads=8)
"""The paper's small config at 64 px: 44,292,144 parameters."""


# --------------------------------------------------------------------------------------------------
# Pieces


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoid of integer steps (B,) -> (B, dim): concat(cos(t f), sin(t f)), f_i = exp(-ln(P) i / half).

    Computed in float32 whatever the model dtype, as the reference does (it builds the frequencies in
    float32 and calls `t.float()`); the caller casts the result to the model dtype. Odd `dim` gets a
    trailing zero column."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32)[:, None] * freqs[None, :]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def patchify(img: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, H, W) -> (B, N, p*p*C), raster order over the patch grid, patch vector layout (p1 p2 c)."""
    b, c, h, w = img.shape
    x = img.reshape(b, c, h // p, p, w // p, p)           # b c gh p1 gw p2
    x = x.permute(0, 2, 4, 3, 5, 1)                        # b gh gw p1 p2 c
    return x.reshape(b, (h // p) * (w // p), p * p * c)


def unpatchify(tokens: torch.Tensor, p: int, c: int, grid: tuple[int, int]) -> torch.Tensor:
    """(B, N, p*p*C) -> (B, C, gh*p, gw*p); inverse of `patchify` (grid = (gh, gw), N = gh*gw)."""
    b, n, _ = tokens.shape
    gh, gw = grid
    assert n == gh * gw, f"unpatchify: {n} tokens for grid {grid}"
    x = tokens.reshape(b, gh, gw, p, p, c).permute(0, 5, 1, 3, 2, 4)   # b c gh p1 gw p2
    return x.reshape(b, c, gh * p, gw * p)


class PatchEmbed(nn.Module):
    """Conv2d(C, D, kernel = stride = p) then flatten to tokens (B, N, D) in raster order."""

    def __init__(self, in_chans: int, dim: int, patch_size: int):
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class Attention(nn.Module):
    """Multi-head self-attention without mask. qkv has no bias tensor; with `qkv_bias` two vectors
    q_bias and v_bias are learnt and the k part of the bias is zero (BEiT style, as the reference)."""

    def __init__(self, dim: int, heads: int, qkv_bias: bool = False, use_sdpa: bool = False):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        if qkv_bias:
            self.q_bias = nn.Parameter(torch.zeros(dim))
            self.v_bias = nn.Parameter(torch.zeros(dim))
        else:
            self.q_bias = self.v_bias = None
        self.proj = nn.Linear(dim, dim)
        self.use_sdpa = use_sdpa

    def forward(self, x):
        b, n, d = x.shape
        bias = None
        if self.q_bias is not None:
            bias = torch.cat([self.q_bias, torch.zeros_like(self.q_bias), self.v_bias])
        qkv = F.linear(x, self.qkv.weight, bias)                          # (B, N, 3D), layout (k h hd)
        qkv = qkv.reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]                                  # (B, H, N, hd)
        if self.use_sdpa:
            o = F.scaled_dot_product_attention(q, k, v)
        else:
            o = torch.softmax((q * self.scale) @ k.transpose(-2, -1), dim=-1) @ v
        return self.proj(o.transpose(1, 2).reshape(b, n, d))


class Mlp(nn.Module):
    """Linear(D, int(D*ratio)) -> exact GELU -> Linear(hidden, D)."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        return self.fc2(F.gelu(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block; out-blocks first fuse the long skip: x = skip_linear([x, skip])."""

    def __init__(self, dim, heads, mlp_ratio, qkv_bias, skip=False, use_sdpa=False):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads, qkv_bias, use_sdpa)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.skip_linear = nn.Linear(2 * dim, dim) if skip else None

    def forward(self, x, skip=None):
        if self.skip_linear is not None:
            x = self.skip_linear(torch.cat([x, skip], dim=-1))
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class UViTEncoder(nn.Module):
    """Patch embedding, time token, position embedding, token dropping, U-shaped blocks, final norm."""

    def __init__(self, cfg: MaskDMConfig, use_sdpa: bool = False):
        super().__init__()
        d = cfg.encoder_embed_dim
        self.embed_dim = d
        self.patch_embed = PatchEmbed(cfg.in_chans, d, cfg.patch_size)
        mk = lambda skip: Block(d, cfg.encoder_heads, cfg.mlp_ratio, cfg.qkv_bias, skip, use_sdpa)
        self.in_blocks = nn.ModuleList([mk(False) for _ in range(cfg.encoder_depth // 2)])
        self.mid_block = mk(False)
        self.out_blocks = nn.ModuleList([mk(True) for _ in range(cfg.encoder_depth // 2)])
        self.norm = nn.LayerNorm(d)
        self.encoder_pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.num_patches, d))

    def forward(self, x, t, mask=None):
        tokens = self.patch_embed(x)                                       # (B, N, D)
        time = timestep_embedding(t, self.embed_dim).to(tokens.dtype)      # (B, D)
        h = torch.cat([time[:, None, :], tokens], dim=1) + self.encoder_pos_embed   # (B, 1+N, D)
        if mask is not None:
            b, _, d = h.shape
            h = h[~mask].reshape(b, -1, d)                                 # (B, 1+N_vis, D), raster order
        skips = []
        for blk in self.in_blocks:
            h = blk(h)
            skips.append(h)
        h = self.mid_block(h)
        for blk in self.out_blocks:
            h = blk(h, skips.pop())
        return self.norm(h)


class MaskedUViT(nn.Module):
    """MaskDM's network. forward(x (B,C,H,W), t (B,) int, mask (B, 1+N) bool, True = dropped or None)
    -> predicted noise (B, C, H, W) without a mask, (B, N_vis, p*p*C) visible tokens with a mask."""

    def __init__(self, cfg: MaskDMConfig, use_sdpa: bool = False):
        super().__init__()
        h, w = cfg.image_hw
        assert h % cfg.patch_size == 0 and w % cfg.patch_size == 0, "image sides must be multiples of p"
        self.cfg = cfg
        self.encoder = UViTEncoder(cfg, use_sdpa)
        self.encoder_to_output = nn.Linear(cfg.encoder_embed_dim, cfg.patch_size ** 2 * cfg.in_chans)
        self.reset_parameters()

    def reset_parameters(self):
        """The reference init: Linear weights truncated normal std 0.02 cut at +-2 (absolute), biases 0,
        LayerNorm 1/0, position embedding truncated normal std 0.02, patch conv PyTorch's default."""
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02, a=-2.0, b=2.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Conv2d):
                m.reset_parameters()
            elif isinstance(m, Attention) and m.q_bias is not None:
                nn.init.zeros_(m.q_bias)
                nn.init.zeros_(m.v_bias)
        nn.init.trunc_normal_(self.encoder.encoder_pos_embed, std=0.02, a=-2.0, b=2.0)

    def forward(self, x, t, mask=None):
        if mask is not None:
            check_mask(mask, x.shape[0], self.cfg.num_patches)
        out = self.encoder_to_output(self.encoder(x, t, mask))[:, 1:, :]  # drop the time token
        if mask is None:
            return unpatchify(out, self.cfg.patch_size, self.cfg.in_chans, self.cfg.grid)
        return out


def check_mask(mask: torch.Tensor, batch: int, n: int):
    """The reference does not check; a wrong mask there silently mixes samples. We refuse it."""
    if mask.dtype != torch.bool or tuple(mask.shape) != (batch, 1 + n):
        raise ValueError(f"mask must be bool ({batch}, {1 + n}), got {mask.dtype} {tuple(mask.shape)}")
    if bool(mask[:, 0].any()):
        raise ValueError("mask[:, 0] (the time token) must be False")
    counts = mask.sum(dim=1)
    if bool((counts != counts[0]).any()):
        raise ValueError(f"every sample needs the same number of masked tokens, got {counts.tolist()}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def forward_flops(cfg: MaskDMConfig, batch: int, visible: int) -> float:
    """Multiply-add FLOPs (2 per MAC) of one forward pass with `visible` patch tokens (+1 time token):
    patch embedding over all patches, per block qkv/proj/fc1/fc2 (24 D^2 per token) and attention
    (4 T D per token), skip_linear (4 D^2 per token) in out-blocks, output head. A training step is
    about three times this."""
    d, p, c = cfg.encoder_embed_dim, cfg.patch_size, cfg.in_chans
    tokens = visible + 1
    hidden = int(d * cfg.mlp_ratio)
    blocks = 2 * (cfg.encoder_depth // 2) + 1
    per_block = tokens * (2 * d * 3 * d + 2 * d * d + 2 * 2 * d * hidden) + 4 * tokens * tokens * d
    total = blocks * per_block + (cfg.encoder_depth // 2) * tokens * 2 * 2 * d * d
    total += cfg.num_patches * 2 * p * p * c * d + tokens * 2 * d * p * p * c
    return float(batch * total)


# --------------------------------------------------------------------------------------------------
# Loss


def maskdm_loss(model: MaskedUViT, xt: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                mask: torch.Tensor | None):
    """The reference's training loss (gaussian_ddpm.loss_fn with loss_type l2, objective pred_noise).

    `xt` is the network input, already noised over the whole image (x_t = q_sample(x0, t, eps)).
    With a mask: target = patchify(eps) (B, N, p*p*C) restricted to the visible patches
    (mask[:, 1:] False, raster order); loss = mean over samples of the per-sample mean squared error.
    All samples have the same visible count, so this is the plain mean over all visible elements.
    Without a mask (the reference always passes an all-False mask then): MSE(out, eps).
    Returns (loss scalar, network output)."""
    out = model(xt, t, mask)
    if mask is None:
        return F.mse_loss(out, eps), out
    target = patchify(eps, model.cfg.patch_size)
    b, _, c = target.shape
    target = target[~mask[:, 1:]].reshape(b, -1, c)
    per_sample = ((out - target) ** 2).reshape(b, -1).mean(dim=1)
    return per_sample.mean(), out


# --------------------------------------------------------------------------------------------------
# Masks (reference datasets/masking_generator.py; numpy generators; each returns (N,) bool, True = masked)


def patch_mask(grid: tuple[int, int], ratio: float, rng: np.random.Generator) -> np.ndarray:
    """Exactly int(ratio * N) patches, uniformly at random."""
    n = grid[0] * grid[1]
    m = np.zeros(n, dtype=bool)
    m[: int(ratio * n)] = True
    rng.shuffle(m)
    return m


def block_mask(grid: tuple[int, int], ratio: float, block: int, rng: np.random.Generator) -> np.ndarray:
    """Tile the grid into block x block tiles (raster order of tiles), mask int(ratio*N) // block^2 tiles."""
    gh, gw = grid
    assert gh % block == 0 and gw % block == 0, f"grid {grid} not divisible by block {block}"
    bh, bw = gh // block, gw // block
    num_mask = int(ratio * gh * gw) // (block * block)
    tiles = np.zeros(bh * bw, dtype=bool)
    tiles[:num_mask] = True
    rng.shuffle(tiles)
    # (bh bw) -> (bh block bw block): tile (i, j) covers rows i*block.., columns j*block..
    m = np.broadcast_to(tiles.reshape(bh, 1, bw, 1), (bh, block, bw, block))
    return m.reshape(gh * gw).copy()


def crop_mask(grid: tuple[int, int], crop: int, rng: np.random.Generator) -> np.ndarray:
    """One crop x crop square of patches at a uniform position stays visible; the rest is masked."""
    gh, gw = grid
    top = int(rng.integers(0, gh - crop + 1))
    left = int(rng.integers(0, gw - crop + 1))
    m = np.ones((gh, gw), dtype=bool)
    m[top:top + crop, left:left + crop] = False
    return m.reshape(-1)


def visible_count(kind: str, grid: tuple[int, int], ratio: float = 0.0, block: int = 1, crop: int = 0) -> int:
    n = grid[0] * grid[1]
    if kind == "patch":
        return n - int(ratio * n)
    if kind == "block":
        return n - (int(ratio * n) // (block * block)) * block * block
    if kind == "crop":
        return crop * crop
    return n


def batch_mask(masks: list[np.ndarray]) -> torch.Tensor:
    """Stack per-sample (N,) masks and prepend the never-dropped time token column -> (B, 1+N) bool."""
    m = np.stack(masks)
    return torch.from_numpy(np.concatenate([np.zeros((m.shape[0], 1), dtype=bool), m], axis=1))


# --------------------------------------------------------------------------------------------------
# Diffusion schedule, forward process, DDIM update


def linear_betas(T: int = 1000) -> torch.Tensor:
    """Reference linear schedule in float64: linspace(1e-4 * 1000/T, 0.02 * 1000/T, T)."""
    s = 1000.0 / T
    return torch.linspace(s * 1e-4, s * 0.02, T, dtype=torch.float64)


def cosine_betas(T: int = 1000, s: float = 0.008) -> torch.Tensor:
    x = torch.linspace(0, T, T + 1, dtype=torch.float64)
    ab = torch.cos(((x / T) + s) / (1 + s) * math.pi * 0.5) ** 2
    ab = ab / ab[0]
    return torch.clip(1 - ab[1:] / ab[:-1], 0, 0.999)


class Schedule:
    """Buffers computed in float64 and stored in float32, as the reference registers them."""

    def __init__(self, betas: torch.Tensor):
        ab = torch.cumprod(1.0 - betas, dim=0)
        self.T = betas.shape[0]
        self.alphas_cumprod = ab.float()
        self.sqrt_ab = ab.sqrt().float()
        self.sqrt_1mab = (1.0 - ab).sqrt().float()
        self.sqrt_recip_ab = (1.0 / ab).sqrt().float()
        self.sqrt_recipm1_ab = (1.0 / ab - 1).sqrt().float()

    def q_sample(self, x0, t, eps):
        """x_t = sqrt(ab_t) x0 + sqrt(1 - ab_t) eps over the whole image."""
        return self.sqrt_ab[t].view(-1, 1, 1, 1).to(x0.dtype) * x0 + \
            self.sqrt_1mab[t].view(-1, 1, 1, 1).to(x0.dtype) * eps

    def ddim_update(self, x, time: int, time_next: int, eps_pred, eta: float = 1.0, noise=None):
        """One DDIM step time -> time_next (time_next = -1 returns the clamped x0 estimate)."""
        x0 = (self.sqrt_recip_ab[time] * x - self.sqrt_recipm1_ab[time] * eps_pred).clamp(-1, 1)
        if time_next < 0:
            return x0
        a, an = self.alphas_cumprod[time], self.alphas_cumprod[time_next]
        sigma = eta * ((1 - a / an) * (1 - an) / (1 - a)).sqrt()
        c = (1 - an - sigma ** 2).sqrt()
        noise = torch.randn_like(x) if noise is None else noise
        return x0 * an.sqrt() + c * eps_pred + sigma * noise


def ddim_times(T: int, steps: int) -> list[int]:
    """[T-1, ..., -1]: linspace(-1, T-1, steps+1) cast to int (toward zero), reversed."""
    return list(reversed(torch.linspace(-1, T - 1, steps + 1).int().tolist()))


# --------------------------------------------------------------------------------------------------
# Optimiser, EMA, one training step


def make_optimizer(model: nn.Module, lr: float = 2e-4) -> torch.optim.AdamW:
    """The reference: AdamW over all parameters, betas (0.99, 0.99), eps 1e-8, weight decay 0.03."""
    return torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.99, 0.99), eps=1e-8, weight_decay=0.03)


def make_ema(model: nn.Module, beta: float = 0.999):
    """ema-pytorch EMA as the reference builds it (update_every 1, other arguments default)."""
    from ema_pytorch import EMA
    return EMA(model, beta=beta, update_every=1)


def train_step(model, opt, ema, schedule: Schedule, x0, mask, gen: torch.Generator | None = None,
               clip: float | None = None, bf16: bool = False) -> float:
    """One reference training step: t ~ U{0..T-1}, eps ~ N(0, I), x_t over the whole image,
    masked loss, backward, optional clipping, AdamW step, zero grads, EMA update. `bf16`: the
    forward pass under CPU autocast to bfloat16 (PyTorch's mixed precision; weights, gradients
    and optimizer state stay fp32)."""
    b = x0.shape[0]
    t = torch.randint(0, schedule.T, (b,), generator=gen)
    eps = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss, _ = maskdm_loss(model, schedule.q_sample(x0, t, eps), t, eps, mask)
    loss.backward()
    if clip:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    if ema is not None:
        ema.update()
    return float(loss.detach())


if __name__ == "__main__":
    m = MaskedUViT(SMALL)
    n = count_parameters(m)
    print("small 64px parameters:", n, "(expected 44,292,144)", "OK" if n == 44_292_144 else "MISMATCH")

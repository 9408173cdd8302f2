#!/usr/bin/env python3
"""Writes the golden fixtures Tests/TensorTests/Fixtures/golden_<name>.json from PyTorch.

Run from the repository root (rerunnable; output is deterministic for a given torch version):

    /work/main/.venv/bin/python scripts/make_golden.py

Every op is computed in float64 by torch (CPU) on inputs that are exactly representable in
float32 (drawn in float32, then widened), so the Swift side reads the very same inputs.
Gradients come from autograd with a fixed random upstream gradient `grad_output`.

JSON layout of one fixture file (one case per file; read by Tests/TensorTests/GoldenFixture.swift):

    {
      "op": "conv2d",                         # torch op the case exercises
      "description": "...",                   # one line: shapes and settings
      "generator": "scripts/make_golden.py (torch 2.13.0+cpu, float64)",
      "seed": 3,                              # torch.manual_seed used for this case
      "params": {"stride": [2, 2], "padding": [1, 1], "count_include_pad": true, "eps": 1e-05},
      "tensors": {
        "input": {"shape": [2, 3, 9, 7], "data": [... row-major ...]},
        "output": {...}, "grad_output": {...}, "grad_input": {...}, ...
      }
    }

- "params" values are a bool, a number or a list of numbers.
- "tensors" values hold "shape" (list of ints, [] for a scalar) and "data" (row-major numbers,
  len == product of shape). Inputs are float32-exact; results are float64 rounded to 9
  significant digits (float32 precision).
- Tensor keys follow torch argument names: inputs ("input", "weight", "bias", "q", "k", "v"),
  the forward result "output", the upstream gradient "grad_output", and "grad_<input name>" for
  each gradient (e.g. "grad_input", "grad_weight", "grad_bias", "grad_q"). Extra forward
  by-products are named plainly ("mean", "rstd", "indices").
"""
import json
import math
import os
import sys

import torch
import torch.nn.functional as F

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TensorTests", "Fixtures")
GENERATOR = f"scripts/make_golden.py (torch {torch.__version__}, float64)"
MAX_BYTES = 30_000


def f32(t):
    """A float64 leaf tensor whose values are exactly float32."""
    return t.to(torch.float32).to(torch.float64).requires_grad_(True)


def randn(*shape, scale=1.0):
    return f32(torch.randn(*shape, dtype=torch.float32) * scale)


def fmt(v):
    v = float(v)
    if not math.isfinite(v):
        raise ValueError(f"non-finite value {v} in a fixture")
    s = repr(float(f"{v:.9g}"))
    return s[:-2] if s.endswith(".0") else s


def tensor_json(t):
    t = t.detach().to(torch.float64).contiguous()
    data = ", ".join(fmt(v) for v in t.reshape(-1).tolist())
    return f'{{"shape": {json.dumps(list(t.shape))}, "data": [{data}]}}'


def write(name, op, description, seed, params, tensors):
    lines = [
        "{",
        f'  "op": {json.dumps(op)},',
        f'  "description": {json.dumps(description)},',
        f'  "generator": {json.dumps(GENERATOR)},',
        f'  "seed": {seed},',
        f'  "params": {json.dumps(params)},',
        '  "tensors": {',
        ",\n".join(f"    {json.dumps(k)}: {tensor_json(v)}" for k, v in tensors.items()),
        "  }",
        "}",
        "",
    ]
    text = "\n".join(lines)
    json.loads(text)  # must parse
    if len(text) > MAX_BYTES:
        raise ValueError(f"golden_{name}.json is {len(text)} bytes, over {MAX_BYTES}")
    path = os.path.join(OUT_DIR, f"golden_{name}.json")
    with open(path, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(path)} ({len(text)} bytes)")


def backward(output, inputs, seed):
    """Draws grad_output and returns it with the gradients of `inputs` (in order)."""
    torch.manual_seed(seed + 1000)
    grad_output = f32(torch.randn(*output.shape, dtype=torch.float32)).detach()
    grads = torch.autograd.grad(output, inputs, grad_output)
    return grad_output, grads


def softmax():
    seed = 1
    torch.manual_seed(seed)
    x = randn(3, 5, 7, scale=3.0)
    y = torch.softmax(x, dim=-1)
    g, (gx,) = backward(y, [x], seed)
    write("softmax", "softmax", "softmax over the last axis of (3, 5, 7)", seed, {"axis": -1},
          {"input": x, "output": y, "grad_output": g, "grad_input": gx})


def layer_norm():
    seed = 2
    torch.manual_seed(seed)
    eps = 1e-5
    x = randn(4, 6, 10, scale=2.0)
    with torch.no_grad():
        x += torch.linspace(-3, 3, 24, dtype=torch.float32).to(torch.float64).reshape(4, 6, 1)
    w = f32(1 + 0.5 * torch.randn(10, dtype=torch.float32))
    b = randn(10, scale=0.5)
    y = F.layer_norm(x, (10,), w, b, eps)
    mean = x.mean(dim=-1)
    rstd = 1 / torch.sqrt(x.var(dim=-1, unbiased=False) + eps)
    g, (gx, gw, gb) = backward(y, [x, w, b], seed)
    write("layer_norm", "layer_norm", "layer_norm over the last axis of (4, 6, 10) with weight and bias",
          seed, {"eps": eps},
          {"input": x, "weight": w, "bias": b, "output": y, "mean": mean, "rstd": rstd,
           "grad_output": g, "grad_input": gx, "grad_weight": gw, "grad_bias": gb})


def gelu():
    seed = 3
    torch.manual_seed(seed)
    x = f32(torch.linspace(-6, 6, 97, dtype=torch.float32))
    y = F.gelu(x, approximate="none")
    g, (gx,) = backward(y, [x], seed)
    write("gelu", "gelu", "exact (erf) gelu on 97 points evenly spaced over [-6, 6]", seed,
          {"approximate": False}, {"input": x, "output": y, "grad_output": g, "grad_input": gx})


def attention():
    seed = 4
    torch.manual_seed(seed)
    B, NH, T, HS = 2, 2, 5, 8
    scale = HS ** -0.5
    q, k, v = randn(B, NH, T, HS), randn(B, NH, T, HS), randn(B, NH, T, HS)
    y = F.scaled_dot_product_attention(q, k, v, scale=scale)
    explicit = torch.softmax(q @ k.transpose(-2, -1) * scale, dim=-1) @ v
    err = (y - explicit).abs().max().item()
    if err > 1e-12:
        raise AssertionError(f"scaled_dot_product_attention differs from the explicit formula by {err}")
    g, (gq, gk, gv) = backward(y, [q, k, v], seed)
    write("attention", "scaled_dot_product_attention",
          "softmax(q k^T * scale) v, (B, NH, T, HS) = (2, 2, 5, 8), scale = HS^-0.5, no mask", seed,
          {"scale": scale},
          {"q": q, "k": k, "v": v, "output": y, "grad_output": g, "grad_q": gq, "grad_k": gk, "grad_v": gv})


def conv2d(name, seed, kernel, stride, padding, description):
    torch.manual_seed(seed)
    x = randn(2, 3, 9, 7)
    w = randn(4, 3, *kernel, scale=0.5)
    b = randn(4, scale=0.5)
    y = F.conv2d(x, w, b, stride=stride, padding=padding)
    g, (gx, gw, gb) = backward(y, [x, w, b], seed)
    write(name, "conv2d", description, seed,
          {"kernel": list(kernel), "stride": list(stride), "padding": list(padding)},
          {"input": x, "weight": w, "bias": b, "output": y, "grad_output": g,
           "grad_input": gx, "grad_weight": gw, "grad_bias": gb})


def max_pool2d():
    seed = 7
    torch.manual_seed(seed)
    x = randn(2, 3, 9, 7)
    y, indices = F.max_pool2d(x, 3, stride=2, padding=1, return_indices=True)
    g, (gx,) = backward(y, [x], seed)
    write("max_pool2d", "max_pool2d",
          "max_pool2d of (2, 3, 9, 7), kernel 3x3, stride 2, padding 1; indices index each (H, W) plane",
          seed, {"kernel": [3, 3], "stride": [2, 2], "padding": [1, 1]},
          {"input": x, "output": y, "indices": indices.to(torch.float64), "grad_output": g, "grad_input": gx})


def avg_pool2d(name, seed, include_pad):
    torch.manual_seed(seed)
    x = randn(2, 3, 9, 7)
    y = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=include_pad)
    g, (gx,) = backward(y, [x], seed)
    write(name, "avg_pool2d",
          f"avg_pool2d of (2, 3, 9, 7), kernel 3x3, stride 1, padding 1, count_include_pad={include_pad}",
          seed, {"kernel": [3, 3], "stride": [1, 1], "padding": [1, 1], "count_include_pad": include_pad},
          {"input": x, "output": y, "grad_output": g, "grad_input": gx})


def main():
    torch.set_num_threads(1)
    os.makedirs(OUT_DIR, exist_ok=True)
    softmax()
    layer_norm()
    gelu()
    attention()
    conv2d("conv2d", 5, (3, 3), (2, 2), (1, 1),
           "conv2d (B, Cin, H, W) = (2, 3, 9, 7), Cout 4, kernel 3x3, stride 2, padding 1, with bias")
    conv2d("conv2d_1x3", 6, (1, 3), (1, 1), (0, 1),
           "conv2d (B, Cin, H, W) = (2, 3, 9, 7), Cout 4, kernel 1x3, stride 1, padding (0, 1), with bias")
    max_pool2d()
    avg_pool2d("avg_pool2d", 8, True)
    avg_pool2d("avg_pool2d_exclude_pad", 9, False)
    return 0


if __name__ == "__main__":
    sys.exit(main())

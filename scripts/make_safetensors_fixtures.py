#!/usr/bin/env python3
"""Writes the safetensors reader fixtures for Tests/TensorTests, using the official
`safetensors` package (with torch for BF16/F8/U16..U64) as an independent oracle.

Outputs (small, committed):
  Tests/TensorTests/Fixtures/safetensors_dtypes.safetensors  one tensor per dtype + a rank-0 and a
                                                            zero-size tensor + metadata
  Tests/TensorTests/Fixtures/safetensors_dtypes.json         expected values: for every key its dtype,
                                                            shape, the float32 bit patterns of the
                                                            values converted to F32, and (integer
                                                            dtypes) the values as int64

Rerun (from the repository root; safetensors is not a project dependency, so install it aside):
  .venv/bin/python -m pip install --no-deps --target /tmp/st-site safetensors
  PYTHONPATH=/tmp/st-site .venv/bin/python scripts/make_safetensors_fixtures.py
The output is deterministic.
"""
import json
import os
import sys

import numpy as np
import torch

try:
    from safetensors.torch import save_file
except ImportError:
    sys.exit("safetensors is not importable; see this script's docstring for the install line")

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "TensorTests", "Fixtures")
inf, nan = float("inf"), float("nan")

floats = {
    # key: (torch dtype, shape, values); edge values: signed zero, max, min normal, subnormals, inf, nan
    "f32": (torch.float32, [3, 4], [0.0, -0.0, 1.0, -1.5, 3.4028234663852886e38, 1.1754943508222875e-38,
                                    1.401298464324817e-45, 1e-40, inf, -inf, nan, 0.1]),
    "f16": (torch.float16, [2, 6], [0.0, -0.0, 1.0, -2.5, 65504.0, 6.103515625e-05,
                                    5.960464477539063e-08, -1.5e-05, inf, -inf, nan, 0.333]),
    "bf16": (torch.bfloat16, [12], [0.0, -0.0, 1.0, -2.5, 3.3895313892515355e38, 1.1754943508222875e-38,
                                    9.183549615799121e-41, -1e-39, inf, -inf, nan, 0.333]),
    "f64": (torch.float64, [11], [0.0, -0.0, 1.0, 0.1, 1e300, -1e300, 1e-50, 3.4028235677973366e38,
                                  1.0000000596046448, nan, -inf]),
    "f8_e4m3": (torch.float8_e4m3fn, [7], [0.0, 1.0, -2.0, 448.0, 0.001953125, -0.013671875, nan]),
    "f8_e5m2": (torch.float8_e5m2, [8], [0.0, 1.0, -2.0, 57344.0, 1.52587890625e-05, inf, -inf, nan]),
    "scalar": (torch.float32, [], [7.25]),
    "empty": (torch.float32, [2, 0], []),
}
ints = {
    "i64": (torch.int64, [7], [0, 1, -1, 2**53 + 1, -2**62, 2**63 - 1, -2**63]),
    "i32": (torch.int32, [2, 3], [0, 1, -1, 2**31 - 1, -2**31, 16777217]),
    "i16": (torch.int16, [4], [0, -32768, 32767, 7]),
    "i8": (torch.int8, [4], [0, -128, 127, -5]),
    "u8": (torch.uint8, [4], [0, 1, 128, 255]),
    "u16": (torch.uint16, [3], [0, 65535, 300]),
    "u32": (torch.uint32, [3], [0, 2**32 - 1, 70000]),
    "u64": (torch.uint64, [2, 2], [0, 1, 2**63 + 2**40, 2**64 - 2**40]),  # exact in float32
    "bool": (torch.bool, [1, 3], [True, False, True]),
}
np_int = {torch.int64: np.int64, torch.int32: np.int32, torch.int16: np.int16, torch.int8: np.int8,
          torch.uint8: np.uint8, torch.uint16: np.uint16, torch.uint32: np.uint32, torch.uint64: np.uint64,
          torch.bool: np.bool_}

tensors, expected = {}, {}
for key, (dtype, shape, values) in floats.items():
    t = torch.tensor(values, dtype=torch.float64).to(dtype).reshape(shape)
    as_f32 = t.to(torch.float32).reshape(-1).numpy()  # exact for narrower types, rounded for F64
    tensors[key] = t
    expected[key] = {"shape": shape, "f32_bits": as_f32.view(np.uint32).tolist()}
for key, (dtype, shape, values) in ints.items():
    a = np.array(values, dtype=np_int[dtype])
    tensors[key] = torch.from_numpy(a.copy()).reshape(shape)
    expected[key] = {"shape": shape, "f32_bits": a.astype(np.float32).view(np.uint32).tolist(),
                     "int64": [int(v) for v in values] if key != "u64" else None}

metadata = {"format": "pt", "note": "fixture \u00fc \"quoted\""}
path = os.path.join(OUT, "safetensors_dtypes.safetensors")
save_file(tensors, path, metadata=metadata)
os.chmod(path, 0o644)
with open(path, "rb") as f:
    raw = f.read()
n = int.from_bytes(raw[:8], "little")
header = json.loads(raw[8:8 + n])
for key in expected:
    expected[key]["dtype"] = header[key]["dtype"]
    expected[key]["data_offsets"] = header[key]["data_offsets"]
with open(os.path.join(OUT, "safetensors_dtypes.json"), "w") as f:
    json.dump({"metadata": metadata, "tensors": expected}, f, indent=1, sort_keys=True)
    f.write("\n")
print(f"wrote {path} ({len(raw)} bytes, {len(tensors)} tensors)")

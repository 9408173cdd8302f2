#!/usr/bin/env python3
"""Compares the tensors (not the metadata) of two safetensors files byte for byte; exit 1 if any differ."""
import json, struct, sys
def load(p):
    b = open(p, 'rb').read()
    n = struct.unpack('<Q', b[:8])[0]
    h = json.loads(b[8:8+n]); base = 8 + n
    return {k: b[base+v['data_offsets'][0]: base+v['data_offsets'][1]] for k, v in h.items() if k != '__metadata__'}, h.get('__metadata__', {})
a, ma = load(sys.argv[1]); b, mb = load(sys.argv[2])
diff = [k for k in a if a[k] != b.get(k)]
print(f"{len(a)} tensors vs {len(b)}; differing: {len(diff)} {diff[:3]}; steps {ma.get('step')} / {mb.get('step')}")
sys.exit(1 if diff or set(a) != set(b) else 0)

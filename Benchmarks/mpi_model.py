#!/usr/bin/env python3
"""Modelled data-parallel scaling of MaskDM's training step over N nodes (issue 14).

Per step, every node computes the forward and backward of its share of the global batch and
then all-reduces the fp32 gradient arena (4 bytes per parameter) with a ring all-reduce:

    T_ring = 2 (N - 1) / N * S / bandwidth + 2 (N - 1) * buckets * latency

The compute time of a node comes from a measured single-node step (this machine, `make mpi` +
Benchmarks/mpi_scaling.py), scaled by FLOPs to the other configs and batch shares:

    T_step(b) = fixed + b * per_image          (fixed = optimizer + EMA over the arena)

Without overlap the step takes T_step + T_ring; with the all-reduce started bucket by bucket
during the backward (which is about 2/3 of the compute), up to that much of T_ring is hidden.
Efficiency = T_step(b) / step time (1 = perfect scaling of throughput).

    python3 Benchmarks/mpi_model.py --per-image-unmasked 0.46 --per-image-masked 0.047 --fixed 0.15
"""
import argparse

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--per-image-unmasked", type=float, required=True, help="seconds per image, small@64 unmasked, one node")
p.add_argument("--per-image-masked", type=float, required=True, help="seconds per image, small@64 block4 90%%, one node")
p.add_argument("--fixed", type=float, required=True, help="seconds of optimizer + EMA per step for small (44.3M parameters)")
p.add_argument("--latency-us", type=float, default=30.0, help="per-message latency of the network (TCP ~30 us)")
p.add_argument("--bucket-mb", type=float, default=16.0, help="all-reduce bucket size (4M floats)")
args = p.parse_args()


def forward_flops(D, depth, tokens, patch, channels=3):
    # Linear layers: qkv 3D^2, proj D^2, MLP 8D^2 per block; the long skips' Linear(2D, D) in the
    # (depth - 1) / 2 output blocks; patch embedding and the final projection.
    linear = depth * 12 * D * D + (depth - 1) // 2 * 2 * D * D + 2 * D * patch * patch * channels
    attention = depth * 4 * tokens * tokens * D               # QK^T and AV
    return 2 * linear * tokens + attention


def params(D, depth, tokens, patch, channels=3):
    blocks = depth * (12 * D * D + 13 * D) + (depth - 1) // 2 * (2 * D * D + D)
    return blocks + (tokens + 1) * D + 2 * D * patch * patch * channels   # + position embeddings, patch in/out


configs = {
    # name: (D, depth, image, patch, visible fraction, global batch)
    "small@64 pre-train (block4 90%, b256)": (512, 13, 64, 4, 0.1, 256),
    "small@64 fine-tune (b128)": (512, 13, 64, 4, 1.0, 128),
    "B@256 pre-train (block4 90%, b256)": (768, 13, 256, 4, 0.1, 256),
    "B@256 fine-tune (b32)": (768, 13, 256, 4, 1.0, 32),
}
small = forward_flops(512, 13, 257, 4)
small_masked = forward_flops(512, 13, 1 + 26, 4)   # 26 of 256 patches visible + the time token


def per_image(D, depth, image, patch, visible):
    grid = (image // patch) ** 2
    tokens = 1 + grid - int((1 - visible) * grid)          # the reference's int(ratio * count) masked
    f = forward_flops(D, depth, tokens, patch)
    if visible < 1:
        return args.per_image_masked * f / small_masked
    return args.per_image_unmasked * f / small


print("| config | params | grad MB | nodes | local batch | compute s | ring s @10 / 25 / 100 Gb/s | efficiency no overlap @10 / 25 / 100 | with overlap @10 / 25 / 100 |")
print("|---|---:|---:|---:|---:|---:|---|---|---|")
for name, (D, depth, image, patch, visible, batch) in configs.items():
    P = params(D, depth, (image // patch) ** 2, patch)
    S = 4 * P
    fixed = args.fixed * P / 44.3e6
    for n in (8, 16, 32, 64):
        if batch % n:
            continue
        b = batch // n
        compute = fixed + b * per_image(D, depth, image, patch, visible)
        buckets = max(1, int(S / (args.bucket_mb * 2 ** 20) + 0.999))
        rings, eff, effo = [], [], []
        for gbps in (10, 25, 100):
            t = 2 * (n - 1) / n * S / (gbps * 1e9 / 8) + 2 * (n - 1) * buckets * args.latency_us * 1e-6
            hidden = min(t, (compute - fixed) * 2 / 3)
            rings.append(f"{t:.3f}")
            eff.append(f"{100 * compute / (compute + t):.0f}%")
            effo.append(f"{100 * compute / (compute + t - hidden):.0f}%")
        print(f"| {name} | {P / 1e6:.1f}M | {S / 2 ** 20:.0f} | {n} | {b} | {compute:.2f} | {' / '.join(rings)} | {' / '.join(eff)} | {' / '.join(effo)} |")

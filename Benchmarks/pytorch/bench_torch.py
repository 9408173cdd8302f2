#!/usr/bin/env python3
"""The PyTorch side of the benchmarks: one JSON object per line, case names as maskdm-bench's.

    .venv/bin/python Benchmarks/pytorch/bench_torch.py matmul|attention|step|all [--quick] [--threads N]
                                                      [--attn sdpa|vanilla] [--no-isolate]
    .venv/bin/python Benchmarks/pytorch/bench_torch.py step|sample --case NAME --serve   (driven by lockstep.py)
    .venv/bin/python Benchmarks/pytorch/bench_torch.py gemm-shapes NAME:ROWS:IN:OUT ... [--threads N]

Suites:
  matmul     matmul_<layer>_<unmasked|masked90> for the small config's Linear shapes at batch 16
             (257 / 33 tokens) and matmul_square_<s>; F.linear(x, w) (x W^T, no bias).
  gemm-shapes  a linear layer's three training products, named as maskdm-bench's gemm-shapes
             (gemm_NAME: y = x W^T; gemm_NAME_dW: dy^T x; gemm_NAME_dx: dy W), each on fresh
             random operands, median of 3 alternating timings as maskdm-bench takes them.
  attention  name "attention", shape "(B, NH, T, HS)": F.scaled_dot_product_attention forward
             (no grad) and forward + backward.
  step       whole training steps of the MaskedUViT (forward, loss, backward, AdamW, EMA update):
             step_tiny_unmasked, step_tiny_block4_90, step_small_unmasked, step_small_block4_90, and
             sample_step_small (one no-grad forward + one DDIM update). Each case runs in its own
             process (unless --no-isolate) so that peak_rss_mb is that case's own peak.
Fields: name, shape or config, threads, median_ms, gflops (where meaningful), peak_rss_mb
(ru_maxrss of the process; for matmul/attention it is the process's running peak, as in maskdm-bench),
cpu_share (process CPU time / (wall time x threads) over the timed runs of the last timing; well
below 1 means the cores were shared with other processes and the figure is noisy), median_cpu_ms
(process CPU time per run, median; with --threads 1 a contention-robust figure on a busy machine).
"""
import argparse
import itertools
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import maskdm_torch as mt  # noqa: E402
from compare import parse_linear_shape  # noqa: E402  (the gemm-shapes syntax both sides share)
from reference_stubs import StubImports  # noqa: E402


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0   # Linux: kB


CPU_SHARE = {"value": float("nan"), "cpu_ms": float("nan")}


def median_ms(fn, warmup: int, reps: int) -> float:
    """Median wall milliseconds of `reps` runs after `warmup`. Also records in CPU_SHARE the process
    CPU time over wall time x threads during the timed runs: well below 1 means other processes took
    the cores (the machine is shared), so the figure is not trustworthy."""
    for _ in range(warmup):
        fn()
    times, cpu_times = [], []
    r0, w0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        cpu_times.append((time.process_time() - c0) * 1000.0)
    CPU_SHARE["cpu_ms"] = statistics.median(cpu_times)
    r1, w1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    CPU_SHARE["value"] = cpu / ((w1 - w0) * torch.get_num_threads())
    return statistics.median(times)


def served_median_ms(fn, warmup: int) -> float:
    """Lock-step timing driven by another process (Benchmarks/lockstep.py), as maskdm-bench's
    `step-case --serve`: after `warmup` runs print {"ready": 1}; for every "step" line on stdin run
    `fn` once and print {"ms": T}; at "end" or the end of input return the median (NaN if none)."""
    for _ in range(warmup):
        fn()
    print(json.dumps({"ready": 1}), flush=True)
    times = []
    for line in sys.stdin:
        line = line.strip()
        if line == "end":
            break
        if line != "step":
            print(json.dumps({"error": f"unknown request '{line}'; expected step or end"}), flush=True)
            continue
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000.0)
        print(json.dumps({"ms": times[-1]}), flush=True)
    return statistics.median(times) if times else float("nan")


def emit(d: dict):
    d = {**d, "cpu_share": CPU_SHARE["value"], "median_cpu_ms": CPU_SHARE["cpu_ms"]}
    out = {}
    for k, v in d.items():
        out[k] = float(f"{v:.4g}") if isinstance(v, float) else v
    print(json.dumps(out), flush=True)


# ------------------------------------------------------------------------------------------ matmul

def bench_matmul(args):
    cases = []
    for label, tokens in (("unmasked", 257), ("masked90", 33)):
        m = 16 * tokens
        cases += [(f"qkv_{label}", m, 512, 1536), (f"proj_{label}", m, 512, 512),
                  (f"fc1_{label}", m, 512, 2048), (f"fc2_{label}", m, 2048, 512),
                  (f"skip_linear_{label}", m, 1024, 512)]
    for s in ((256, 1024) if args.quick else (256, 512, 1024, 2048)):
        cases.append((f"square_{s}", s, s, s))
    g = torch.Generator().manual_seed(0)
    for name, m, k, n in cases:
        x = torch.randn(m, k, generator=g)
        w = torch.randn(n, k, generator=g)                      # (out, in): x W^T
        flops = 2.0 * m * n * k
        with torch.no_grad():
            ms = median_ms(lambda: F.linear(x, w), warmup=1, reps=product_reps(flops))
        emit({"name": f"matmul_{name}", "shape": f"({m}x{k})x({k}x{n})^T", "threads": args.threads,
              "median_ms": ms, "gflops": flops / ms / 1e6})


def product_reps(flops: float) -> int:
    """Timed runs of one matrix product: about 20 GFLOP in all, 5 to 50 (as maskdm-bench's)."""
    return max(5, min(50, int(2e10 / flops)))


def bench_gemm_shapes(args, layers):
    g = torch.Generator().manual_seed(0)
    for name, rows, in_dim, out_dim in layers:
        x = torch.randn(rows, in_dim, generator=g)
        w = torch.randn(out_dim, in_dim, generator=g)
        dy = torch.randn(rows, out_dim, generator=g)
        products = [("", "NT", rows, out_dim, in_dim, lambda: F.linear(x, w)),
                    ("_dW", "TN", out_dim, in_dim, rows, lambda: dy.t().mm(x)),
                    ("_dx", "NN", rows, in_dim, out_dim, lambda: dy.mm(w))]
        for suffix, layout, m, n, k, fn in products:
            flops = 2.0 * m * n * k
            with torch.no_grad():
                ms = sorted(median_ms(fn, warmup=1, reps=product_reps(flops)) for _ in range(3))[1]
            emit({"name": f"gemm_{name}{suffix}", "shape": f"{layout} m {m} n {n} k {k}", "threads": args.threads,
                  "median_ms": ms, "gflops": flops / ms / 1e6})


# --------------------------------------------------------------------------------------- attention

def bench_attention(args):
    cases = [(16, 8, 257, 64), (16, 8, 33, 64), (64, 8, 65, 64), (4, 12, 417, 64)]
    if not args.quick:
        cases.append((1, 12, 4097, 64))
    g = torch.Generator().manual_seed(1)
    for b, nh, t, hs in cases:
        q, k, v, up = (torch.randn(b, nh, t, hs, generator=g) for _ in range(4))
        fl = 4.0 * b * nh * t * t * hs
        reps = max(3, min(20, int(3e9 / fl)))
        with torch.no_grad():
            fwd = median_ms(lambda: F.scaled_dot_product_attention(q, k, v), warmup=1, reps=reps)
        qg, kg, vg = (a.clone().requires_grad_(True) for a in (q, k, v))

        def fwd_bwd():
            for a in (qg, kg, vg):
                a.grad = None
            F.scaled_dot_product_attention(qg, kg, vg).backward(up)

        fb = median_ms(fwd_bwd, warmup=1, reps=reps)
        emit({"name": "attention", "shape": f"({b}, {nh}, {t}, {hs})", "threads": args.threads,
              "median_ms": fwd, "gflops": fl / fwd / 1e6, "fwd_bwd_ms": fb,
              "fwd_bwd_gflops": 3.5 * fl / fb / 1e6, "peak_rss_mb": peak_rss_mb()})


# -------------------------------------------------------------------------------------------- step

STEP_CASES = {
    # name: (config name, config, batch, mask kind, ratio, block)
    "step_tiny_unmasked": ("tiny", mt.TINY, 32, None, 0.0, 1),
    "step_tiny_block4_90": ("tiny", mt.TINY, 32, "block", 0.9, 4),
    "step_small_unmasked": ("small", mt.SMALL, 16, None, 0.0, 1),
    "step_small_block4_90": ("small", mt.SMALL, 16, "block", 0.9, 4),
    "sample_step_small": ("small", mt.SMALL, 16, "sample", 0.0, 1),
}


def config_string(name):
    label, cfg, batch, kind, ratio, block = STEP_CASES[name]
    h, w = cfg.image_hw
    px = f"{h}px" if h == w else f"{h}x{w}px"
    tail = {None: "unmasked", "sample": "ddim eta1"}.get(kind, f"{kind}{block} r{ratio}")
    return f"{label} {px} b{batch} {tail}"


def reference_model(cfg, repo):
    """The reference repository's own MaskedUViT (models/mask_uvit.py) with `cfg`'s shape."""
    sys.meta_path.insert(0, StubImports())
    sys.path.insert(0, repo)
    import warnings
    warnings.filterwarnings("ignore")
    from models.mask_uvit import MaskedUViT as RefModel
    h, w = cfg.image_hw
    model = RefModel(img_size=h if h == w else (h, w), patch_size=cfg.patch_size, in_chans=cfg.in_chans,
                     encoder_embed_dim=cfg.encoder_embed_dim, encoder_depth=cfg.encoder_depth,
                     encoder_heads=cfg.encoder_heads, mlp_ratio=cfg.mlp_ratio, qkv_bias=cfg.qkv_bias)
    model.cfg = cfg                           # what maskdm_torch's loss reads (the patch size)
    return model


def run_step_case(name, args):
    label, cfg, batch, kind, ratio, block = STEP_CASES[name]
    torch.manual_seed(0)
    if args.model == "reference":
        model = reference_model(cfg, args.reference_repo)
    else:
        model = mt.MaskedUViT(cfg, use_sdpa=(args.attn == "sdpa"))
    sched = mt.Schedule(mt.linear_betas(1000))
    gen = torch.Generator().manual_seed(0)
    rng = np.random.default_rng(0)
    h, w = cfg.image_hw
    x0 = torch.rand(batch, cfg.in_chans, h, w, generator=gen) * 2 - 1
    warmup, reps = (1, 3) if args.quick else (2, 5)
    visible = cfg.num_patches
    if kind == "sample":
        x = torch.randn(batch, cfg.in_chans, h, w, generator=gen)
        times = mt.ddim_times(1000, 250)

        def step():
            with torch.inference_mode():
                t = torch.full((batch,), times[0], dtype=torch.long)
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
                    eps = model(x, t)
                sched.ddim_update(x, times[0], times[1], eps.float())

        flops = mt.forward_flops(cfg, batch, visible)
    else:
        opt = mt.make_optimizer(model)
        ema = mt.make_ema(model, beta=0.999)
        ema.update()                          # initialise the EMA copy
        ema.step.fill_(10_000)                # then measure the steady-state lerp, not the early copies
        if kind == "block":
            visible = mt.visible_count("block", cfg.grid, ratio, block)
        masks = itertools.cycle([mt.batch_mask([mt.block_mask(cfg.grid, ratio, block, rng) for _ in range(batch)])
                      if kind == "block" else None for _ in range(warmup + reps)])

        def step():
            mt.train_step(model, opt, ema, sched, x0, next(masks), gen, bf16=args.bf16)

        flops = 3.0 * mt.forward_flops(cfg, batch, visible)
    ms = served_median_ms(step, warmup) if args.serve else median_ms(step, warmup=warmup, reps=reps)
    emit({"name": name, "config": config_string(name), "threads": args.threads, "median_ms": ms,
          "gflops": flops / ms / 1e6, "tokens": visible + 1, "params": mt.count_parameters(model),
          "attention": "reference" if args.model == "reference" else args.attn, "model": args.model,
          "precision": "bf16-autocast" if args.bf16 else "fp32",
          "peak_rss_mb": peak_rss_mb()})


# -------------------------------------------------------------------------------------------- sample

DEMO = mt.MaskDMConfig(img_size=16, patch_size=2, encoder_embed_dim=256, encoder_depth=9, encoder_heads=4)
SAMPLE_CASES = [
    # name, config, batch, sampler, steps  (as maskdm-bench's SamplingCase.all)
    ("sample_demo_ddim100", DEMO, 64, "ddim", 100),
    ("sample_demo_dpm20", DEMO, 64, "dpm", 20),
    ("sample_small_ddim100", mt.SMALL, 4, "ddim", 100),
    ("sample_small_dpm20", mt.SMALL, 4, "dpm", 20),
    ("sample_small_dpm20_b16", mt.SMALL, 16, "dpm", 20),
]


def dpm_solver_pp_2m(model, sched, x, steps):
    """DPM-Solver++(2M) over quadratically spaced timesteps, for throughput: data prediction
    x0 = (x - sigma eps) / alpha clamped, second-order multistep, first order at the last step.
    One network call per step, as the Swift DPMSolverPlusPlus2M."""
    T = sched.T
    ts = [int(round((T - 1) * (1 - (i / steps)) ** 2)) for i in range(steps)] + [0]
    ab = sched.alphas_cumprod.double()
    lam = lambda t: 0.5 * torch.log(ab[t] / (1 - ab[t]))
    prev_x0, prev_h = None, None
    for i in range(steps):
        t, tn = ts[i], ts[i + 1]
        eps = model(x, torch.full((x.shape[0],), t, dtype=torch.long))
        a, s_ = ab[t].sqrt().float(), (1 - ab[t]).sqrt().float()
        x0 = ((x - s_ * eps) / a).clamp(-1, 1)
        if tn == t:
            x = x0
            break
        an, sn = ab[tn].sqrt().float(), (1 - ab[tn]).sqrt().float()
        h = float(lam(tn) - lam(t))
        d = x0 if prev_x0 is None or i == steps - 1 else \
            (1 + h / (2 * prev_h)) * x0 - (h / (2 * prev_h)) * prev_x0
        x = (sn / s_) * x - an * (torch.expm1(torch.tensor(-h))).float() * d
        prev_x0, prev_h = x0, h
    return x


def bench_sample(args):
    for name, cfg, batch, kind, steps in SAMPLE_CASES:
        if args.case and name not in args.case:
            continue
        if not args.case and args.quick and "small_ddim" in name:
            continue
        torch.manual_seed(0)
        model = mt.MaskedUViT(cfg, use_sdpa=(args.attn == "sdpa"))
        sched = mt.Schedule(mt.linear_betas(1000))
        h, w = cfg.image_hw
        x = torch.randn(batch, cfg.in_chans, h, w)
        def run():
            if kind == "ddim":
                times = mt.ddim_times(1000, steps)
                y = x
                for t, tn in zip(times[:-1], times[1:]):
                    eps = model(y, torch.full((batch,), t, dtype=torch.long))
                    y = sched.ddim_update(y, t, tn, eps)
            else:
                dpm_solver_pp_2m(model, sched, x, steps)

        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.bf16):
            model(x, torch.full((batch,), 500, dtype=torch.long))                 # warm-up
            if args.serve:
                seconds = served_median_ms(run, warmup=0) / 1000
            else:
                start = time.perf_counter()
                run()
                seconds = time.perf_counter() - start
        label = f"{h}px p{cfg.patch_size} D{cfg.encoder_embed_dim} b{batch} {kind}{steps}"
        emit({"name": name, "config": label, "threads": args.threads, "median_ms": seconds * 1000,
              "images_per_second": batch / seconds, "peak_rss_mb": peak_rss_mb(),
              "precision": "bf16-autocast" if args.bf16 else "fp32"})


def bench_step(args):
    names = args.case if args.case else list(STEP_CASES)
    for name in names:
        if args.no_isolate or (args.case and len(args.case) == 1):
            run_step_case(name, args)
            continue
        cmd = [sys.executable, os.path.abspath(__file__), "step", "--case", name, "--threads", str(args.threads),
               "--attn", args.attn, "--model", args.model] + (["--quick"] if args.quick else []) \
            + (["--reference-repo", args.reference_repo] if args.reference_repo else []) \
            + (["--bf16"] if args.bf16 else [])
        r = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
        sys.stdout.write(r.stdout)
        sys.stdout.flush()
        if r.returncode != 0:
            sys.exit(f"step case {name} failed with exit code {r.returncode}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("suite", nargs="?", default="all",
                    choices=["matmul", "gemm-shapes", "attention", "step", "sample", "all"])
    ap.add_argument("shapes", nargs="*", metavar="NAME:ROWS:IN:OUT", help="gemm-shapes: the linear layers")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", choices=["sdpa", "vanilla"], default="sdpa",
                    help="attention in the step cases: sdpa (fastest) or vanilla (the reference's CPU path)")
    ap.add_argument("--no-isolate", action="store_true", help="run step cases in this process")
    ap.add_argument("--bf16", action="store_true",
                    help="step and sample cases: the network under torch.autocast('cpu', bfloat16) (mixed precision)")
    ap.add_argument("--model", choices=["ours", "reference"], default="ours",
                    help="step cases: our PyTorch port (maskdm_torch.py) or the reference repository's models/mask_uvit.py")
    ap.add_argument("--reference-repo", help="a checkout of github.com/jiachenlei/maskdm (for --model reference); "
                    "its imports timm and einops must be importable (PYTHONPATH)")
    ap.add_argument("--serve", action="store_true",
                    help="with one --case: a step (or a whole sampling run) per 'step' line on stdin (Benchmarks/lockstep.py)")
    ap.add_argument("--case", action="append", choices=list(STEP_CASES) + [c[0] for c in SAMPLE_CASES],
                    help="only the named step cases or sampling runs (repeatable); a single step case runs in this process")
    args = ap.parse_args()
    if args.case and args.suite not in ("step", "sample"):
        ap.error("--case selects step or sample cases")
    if args.case and any((c in STEP_CASES) != (args.suite == "step") for c in args.case):
        ap.error(f"--case names a case of another suite than {args.suite}")
    if args.serve and (args.suite not in ("step", "sample") or len(args.case) != 1):
        ap.error("--serve needs the step or sample suite and exactly one --case")
    if args.model == "reference" and not args.reference_repo:
        ap.error("--model reference needs --reference-repo")
    if (args.suite == "gemm-shapes") != bool(args.shapes):
        ap.error("NAME:ROWS:IN:OUT shapes go with the gemm-shapes suite, which needs at least one")
    try:   # every shape is checked before the first is timed
        layers = [parse_linear_shape(spec) for spec in args.shapes]
    except ValueError as e:
        ap.error(str(e))
    torch.set_num_threads(args.threads)
    if args.suite == "gemm-shapes":
        bench_gemm_shapes(args, layers)
    if args.suite in ("matmul", "all"):
        bench_matmul(args)
    if args.suite in ("attention", "all"):
        bench_attention(args)
    if args.suite in ("step", "all"):
        bench_step(args)
    if args.suite == "sample":
        bench_sample(args)


if __name__ == "__main__":
    main()

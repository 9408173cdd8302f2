#!/usr/bin/env python3
"""Training steps (or sampling runs) of Swift and PyTorch alternated one by one, each side a live process.

    .venv/bin/python Benchmarks/lockstep.py [--case NAME ...] [--pairs 21] [--threads 2]
                                            [--no-reference] [--gap 0.05] [--avx2 | --bf16] [--json]
    .venv/bin/python Benchmarks/lockstep.py --case sample_demo_dpm20 --case sample_small_dpm20 --pairs 9

`compare.py step` alternates whole processes, minutes apart on the slow cases; on a VM whose speed
drifts by 20% from one minute to the next its per-round ratios spread widely. Here every side of a
case (maskdm-bench `step-case NAME --serve`, bench_torch.py `step --case NAME --serve` with our
PyTorch port, and the same with the reference repository's models/mask_uvit.py when it is at hand)
starts once, warms up (two steps) and then waits on its standard input. Each round asks every side
for one step in turn, the order rotating from round to round, so the steps compared are seconds
apart and never share the cores (a waiting side sleeps; `--gap` seconds between steps let the other
side's spinning threads go to sleep first). Per case it prints each side's median step, the median
of the rounds' ratios (other/swift: > 1 means Swift is faster) with their range and quartiles, and
the Swift side's GFLOP/s and its share of the highest FMA peak measured during the run
(`maskdm-bench peak` at the start, and each Swift process's own reading). With both steps of a network it prints the
masked speedups (unmasked median over masked median). --avx2 and --bf16 set both sides' instruction
sets and precision as in compare.py (AVX2 emulated on an AVX-512 CPU; bf16 GEMM operands against
torch.autocast), and the peak is then that of the AVX2 FMA loop or the bf16 dot product. A
sampling run's case (`sample_*` but `sample_step_small`) alternates whole runs of `maskdm-bench
sample` and `bench_torch.py sample` the same way (our port only: the reference repository's
sampler is not part of it).

Nothing is built here: build the Swift side first with
    swift build -c release --product maskdm-bench
The reference model comes from `make reference` (.cache/reference), as in compare.py.
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (paths, case names, the CPU's name, the reference checkout)


class Server:
    """One side of a case: a process that runs a step per request (the `--serve` protocol)."""

    def __init__(self, label: str, cmd: list[str]):
        self.label = label
        print(f"starting {label}:", " ".join(cmd), file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(cmd, cwd=compare.ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     bufsize=1)
        self.read()                       # {"ready": 1} once its warm-up steps are done

    def read(self) -> dict:
        """The next JSON line; exits naming the side when it ends or reports an error."""
        for line in self.proc.stdout:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            if "error" in row:
                sys.exit(f"error from {self.label}: {row['error']}")
            return row
        sys.exit(f"error: {self.label} ended (exit code {self.proc.wait()}) before answering")

    def step(self) -> float:
        self.proc.stdin.write("step\n")
        self.proc.stdin.flush()
        return float(self.read()["ms"])

    def close(self) -> dict:
        """Ends the side; returns its summary row (median, GFLOP/s, peak share, RSS)."""
        try:
            self.proc.stdin.write("end\n")
            self.proc.stdin.close()
        except (BrokenPipeError, ValueError):      # the side has ended already
            pass
        row = {}
        for line in self.proc.stdout:               # its last JSON line is the summary
            if line.startswith("{"):
                row = json.loads(line)
        self.proc.wait()
        return row


def quartiles(values: list[float]) -> tuple[float, float]:
    q = statistics.quantiles(values, n=4) if len(values) > 1 else [values[0]] * 3
    return q[0], q[2]


def run_case(name: str, sides: dict[str, list[str]], pairs: int, gap: float) -> dict:
    servers = {label: Server(label, cmd) for label, cmd in sides.items()}   # started one after another
    times = {label: [] for label in servers}
    order = list(servers)
    try:
        for r in range(pairs):
            shift = r % len(order)
            for label in order[shift:] + order[:shift]:
                time.sleep(gap)
                times[label].append(servers[label].step())
    finally:
        rows = {label: s.close() for label, s in servers.items()}
    out = {"name": name, "config": rows["swift"].get("config"), "pairs": pairs}
    for label, t in times.items():
        out[f"{label}_ms"] = statistics.median(t)
        out[f"{label}_steps_ms"] = t
        if label != "swift":
            ratios = [o / s for s, o in zip(times["swift"], t)]
            out[f"{label}_over_swift"] = statistics.median(ratios)
            out[f"{label}_over_swift_range"] = [min(ratios), max(ratios)]
            out[f"{label}_over_swift_quartiles"] = list(quartiles(ratios))
    for key in ("gflops", "peak_gflops", "isa", "peak_rss_mb"):   # the share is computed over the run
        out[f"swift_{key}"] = rows["swift"].get(key)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--case", action="append", default=[], choices=compare.STEP_CASE_NAMES + compare.SAMPLE_CASE_NAMES,
                    help="a step case or a sampling run (repeatable; default the five step cases)")
    ap.add_argument("--pairs", type=int, default=21, help="rounds: one step of every side each (default 21)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--gap", type=float, default=0.05, help="seconds between two steps (default 0.05)")
    ap.add_argument("--no-reference", action="store_true", help="leave the reference model out")
    ap.add_argument("--reference-repo", default=os.environ.get("MASKDM_REFERENCE_REPO"))
    ap.add_argument("--reference-site", default=os.environ.get("MASKDM_REFERENCE_SITE"))
    ap.add_argument("--json", action="store_true", help="one JSON document instead of the table")
    compare.add_isa_options(ap)
    args = ap.parse_args()
    compare.apply_isa_options(ap, args)
    if args.pairs < 1:
        ap.error("--pairs must be at least 1")
    if not args.gap >= 0:
        ap.error(f"--gap must be at least 0 seconds, got {args.gap}")
    compare.check_common_options(ap, args)
    if not os.path.exists(compare.SWIFT_BIN):
        sys.exit(f"error: {os.path.relpath(compare.SWIFT_BIN, compare.ROOT)} not found; build it with: {compare.BUILD_CMD}")
    compare.resolve_reference(ap, args)
    if args.reference_repo:
        compare.add_reference_site(args.reference_site)
    if any(name not in compare.SAMPLE_CASE_NAMES for name in args.case or compare.STEP_CASE_NAMES):
        compare.note_missing_reference(args)   # (prints only when the reference is missing)

    threads = ["--threads", str(args.threads)]
    torch_extra = ["--bf16"] if args.bf16 else []   # the Swift side's bf16 is MASKDM_GEMM_ISA, set above
    first_peak = compare.run_side([compare.SWIFT_BIN, "peak"] + threads)
    results = []
    for name in args.case or compare.STEP_CASE_NAMES:
        if name in compare.SAMPLE_CASE_NAMES:     # whole sampling runs; the reference has no sampler here
            results.append(run_case(name, {
                "swift": [compare.SWIFT_BIN, "sample", "--case", name, "--serve"] + threads,
                "torch": [compare.torch_python(), compare.TORCH_SCRIPT, "sample", "--case", name, "--serve"] + threads
                + torch_extra},
                args.pairs, args.gap))
            continue
        torch_cmd = [compare.torch_python(), compare.TORCH_SCRIPT, "step", "--case", name, "--serve"] + threads + torch_extra
        sides = {"swift": [compare.SWIFT_BIN, "step-case", name, "--serve"] + threads, "torch": torch_cmd}
        if args.reference_repo:
            sides["reference"] = torch_cmd + ["--model", "reference", "--reference-repo", args.reference_repo]
        results.append(run_case(name, sides, args.pairs, args.gap))
    # Each Swift process measures the FMA peak once as it starts; on a VM one such reading can fall
    # in a slow second, so every share divides by the highest peak measured in this run.
    peak = max([r["swift_peak_gflops"] for r in results if r.get("swift_peak_gflops")]
               + [row["gflops"] for row in first_peak if "gflops" in row])
    for r in results:
        r["swift_peak_share"] = r["swift_gflops"] / peak if r.get("swift_gflops") else None
    speedups = []
    for net in ("tiny", "small"):
        full = next((r for r in results if r["name"] == f"step_{net}_unmasked"), None)
        masked = next((r for r in results if r["name"] == f"step_{net}_block4_90"), None)
        if full and masked:
            speedups.append({"network": net, **{side: full[f"{side}_ms"] / masked[f"{side}_ms"]
                                                 for side in ("swift", "torch", "reference") if f"{side}_ms" in full}})
    if args.json:
        print(json.dumps(compare.json_safe({"cpu": compare.cpu_model(), "threads": args.threads, "pairs": args.pairs,
                                            "peak_gflops": peak, "isa_option": "avx2" if args.avx2 else "bf16" if args.bf16 else None,
                                            "cases": results, "masked_speedups": speedups}), indent=1, allow_nan=False))
        return
    with_ref = any("reference_ms" in r for r in results)   # step cases only
    header = ["case", "swift ms", "torch ms", "torch/swift", "range", "quartiles"] \
        + (["ref ms", "ref/swift", "range", "quartiles"] if with_ref else []) + ["swift GF/s", "share of peak"]
    span = lambda v: f"{v[0]:.2f}-{v[1]:.2f}"
    rows = []
    for r in results:
        row = [f"{r['name']} ({r['config']})", f"{r['swift_ms']:.1f}"]
        for side in ["torch"] + (["reference"] if with_ref else []):
            if side + "_ms" not in r:
                row += ["-"] * 4
                continue
            row += [f"{r[side + '_ms']:.1f}", f"{r[side + '_over_swift']:.3f}", span(r[side + "_over_swift_range"]),
                    span(r[side + "_over_swift_quartiles"])]
        row += [f"{r['swift_gflops']:.1f}", f"{100 * r['swift_peak_share']:.0f}%"]
        rows.append(row)
    print(f"CPU: {compare.cpu_model()}; measured {'bf16 dot-product' if args.bf16 else 'AVX2 fp32' if args.avx2 else 'fp32'} peak {peak:.0f} GFLOP/s"
          " (the highest reading of this run);"
          f" {args.threads} thread{'s' if args.threads != 1 else ''}; {args.pairs} round{'s' if args.pairs != 1 else ''}, one step of each side per round"
          " in rotating order; ratios are medians of the rounds' ratios (> 1: Swift faster)"
          + ("; ref = the reference repository's MaskedUViT" if with_ref else "")
          + ("; mixed precision: Swift MASKDM_GEMM_ISA=avx512-bf16, PyTorch autocast bf16" if args.bf16 else "")
          + ("; AVX2 emulated on both sides (--avx2)" if args.avx2 else ""))
    if args.avx2:
        print(f"PyTorch CPU capability under --avx2: {compare.torch_cpu_capability()}")
    compare.print_table(header, rows)
    for sp in speedups:
        print(f"masked speedup {sp['network']} (unmasked / block4 90%, medians of the steps): "
              + ", ".join(f"{side} {sp[side]:.2f}x" for side in ("swift", "torch", "reference") if side in sp))


if __name__ == "__main__":
    main()

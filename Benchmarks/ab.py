#!/usr/bin/env python3
"""Before/after comparison of two maskdm-bench binaries, alternating in one run.

    python3 Benchmarks/ab.py BEFORE_BIN AFTER_BIN [CASE ...] [--rounds N] [--threads T] [--quick]
        [--before-env NAME=VALUE] [--after-env NAME=VALUE]

Build the "before" binary from the old commit in a second checkout (e.g. `git worktree add
/tmp/before OLD && swift build -c release --product maskdm-bench --package-path /tmp/before`).
Each round runs every step case on the before binary, then on the after binary (each a fresh
process printing its median step time). Prints, per case, the median over rounds of each side's
median and the ratio after/before (below 1: the change is faster), with the range of the
single rounds' ratios. Default cases: all training step cases; the sampling runs of
`maskdm-bench sample` (sample_demo_dpm20, sample_small_dpm20, ...) may be named too.

The two sides may also be one binary under two settings (each option repeatable), for instance the
AVX2 kernel against the default choice on an AVX-512 machine:

    python3 Benchmarks/ab.py .build/release/maskdm-bench .build/release/maskdm-bench \
        --before-env MASKDM_GEMM_ISA=avx2 --rounds 5 --quick
"""
import os
import json
import statistics
import subprocess
import sys

CASES = ["step_tiny_unmasked", "step_tiny_block4_90", "step_small_unmasked", "step_small_block4_90"]


def run(binary, case, threads, quick, env):
    # Whole sampling runs (maskdm-bench sample --case; sample_step_small is a step case).
    sampling = case.startswith("sample_") and case != "sample_step_small"
    cmd = ([binary, "sample", "--case", case, "--threads", str(threads)] if sampling
           else [binary, "step-case", case, "--threads", str(threads)]) + (["--quick"] if quick else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ, **env}).stdout
    for line in out.splitlines():
        if line.startswith("{"):
            return json.loads(line)["median_ms"]
    raise RuntimeError(f"{cmd}: no JSON line in {out!r}")


def main():
    args = sys.argv[1:]
    def option(name, default):
        if name in args:
            i = args.index(name)
            value = args[i + 1]
            del args[i:i + 2]
            return value
        return default
    def settings(name):
        env = {}
        while name in args:
            pair = option(name, "")
            if "=" not in pair:
                sys.exit(f"{name} wants NAME=VALUE, got {pair!r}")
            key, value = pair.split("=", 1)
            env[key] = value
        return env
    before_env, after_env = settings("--before-env"), settings("--after-env")
    rounds = int(option("--rounds", "3"))
    threads = int(option("--threads", "2"))
    quick = "--quick" in args
    args = [a for a in args if a != "--quick"]
    if len(args) < 2:
        sys.exit(__doc__)
    before, after, cases = args[0], args[1], args[2:] or CASES
    results = {c: {"before": [], "after": []} for c in cases}
    for r in range(rounds):
        for c in cases:
            results[c]["before"].append(run(before, c, threads, quick, before_env))
            results[c]["after"].append(run(after, c, threads, quick, after_env))
            print(f"round {r + 1}/{rounds} {c}: before {results[c]['before'][-1]:.1f} ms, "
                  f"after {results[c]['after'][-1]:.1f} ms", file=sys.stderr)
    describe = lambda env: " ".join(f"{k}={v}" for k, v in env.items())
    if before_env or after_env:
        print(f"before: {describe(before_env) or 'as is'}; after: {describe(after_env) or 'as is'}")
    print(f"| case | before ms (median of {rounds}) | after ms | after / before | rounds |")
    print("|---|---:|---:|---:|---|")
    for c in cases:
        bs, as_ = results[c]["before"], results[c]["after"]
        b, a = statistics.median(bs), statistics.median(as_)
        singles = [y / x for x, y in zip(bs, as_)]
        print(f"| {c} | {b:.1f} | {a:.1f} | {a / b:.3f} | {min(singles):.3f}-{max(singles):.3f} |")


if __name__ == "__main__":
    main()

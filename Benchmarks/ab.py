#!/usr/bin/env python3
"""Before/after comparison of two maskdm-bench binaries, alternating in one run.

    python3 Benchmarks/ab.py BEFORE_BIN AFTER_BIN [CASE ...] [--rounds N] [--threads T] [--quick]

Build the "before" binary from the old commit in a second checkout (e.g. `git worktree add
/tmp/before OLD && swift build -c release --product maskdm-bench --package-path /tmp/before`).
Each round runs every step case on the before binary, then on the after binary (each a fresh
process printing its median step time). Prints, per case, the median over rounds of each side's
median and the ratio after/before (below 1: the change is faster). Default cases: all training
step cases.
"""
import json
import statistics
import subprocess
import sys

CASES = ["step_tiny_unmasked", "step_tiny_block4_90", "step_small_unmasked", "step_small_block4_90"]


def run(binary, case, threads, quick):
    cmd = [binary, "step-case", case, "--threads", str(threads)] + (["--quick"] if quick else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
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
            results[c]["before"].append(run(before, c, threads, quick))
            results[c]["after"].append(run(after, c, threads, quick))
            print(f"round {r + 1}/{rounds} {c}: before {results[c]['before'][-1]:.1f} ms, "
                  f"after {results[c]['after'][-1]:.1f} ms", file=sys.stderr)
    print(f"| case | before ms (median of {rounds}) | after ms | after / before |")
    print("|---|---:|---:|---:|")
    for c in cases:
        b, a = statistics.median(results[c]["before"]), statistics.median(results[c]["after"])
        print(f"| {c} | {b:.1f} | {a:.1f} | {a / b:.3f} |")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""Step time of 1 rank x T threads against N ranks x T/N threads on one machine (issue 14).

Runs `maskdm pretrain` (masked) and `maskdm train` (unmasked) on the bundled emoji for a few
steps in each layout, alternating the layouts round by round, and reports the median step
seconds (the first step of each run is dropped) and the share of rank 0's step spent in the
collectives (`comm_seconds` in log.jsonl). Needs the MPI build (`make mpi`).

    python3 Benchmarks/mpi_scaling.py --rounds 3 --steps 6
"""
import argparse, json, os, shutil, statistics, subprocess, tempfile

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("--maskdm", default=".build/release/maskdm")
p.add_argument("--model", default="small")
p.add_argument("--size", type=int, default=64)
p.add_argument("--batch", type=int, default=16)
p.add_argument("--steps", type=int, default=6)
p.add_argument("--rounds", type=int, default=3)
p.add_argument("--threads", type=int, default=2, help="threads of the 1-rank layout (= ranks of the other)")
p.add_argument("--cases", default="masked,unmasked")
args = p.parse_args()

env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
cases = {
    "masked": ["pretrain", "--mask", "block4", "--ratio", "0.9"],
    "unmasked": ["train"],
}
layouts = [(1, args.threads), (args.threads, 1)]          # (ranks, threads per rank)


def run(case, ranks, threads, folder):
    cmd = cases[case] + ["--data", "emoji-others", "--model", args.model, "--size", str(args.size), "--batch", str(args.batch),
                         "--steps", str(args.steps), "--checkpoint-every", "100000", "--log-every", "100000", "--out", folder]
    if ranks == 1:
        full = [args.maskdm] + cmd
        e = dict(env, MASKDM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads))
    else:
        full = ["mpirun", "-np", str(ranks), "--oversubscribe", "--bind-to", "none", "-x", f"MASKDM_THREADS={threads}",
                "-x", f"OPENBLAS_NUM_THREADS={threads}", args.maskdm] + cmd
        e = env
    subprocess.run(full, env=e, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    records = [json.loads(l) for l in open(os.path.join(folder, "log.jsonl")) if l.strip()][1:]
    return [r["seconds"] for r in records], [r.get("comm_seconds", 0.0) for r in records]


results = {}
scratch = tempfile.mkdtemp(prefix="mpi-scaling-")
try:
    for r in range(args.rounds):
        for case in args.cases.split(","):
            for ranks, threads in (layouts if r % 2 == 0 else layouts[::-1]):
                folder = os.path.join(scratch, f"{case}-{ranks}x{threads}-{r}")
                secs, comm = run(case, ranks, threads, folder)
                key = (case, ranks, threads)
                results.setdefault(key, ([], []))
                results[key][0].extend(secs)
                results[key][1].extend(comm)
                print(f"round {r + 1}: {case} {ranks} rank(s) x {threads} thread(s): median step {statistics.median(secs):.3f} s", flush=True)
finally:
    shutil.rmtree(scratch, ignore_errors=True)

print(f"\n{args.model}@{args.size}, global batch {args.batch}, {args.rounds} alternating rounds, median over steps 2..{args.steps}\n")
print("| case | layout | step s (median) | images/s | all-reduce s (rank 0) | share of step | vs 1 rank |")
print("|---|---|---:|---:|---:|---:|---:|")
for case in args.cases.split(","):
    base = statistics.median(results[(case, 1, args.threads)][0])
    for ranks, threads in layouts:
        secs, comm = results[(case, ranks, threads)]
        m, c = statistics.median(secs), statistics.median(comm)
        print(f"| {case} | {ranks} rank x {threads} thread | {m:.3f} | {args.batch / m:.1f} | {c:.4f} | {100 * c / m:.1f}% | {base / m:.2f}x |")

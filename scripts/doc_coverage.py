#!/usr/bin/env python3
"""Documentation coverage of the public API, from the compiler's symbol graphs.

    swift package dump-symbol-graph --minimum-access-level public    # writes .build/.../symbolgraph
    python3 scripts/doc_coverage.py [SYMBOLGRAPH_DIR] [--min PERCENT] [--list]

Counts, per library module, the public symbols declared in this package's sources (symbols with
a source location under Sources/; members synthesized by the compiler or inherited from other
modules' protocols have none and are not counted) and how many carry a doc comment. Prints a
table, lists the undocumented ones with --list, and exits 1 when the total is below --min.
"""
import glob
import json
import os
import sys

MODULES = ["Tensor", "NN", "Masking", "Schedules", "ViTDiffusion", "Metrics", "ImageIO", "TorchCheckpoint", "Pipeline", "MPI"]


def find_dir():
    hits = sorted(glob.glob(".build/*/symbolgraph") + glob.glob(".build/*/*/symbolgraph"), key=os.path.getmtime)
    if not hits:
        sys.exit("no symbol graphs: run `swift package dump-symbol-graph --minimum-access-level public` first")
    return hits[-1]


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    minimum = float(sys.argv[sys.argv.index("--min") + 1]) if "--min" in sys.argv else 0
    if "--min" in sys.argv:
        args.remove(sys.argv[sys.argv.index("--min") + 1])
    directory = args[0] if args else find_dir()
    total = documented = 0
    missing = []
    print(f"{'module':<16} {'public':>7} {'documented':>11} {'share':>7}")
    for module in MODULES:
        path = os.path.join(directory, f"{module}.symbols.json")
        if not os.path.exists(path):
            print(f"{module:<16} (no symbol graph)")
            continue
        symbols = []
        # The module's own graph, plus its extensions of other modules' types (Module@Other).
        for p in [path] + sorted(glob.glob(os.path.join(directory, f"{module}@*.symbols.json"))):
            with open(p) as f:
                symbols += json.load(f)["symbols"]
        n = d = 0
        for s in symbols:
            loc = s.get("location", {}).get("uri", "")
            if "/Sources/" not in loc or s.get("accessLevel") not in ("public", "open"):
                continue
            n += 1
            if s.get("docComment", {}).get("lines"):
                d += 1
            else:
                missing.append(f"{module}: {'.'.join(s['pathComponents'])} ({s['kind']['identifier']}) "
                               f"{loc.split('/Sources/')[-1]}:{s['location']['position']['line'] + 1}")
        total += n
        documented += d
        print(f"{module:<16} {n:>7} {d:>11} {100 * d / max(n, 1):>6.1f}%")
    share = 100 * documented / max(total, 1)
    print(f"{'all':<16} {total:>7} {documented:>11} {share:>6.1f}%")
    if "--list" in sys.argv:
        print("\n".join(missing))
    if share < minimum:
        sys.exit(f"documentation coverage {share:.1f}% is below {minimum}%")


if __name__ == "__main__":
    main()

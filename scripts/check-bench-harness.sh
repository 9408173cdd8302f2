#!/usr/bin/env bash
# The benchmark harness on bad input and its output's form, without timing anything long:
# `maskdm-bench` refuses unknown options and a thread count below 1 (exit 2, message on stderr,
# nothing on stdout), names a missing load-memory file (exit 1), and prints the peak as one JSON
# object; `compare.py` and `lockstep.py` refuse counts below 1 before any side starts.
#
#   scripts/check-bench-harness.sh     (builds maskdm-bench; PyTorch is not needed)
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product maskdm-bench > /dev/null
bench=.build/release/maskdm-bench
python=python3   # the refusals come before PyTorch is needed
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0
fail() { echo "FAIL $1"; failures=$((failures + 1)); }

# expect STATUS TEXT COMMAND...: the exit status, TEXT on stderr and nothing on stdout.
expect() {
    local status=$1 text=$2
    shift 2
    local got=0
    "$@" > "$work/out" 2> "$work/err" || got=$?
    if [[ $got -ne $status ]]; then fail "$* exited $got, not $status: $(head -c 300 "$work/err")"; return; fi
    grep -qF -- "$text" "$work/err" || fail "$* did not say '$text' on stderr: $(head -c 300 "$work/err")"
    if [[ -s "$work/out" ]]; then fail "$* printed on stdout: $(head -c 200 "$work/out")"; fi
}
expect 2 "--threads needs a positive count, got '-3'" "$bench" matmul --threads -3
expect 2 "--threads needs a positive count, got '0'" "$bench" matmul --threads 0
expect 2 "--threads needs a positive count, got 'abc'" "$bench" matmul --threads abc
expect 2 "--threads needs a value" "$bench" matmul --threads
expect 2 "unknown option --bogus" "$bench" matmul --bogus
expect 2 "unknown sampling case --threads" "$bench" sample --case --threads
expect 2 "unknown step case 'nope'" "$bench" step-case nope
expect 1 "no such readable file" "$bench" load-memory "$work/missing.safetensors"
expect 2 "usage: maskdm-bench load-memory" "$bench" load-memory
expect 2 "--rounds must be at least 1" "$python" Benchmarks/compare.py step --rounds 0
expect 2 "--threads must be at least 1" "$python" Benchmarks/compare.py matmul --threads 0
expect 2 "--gap must be at least 0" "$python" Benchmarks/lockstep.py --gap -1

# The peak: one strict JSON object with the fields the docs name.
"$bench" peak --threads 1 > "$work/peak"
"$python" - "$work/peak" <<'PY' || fail "maskdm-bench peak --threads 1 did not print its JSON object"
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
assert len(rows) == 1 and rows[0]["name"] == "peak" and rows[0]["threads"] == 1 and rows[0]["gflops"] > 0, rows
PY

if [[ $failures -gt 0 ]]; then echo "check-bench-harness: $failures failure(s)"; exit 1; fi
echo "check-bench-harness: every check passed"

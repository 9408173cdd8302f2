#!/usr/bin/env bash
# `--precision` of the maskdm commands end to end, on whichever CPU this is:
# - with AVX512_BF16: a bf16 run records "bf16" in config.json and says so; re-running without
#   the flag resumes in bf16; --precision fp32 goes on in fp32 and records that, also against
#   MASKDM_GEMM_ISA=avx512-bf16 (and a run recorded as fp32 stays fp32 under it); `maskdm sample
#   --precision bf16` samples in bf16; `maskdm pipeline --precision bf16` records it in both stages;
# - without it: --precision bf16 fails with an error naming AVX512_BF16 and creates no folder; a
#   run folder whose config.json records bf16 refuses to resume, naming the file and the key,
#   until --precision fp32 is given; `maskdm sample --precision bf16` is refused the same way.
# Everywhere: an unknown precision is refused, naming the flag.
#
#   scripts/check-precision.sh [MASKDM_BINARY]     (default .build/release/maskdm)
set -euo pipefail
cd "$(dirname "$0")/.."
unset MASKDM_GEMM_ISA   # the flag alone decides here
bin=${1:-.build/release/maskdm}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
run=$work/run
failures=0

fail() { echo "FAIL $1"; failures=$((failures + 1)); }
train() {   # train STEPS [FLAG ...]: a few tiny steps into $run; output in $work/out
    local steps=$1
    shift
    "$bin" pretrain --data emoji-others --model tiny --batch 4 --steps "$steps" --checkpoint-every 1 \
        --log-every 1 --out "$run" "$@" > "$work/out" 2>&1
}
recorded() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("precision"))' "$run/config.json"; }
expect_header() {   # expect_header PRECISION WHAT
    grep -q "precision $1" "$work/out" || { fail "$2: the run does not say 'precision $1':"; cat "$work/out"; }
}

if grep -qw avx512_bf16 /proc/cpuinfo; then
    echo "check-precision: this CPU has AVX512_BF16"
    train 2 --precision bf16 || { fail "bf16 run failed:"; cat "$work/out"; }
    expect_header bf16 "bf16 run"
    [[ $(recorded) == bf16 ]] || fail "bf16 run: config.json records $(recorded)"
    train 3 || { fail "resume without the flag failed:"; cat "$work/out"; }
    expect_header bf16 "resume without the flag"
    grep -q "resuming at step 2" "$work/out" || fail "resume without the flag did not resume"
    train 4 --precision fp32 || { fail "resume in fp32 failed:"; cat "$work/out"; }
    expect_header fp32 "resume in fp32"
    [[ $(recorded) == fp32 ]] || fail "resume in fp32: config.json records $(recorded)"
    # The flag overrides a bf16 environment: the products really switch back (the header names
    # the precision the process runs).
    MASKDM_GEMM_ISA=avx512-bf16 train 5 --precision fp32 || { fail "fp32 under a bf16 environment failed:"; cat "$work/out"; }
    expect_header fp32 "--precision fp32 under MASKDM_GEMM_ISA=avx512-bf16"
    MASKDM_GEMM_ISA=avx512-bf16 train 6 || { fail "resume under a bf16 environment failed:"; cat "$work/out"; }
    expect_header fp32 "a run recorded as fp32, resumed under MASKDM_GEMM_ISA=avx512-bf16"
    "$bin" sample --checkpoint "$run" --count 2 --batch 2 --steps 2 --out "$work/samples" --precision bf16 \
        > "$work/out" 2>&1 || { fail "sample --precision bf16 failed:"; cat "$work/out"; }
    grep -q "in bf16" "$work/out" || { fail "sample --precision bf16 does not say it ran in bf16:"; cat "$work/out"; }
    "$bin" pipeline --quick --no-fid --precision bf16 --out "$work/demo" > "$work/out" 2>&1 \
        || { fail "pipeline --precision bf16 failed:"; cat "$work/out"; }
    for stage in pretrain finetune; do
        [[ $(run=$work/demo/$stage recorded) == bf16 ]] || fail "pipeline --precision bf16: $stage/config.json records $(run=$work/demo/$stage recorded)"
    done
else
    echo "check-precision: this CPU has no AVX512_BF16"
    if train 2 --precision bf16; then fail "--precision bf16 succeeded"; fi
    grep -q "AVX512_BF16" "$work/out" || { fail "--precision bf16: the error does not name AVX512_BF16:"; cat "$work/out"; }
    [[ ! -e $run ]] || fail "--precision bf16 left a run folder behind"
    train 2 || { fail "fp32 run failed:"; cat "$work/out"; }
    python3 - "$run/config.json" <<'EOF'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["precision"] = "bf16"
json.dump(config, open(path, "w"))
EOF
    if train 3; then fail "a run recorded as bf16 resumed on a CPU without AVX512_BF16"; fi
    grep -q "config.json': key 'precision'" "$work/out" || { fail "the refusal does not name config.json's precision key:"; cat "$work/out"; }
    grep -q -- "--precision fp32" "$work/out" || { fail "the refusal does not say how to go on:"; cat "$work/out"; }
    train 3 --precision fp32 || { fail "--precision fp32 did not resume it:"; cat "$work/out"; }
    grep -q "resuming at step 2" "$work/out" || fail "--precision fp32 did not resume"
    [[ $(recorded) == fp32 ]] || fail "after --precision fp32, config.json records $(recorded)"
    if "$bin" sample --checkpoint "$run" --count 2 --batch 2 --steps 2 --out "$work/samples" --precision bf16 \
        > "$work/out" 2>&1; then fail "sample --precision bf16 succeeded"; fi
    grep -q "AVX512_BF16" "$work/out" || { fail "sample --precision bf16: the error does not name AVX512_BF16:"; cat "$work/out"; }
    [[ ! -e $work/samples ]] || fail "sample --precision bf16 left an output folder behind"
fi
rm -rf "$run"
if train 1 --precision fp16; then fail "--precision fp16 was accepted"; fi
grep -q "unknown --precision 'fp16'" "$work/out" || { fail "--precision fp16: unclear error:"; cat "$work/out"; }

if [[ $failures -gt 0 ]]; then
    echo "check-precision: $failures failures"
    exit 1
fi
echo "check-precision: all checks passed"

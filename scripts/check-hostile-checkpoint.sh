#!/usr/bin/env bash
# Every maskdm command that takes a checkpoint, given a malicious PyTorch file (a pickle whose
# payload is `os.system("touch /tmp/maskdm-pwned")`): each must fail with a one-line error that
# names the refused global, write no output, and of course run nothing.
#
#   scripts/check-hostile-checkpoint.sh [MASKDM_BINARY]     (default .build/release/maskdm)
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:-.build/release/maskdm}
pt=Tests/TorchCheckpointTests/Fixtures/hostile_os_system.pt
cfg=Tests/PipelineTests/Fixtures/reference_tiny.yml
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -f /tmp/maskdm-pwned
failures=0

check() {   # check NAME OUTPUT_PATH -- command...
    local name=$1 output=$2
    shift 3
    local status=0
    "$@" > "$work/stdout" 2> "$work/stderr" || status=$?
    local errors
    errors=$(grep -c . "$work/stderr" || true)
    if [[ $status -eq 0 ]]; then
        echo "FAIL $name: exit status 0"; failures=$((failures + 1))
    elif ! grep -q "posix.system" "$work/stderr"; then
        echo "FAIL $name: the error does not name the refused global:"; cat "$work/stderr"; failures=$((failures + 1))
    elif [[ $errors -ne 1 ]]; then
        echo "FAIL $name: $errors lines of error output:"; cat "$work/stderr"; failures=$((failures + 1))
    elif [[ -e $output ]]; then
        echo "FAIL $name: wrote $output"; failures=$((failures + 1))
    else
        echo "ok   $name: $(cat "$work/stderr")"
    fi
}

printf 'x' > "$work/inputs.safetensors"
check "finetune --init" "$work/finetune" -- "$bin" finetune --init "$pt" --model tiny --data emoji-faces --steps 1 --out "$work/finetune"
check "convert" "$work/converted.safetensors" -- "$bin" convert "$pt" --config "$cfg" --out "$work/converted.safetensors"
check "forward --weights" "$work/out.safetensors" -- "$bin" forward --weights "$pt" --config "$cfg" --inputs "$work/inputs.safetensors" --output "$work/out.safetensors"
check "forward --weights --ema" "$work/out.safetensors" -- "$bin" forward --weights "$pt" --ema --config "$cfg" --inputs "$work/inputs.safetensors" --output "$work/out.safetensors"

if [[ -e /tmp/maskdm-pwned ]]; then echo "FAIL: the payload ran"; failures=$((failures + 1)); fi
if [[ $failures -gt 0 ]]; then echo "$failures failure(s)"; exit 1; fi
echo "all refused"

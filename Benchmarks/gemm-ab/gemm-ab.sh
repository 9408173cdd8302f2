#!/usr/bin/env bash
# Compares builds of the GEMM kernels (Sources/CKernels) call by call, interleaved, on one thread.
#
#   Benchmarks/gemm-ab/gemm-ab.sh [OPTIONS] VARIANT VARIANT ...
#
# VARIANT is a git revision (HEAD~1, a branch, a commit) or "." for the working tree, optionally
# followed by "+FLAGS" for extra compiler flags (e.g. ".+-DMY_EXPERIMENT") and by "@ISA" to run
# that variant with one instruction set's kernel (avx2, avx512, avx512-emulated, avx512-bf16; default: --isa's);
# avx512-resident, avx512-streamed (and the same for avx512-emulated) pick the AVX-512 kernel's blocking,
# which is otherwise the CPU's default (streamed on Intel, resident elsewhere).
# Each variant's Sources/CKernels is built as a shared library with the flags SwiftPM's release
# build uses (clang -O2 -g -fno-omit-frame-pointer -fPIC), in seconds, without building the package.
# OPTIONS go to the harness (gemm_ab.c): --rounds N (default 15), --warm (operands cache-warm;
# default cold, as inside a training step), --isa avx2|avx512|avx512-emulated|avx512-bf16, --set
# masked|unmasked|all (the small@64 step's linear-layer products per share; default masked),
# --shape NAME:OP:M:N:K (repeatable, replaces the set). GEMM_AB_KEEP=1 keeps the build directory
# (its path is in the harness's command under `bash -x`), e.g. to profile one variant with perf.
#
# Examples: is the working tree's kernel faster than the last commit's on the masked step's
# shapes? Is the AVX-512 kernel faster than the AVX2 one on this CPU? Would other cache blocks
# suit it better (MDM_AVX2_MC/KC/NC, MDM_AVX512_MC/KC/NC in gemm_internal.h)?
#   Benchmarks/gemm-ab/gemm-ab.sh HEAD .
#   Benchmarks/gemm-ab/gemm-ab.sh --set all .@avx2 .@avx512
#   Benchmarks/gemm-ab/gemm-ab.sh --set all --isa avx512 . .+-DMDM_AVX512_KC=256 .+-DMDM_AVX512_MC=256
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cc=${CC:-clang}
command -v "$cc" > /dev/null || cc=/opt/swift/usr/bin/clang
options=()
variants=()
while [[ $# -gt 0 ]]; do
    case $1 in
        --rounds|--isa|--set|--shape)
            [[ $# -ge 2 ]] || { echo "gemm-ab: $1 needs a value" >&2; exit 2; }
            options+=("$1" "$2"); shift 2 ;;
        --warm) options+=("$1"); shift ;;
        -h|--help) sed -n '2,24p' "$0"; exit 0 ;;
        -*) echo "gemm-ab: unknown option $1" >&2; exit 2 ;;
        *) variants+=("$1"); shift ;;
    esac
done
[[ ${#variants[@]} -ge 1 ]] || { sed -n '2,24p' "$0"; exit 2; }
work=$(mktemp -d)
trap '[[ -n ${GEMM_AB_KEEP:-} ]] || rm -rf "$work"' EXIT
"$cc" -O2 -o "$work/gemm_ab" "$root/Benchmarks/gemm-ab/gemm_ab.c" -ldl -lm
libs=()
for i in "${!variants[@]}"; do
    spec=${variants[$i]}
    build=$spec
    variant_isa=""
    if [[ $spec == *@* ]]; then
        build=${spec%@*}
        variant_isa=@${spec##*@}
    fi
    rev=${build%%+*}
    flags=""
    [[ $build == *+* ]] && flags=${build#*+}
    src="$work/v$i"
    mkdir -p "$src"
    if [[ $rev == . ]]; then
        cp -r "$root/Sources/CKernels" "$src/"
    else
        git -C "$root" rev-parse --verify --quiet "$rev^{commit}" > /dev/null \
            || { echo "gemm-ab: '$rev' is not a git revision (or '.' for the working tree)" >&2; exit 2; }
        git -C "$root" archive "$rev" Sources/CKernels | tar -x -C "$src"
        mv "$src/Sources/CKernels" "$src/CKernels"
    fi
    # shellcheck disable=SC2086  # FLAGS is a list of compiler flags
    "$cc" -O2 -g -fno-omit-frame-pointer -fPIC -shared $flags -I "$src/CKernels/include" \
        "$src"/CKernels/*.c -o "$src/kernels.so" -lm
    libs+=("$spec=$src/kernels.so$variant_isa")
done
"$work/gemm_ab" "${options[@]}" "${libs[@]}"

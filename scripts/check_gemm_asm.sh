#!/bin/sh
# Checks that the GEMM micro-kernels of a SwiftPM build (default flags, no -m options) really
# contain vector FMAs: ymm for the AVX2 kernel, zmm for the AVX-512 one.
# Usage: scripts/check_gemm_asm.sh [debug|release]   (build first: swift build [-c release])
set -eu
config=${1:-release}
dir=$(ls -d .build/"$config"/CKernels.build .build/*/"$config"/CKernels.build 2>/dev/null | head -n 1)
[ -n "$dir" ] || { echo "no CKernels objects: build the $config configuration first"; exit 2; }
status=0
for pair in avx2:ymm avx512:zmm; do
    isa=${pair%%:*}; reg=${pair#*:}
    obj="$dir/gemm_$isa.c.o"
    [ -f "$obj" ] || { echo "missing $obj: build the $config configuration first"; exit 2; }
    fmas=$(objdump -d --no-show-raw-insn "$obj" \
        | awk -v f="<mdm_microkernel_$isa>:" '$2 == f { on = 1; next } /^[0-9a-f]+ <.*>:$/ { on = 0 } on' \
        | grep -c "vfmadd[0-9]*ps.*%$reg" || true)
    echo "mdm_microkernel_$isa: $fmas vfmadd*ps on $reg registers"
    [ "$fmas" -gt 0 ] || status=1
done
exit $status

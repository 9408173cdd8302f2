#!/usr/bin/env bash
# Coverage-guided fuzzing of the file parsers (libFuzzer + AddressSanitizer, through the Swift
# toolchain's -sanitize=fuzzer,address). Builds Fuzz/ (a package depending on this one by path)
# and runs each target for SECONDS, starting from the checked-in seeds in Fuzz/Corpus/TARGET
# (the font's seed is cut from the installed font at run time)
# (inputs libFuzzer finds interesting go to .build-fuzz/corpus/TARGET, never into the repo).
#
#   scripts/fuzz.sh [SECONDS] [TARGET ...]     (default 30 s; all targets)
#
# A crash, trap, leak, timeout (10 s per input) or allocation beyond 2 GB stops the target and
# leaves the input in .build-fuzz/artifacts/; the script then exits 1. Prints per target the
# executions, executions per second and the coverage reached.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(safetensors torch image font yaml idx npy csv gzip)

build() {
    swift build --package-path Fuzz -c release --scratch-path .build-fuzz --product maskdm-fuzz \
        -Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address >&2
}
# An incremental build of the sanitized library has been seen to fail on stale state ("cannot find
# 'PthreadLock' in scope" after unrelated changes); one clean rebuild of the products fixes it.
if ! build; then
    echo "fuzz build failed; retrying from a clean .build-fuzz/release" >&2
    rm -rf .build-fuzz/release .build-fuzz/x86_64-unknown-linux-gnu
    build
fi
bin=.build-fuzz/release/maskdm-fuzz
mkdir -p .build-fuzz/artifacts
# The font seed is a few glyphs of the installed Noto Color Emoji (cmap, CBLC/CBDT, a GSUB
# ligature), cut with fontTools at run time rather than checked in.
font_seed=.build-fuzz/seeds/font
if [[ ! -s $font_seed/noto-subset.ttf && -f /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf ]]; then
    mkdir -p "$font_seed" .build-fuzz/pysite
    python3 -c "import fontTools" 2>/dev/null || PYTHONPATH=.build-fuzz/pysite python3 -c "import fontTools" 2>/dev/null \
        || python3 -m pip install --quiet --target .build-fuzz/pysite fonttools >&2 || true
    PYTHONPATH=.build-fuzz/pysite python3 -m fontTools.subset /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf \
        --unicodes=U+1F600,U+1F62E,U+200D,U+1F4A8,U+1F44D,U+1F3FD --layout-features='*' \
        --output-file="$font_seed/noto-subset.ttf" >&2 || echo "no font seed (fontTools unavailable)" >&2
fi
failed=0
printf '%-12s %12s %10s %8s %s\n' target executions "exec/s" edges result
for t in "${targets[@]}"; do
    # Inputs that once crashed a target (Fuzz/Regressions/TARGET) are replayed first.
    if compgen -G "Fuzz/Regressions/$t/*" > /dev/null; then
        if ! FUZZ_TARGET=$t "$bin" Fuzz/Regressions/$t/* > ".build-fuzz/$t-regressions.log" 2>&1; then
            printf '%-12s regression input crashes again (see .build-fuzz/%s-regressions.log)\n' "$t" "$t"
            failed=1
            continue
        fi
    fi
    work=.build-fuzz/corpus/$t
    mkdir -p "$work"
    log=.build-fuzz/$t.log
    status=0
    FUZZ_TARGET=$t "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -max_len=65536 -print_final_stats=1 -artifact_prefix=".build-fuzz/artifacts/$t-" \
        "$work" $(for d in "Fuzz/Corpus/$t" ".build-fuzz/seeds/$t"; do [[ -d $d ]] && echo "$d"; done) > "$log" 2>&1 || status=$?
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    edges=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    if [[ $status -eq 0 ]]; then result=ok; else result="FAILED (see $log)"; failed=1; fi
    printf '%-12s %12s %10s %8s %s\n' "$t" "$runs" "$speed" "$edges" "$result"
done
exit $failed

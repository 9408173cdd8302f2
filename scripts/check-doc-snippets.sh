#!/usr/bin/env bash
# Compiles every ```swift block of README.md, Docs/*.md and the DocC landing pages against this package's library products.
#
# Each block becomes its own executable target (`main.swift`, so top-level code and declarations
# both work) in a temporary package that depends on this repository by path; compiler messages
# name the Markdown file and line. Blocks are compiled, not run. A block that is deliberately not
# a program is marked on the line before its fence, e.g. `<!-- snippet: skip (a manifest) -->`;
# `<!-- snippet: prelude NAME -->` prepends scripts/snippet-preludes/NAME.swift (see
# scripts/doc_snippets.py). Exits non-zero when a block fails, listing FILE:LINE of each.
#
# Usage: scripts/check-doc-snippets.sh [FILE.md ...]     (default: README.md Docs/*.md Sources/*/*.docc/*.md)
# Environment: SNIPPET_WORKDIR=DIR keeps the temporary package (and its debug build) in DIR, so a
# second run only recompiles what changed; without it a fresh directory under $TMPDIR is used and
# removed at the end.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ $# -gt 0 ]; then files=("$@"); else files=(README.md Docs/*.md Sources/*/*.docc/*.md); fi

if [ -n "${SNIPPET_WORKDIR:-}" ]; then
    work="$SNIPPET_WORKDIR"
    mkdir -p "$work"
else
    work="$(mktemp -d "${TMPDIR:-/tmp}/maskdm-doc-snippets.XXXXXX")"
    # SwiftPM also leaves lock files named after the build folder in the temporary directory.
    trap 'rm -rf "$work"; rm -f "${TMPDIR:-/tmp}/$(printf %s "$work" | tr / _)"_.build*.lock' EXIT
fi
start=$(date +%s)

counts="$(python3 "$root/scripts/doc_snippets.py" "$root" "$work" "${files[@]}")"
read -r count skipped <<<"$counts"
echo "check-doc-snippets: $count swift blocks to compile ($skipped marked skip) in ${files[*]}"
[ "$count" -gt 0 ] || exit 0
# Resolve the dependencies to the versions this repository pins.
if [ -f "$root/Package.resolved" ] && [ ! -f "$work/Package.resolved" ]; then
    cp "$root/Package.resolved" "$work/Package.resolved"
fi

log="$work/build.log"
if swift build --package-path "$work" >"$log" 2>&1; then
    echo "check-doc-snippets: all $count blocks compile ($(( $(date +%s) - start )) s)"
    exit 0
fi

# Something failed: build each block on its own to name every failing one.
failed=0
while IFS=$'\t' read -r target file line; do
    if ! swift build --package-path "$work" --target "$target" >"$work/$target.log" 2>&1; then
        failed=$((failed + 1))
        echo "FAIL $file:$line"
        grep -E "error:" "$work/$target.log" | awk '!seen[$0]++' | sed 's/^/    /' | head -20 || true
    fi
done <"$work/snippets.tsv"
if [ "$failed" -eq 0 ]; then
    echo "check-doc-snippets: the package build failed outside the blocks:"
    grep -E "error:" "$log" | head -40 || tail -40 "$log"
    exit 1
fi
echo "check-doc-snippets: $failed of $count blocks failed ($(( $(date +%s) - start )) s)"
exit 1

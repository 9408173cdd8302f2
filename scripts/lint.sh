#!/usr/bin/env bash
# swift-format lint with the checked-in .swift-format: fails on any rule finding (ordered imports,
# doc-comment style, shorthand types, ...). The layout findings of the pretty printer (indentation,
# line breaks, spacing) are reported as a count only: the code keeps its compact hand layout.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(swift format lint --configuration .swift-format -r Sources Examples Benchmarks/maskdm-bench Tests 2>&1 || true)
layout='\[(AddLines|Indentation|Spacing|LineLength|TrailingComma|RemoveLine)\]'
rules=$(echo "$out" | grep "warning: \[" | grep -Ev "$layout" || true)
echo "lint: $(echo "$out" | grep -Ec "$layout" || true) layout findings (not enforced)"
if [ -n "$rules" ]; then echo "$rules"; echo "lint: $(echo "$rules" | wc -l) rule findings"; exit 1; fi
echo "lint: no rule findings"

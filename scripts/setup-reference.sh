#!/usr/bin/env bash
# Fetches the MaskDM reference repository (github.com/jiachenlei/maskdm) at a pinned commit and the
# two packages its model file imports (timm, einops) into .cache/reference, so that
# `make bench-compare SUITE=step` times the reference's own models/mask_uvit.py beside our PyTorch
# port and the Swift side. Nothing here is part of the Swift package; .cache/ is not committed.
# Idempotent: an existing checkout at the pinned commit and installed packages are kept.
#   MASKDM_REFERENCE_GIT  where to clone from (default https://github.com/jiachenlei/maskdm.git;
#                         a local clone or mirror path works too)
# Usage: bash scripts/setup-reference.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="$ROOT/.cache/reference"
REPO="$DEST/maskdm"
SITE="$DEST/site"
COMMIT=0e79a60f71b38d0bc8a2887abb65229c0c935d14   # the commit our port and fixtures were checked against
TIMM=1.0.31
EINOPS=0.8.2
SOURCE="${MASKDM_REFERENCE_GIT:-https://github.com/jiachenlei/maskdm.git}"
PY="$ROOT/.venv/bin/python"
[ -x "$PY" ] || "$ROOT/scripts/setup-python.sh"

mkdir -p "$DEST"
if [ ! -d "$REPO/.git" ]; then
    echo "setup-reference: cloning $SOURCE"
    rm -rf "$REPO.partial"
    if ! git clone --quiet --no-checkout "$SOURCE" "$REPO.partial"; then
        rm -rf "$REPO.partial"
        echo "setup-reference: could not clone $SOURCE. Without access to GitHub, point" \
             "MASKDM_REFERENCE_GIT at a local clone or mirror of github.com/jiachenlei/maskdm" \
             "(it needs commit $COMMIT), e.g. MASKDM_REFERENCE_GIT=/path/to/maskdm make reference" >&2
        exit 1
    fi
    mv "$REPO.partial" "$REPO"
fi
if [ "$(git -C "$REPO" rev-parse HEAD 2>/dev/null || true)" != "$COMMIT" ] || [ ! -f "$REPO/models/mask_uvit.py" ]; then
    git -C "$REPO" cat-file -e "$COMMIT^{commit}" 2>/dev/null || git -C "$REPO" fetch --quiet origin
    git -C "$REPO" -c advice.detachedHead=false checkout --quiet "$COMMIT"
fi
[ -f "$REPO/models/mask_uvit.py" ] || { echo "setup-reference: $REPO has no models/mask_uvit.py" >&2; exit 1; }

# (timm itself imports torchvision, which the benchmark stubs out: check the installs, not an import)
if [ -d "$SITE/timm-$TIMM.dist-info" ] && [ -d "$SITE/einops-$EINOPS.dist-info" ]; then
    echo "setup-reference: timm and einops already in $SITE"
else
    echo "setup-reference: installing timm and einops into $SITE"
    "$PY" -m pip install --quiet --disable-pip-version-check --no-deps --target "$SITE" \
        "timm==$TIMM" "einops==$EINOPS"
fi
echo "setup-reference: ready: $REPO at ${COMMIT:0:7}, packages in $SITE"

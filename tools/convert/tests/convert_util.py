"""What the converter tests share (a plain module, not a conftest.py: nothing else can shadow it):
the `linformer` executable, running `linformer convert` and
`linformer forward`, reading model files, and comparing outputs (printing the worst error).

$LINFORMER_BIN names the executable (ctest sets it); otherwise build/linformer of the source tree.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TOOL_DIR = os.path.dirname(HERE)                      # tools/convert (holds linformer_convert/)
REPO = os.path.dirname(os.path.dirname(TOOL_DIR))
sys.path.insert(0, TOOL_DIR)
sys.path.insert(0, HERE)

from linformer_convert import safetensors  # noqa: E402

TOL = 1e-4


def linformer_bin():
    path = os.environ.get("LINFORMER_BIN") or os.path.join(REPO, "build", "linformer")
    if not os.path.isfile(path):
        pytest.fail(f"the linformer executable is not at {path}: build it or set LINFORMER_BIN")
    return path


def convert(*args, ok=True):
    """Runs `linformer convert ARGS` (the C++ subcommand, which runs the Python tool)."""
    r = subprocess.run([linformer_bin(), "convert", *map(str, args)], capture_output=True, text=True)
    if ok and r.returncode != 0:
        raise AssertionError(f"linformer convert failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def expect_error(*args, contains):
    """`linformer convert` must fail with status 1 and an error naming `contains` (each of them)."""
    r = convert(*args, ok=False)
    assert r.returncode == 1, f"exit {r.returncode}, expected 1:\n{r.stdout}\n{r.stderr}"
    assert "error:" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    for part in [contains] if isinstance(contains, str) else contains:
        assert part in r.stderr, f"{part!r} not in: {r.stderr}"
    return r.stderr


def read_model(path):
    tensors, meta = safetensors.read(path)
    return tensors, json.loads(meta["linformer.config"])


def forward(model, ids, tmp_path):
    """`linformer forward` on a list of id lists -> (hidden [B, n, d], logits [B, n, V], mask)."""
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("".join(" ".join(str(int(t)) for t in row) + "\n" for row in ids))
    out = tmp_path / "forward.safetensors"
    r = subprocess.run([linformer_bin(), "forward", "--model", str(model), "--ids", str(ids_file),
                        "--out", str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    t, _ = safetensors.read(str(out))
    return t["hidden"], t["logits"], t["mask"]


def worst(name, ours, theirs, mask=None):
    """Max |ours - theirs| over the real positions; printed, and asserted under TOL."""
    ours = np.asarray(ours, np.float64)
    theirs = np.asarray(theirs.detach().numpy() if isinstance(theirs, torch.Tensor) else theirs, np.float64)
    assert ours.shape == theirs.shape, f"{name}: shapes {ours.shape} vs {theirs.shape}"
    diff = np.abs(ours - theirs)
    if mask is not None:
        diff = diff[np.asarray(mask, bool)]
    err = float(diff.max())
    print(f"{name}: worst |linformer - source| = {err:.3g}")
    assert err < TOL, f"{name}: worst error {err} >= {TOL}"
    return err


def random_ids(rng, batch, n, vocab, low=4):
    return rng.integers(low, vocab, size=(batch, n)).tolist()


def save_pt(path, obj):
    torch.save(obj, str(path))
    return path

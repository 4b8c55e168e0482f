#!/usr/bin/python3
"""The Python-call overhead of linformer.Model.forward against the C++ API (issue 19: under 3% at
batch 8 x 512).

The C++ side is `linformer forward --repeat R` (InferenceModel::forward into a reused result, the
time of the forward loop alone, its fastest of R); the Python side is Model.forward on the same
model file and ids (a 2-D int32 numpy array; also a list of lists), its fastest of R calls, in the
same process-wide settings (threads, float32). The two alternate, ROUNDS times, and the medians
of the fastest times are compared. Prints what it ran, the machine and the ratio.

    /usr/bin/python3 bench/python_overhead.py [--batch 8 --n 512] [--threads 2] [--repeats 10]

Needs the package importable (PYTHONPATH=build/python, or installed) and the command
(--bin, default build/linformer). Figures are only worth keeping from a quiet machine.
"""

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
try:
    import linformer
except ImportError:  # not installed and not on PYTHONPATH: the build's package
    sys.path.insert(0, str(ROOT / "build" / "python"))
    import linformer


def cpu_name():
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cli_best_ms(binary, model, ids, out, threads, repeats):
    r = subprocess.run([binary, "forward", "--threads", str(threads), "--repeat", str(repeats), "--model", model,
                        "--ids", ids, "--out", out], capture_output=True, text=True, check=True)
    for field in r.stdout.split():
        if field.startswith("time_best_ms="):
            return float(field.split("=", 1)[1])
        if field.startswith("time_ms="):  # --repeat 1
            return float(field.split("=", 1)[1])
    raise RuntimeError(f"no time in: {r.stdout}")


def py_best_ms(model, ids, repeats):
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        hidden, logits = model.forward(ids)
        best = min(best, (time.perf_counter() - t0) * 1e3)
        del hidden, logits  # freed results give their memory back to the next call, as C++ reuses its result
    return best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--n", type=int, default=512)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--d-ff", type=int, default=1024)
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--vocab", type=int, default=8000)
    p.add_argument("--k", type=int, default=64)
    p.add_argument("--attention", default="linformer")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=10, help="calls per side and round (the fastest counts)")
    p.add_argument("--rounds", type=int, default=3, help="alternations of the two sides (the median counts)")
    p.add_argument("--bin", default=str(ROOT / "build" / "linformer"), help="the linformer command")
    p.add_argument("--target", type=float, default=3.0, help="overhead target in percent (reported)")
    a = p.parse_args()

    cfg = {"vocab_size": a.vocab, "max_len": a.n, "d_model": a.d_model, "n_heads": a.heads, "d_ff": a.d_ff,
           "n_layers": a.layers, "attention": a.attention}
    if a.attention == "linformer":
        cfg["k"] = [a.k]
    linformer.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, a.vocab, size=(a.batch, a.n), dtype=np.int32)
    ids[:, 0], ids[:, -1] = linformer.BOS_ID, linformer.EOS_ID
    with tempfile.TemporaryDirectory(prefix="linformer_py_overhead_") as tmp:
        model_file, ids_file, out_file = (str(Path(tmp) / f) for f in ("m.safetensors", "ids.txt", "out.safetensors"))
        linformer.init(cfg, seed=1).save(model_file)
        Path(ids_file).write_text("".join(" ".join(map(str, row)) + "\n" for row in ids.tolist()))
        model = linformer.load(model_file)
        model.forward(ids)  # worker, buffers
        as_lists = ids.tolist()
        cpp, py, py_lists = [], [], []
        for _ in range(a.rounds):
            cpp.append(cli_best_ms(a.bin, model_file, ids_file, out_file, a.threads, a.repeats))
            py.append(py_best_ms(model, ids, a.repeats))
            py_lists.append(py_best_ms(model, as_lists, a.repeats))
    c, p_np, p_l = statistics.median(cpp), statistics.median(py), statistics.median(py_lists)
    print(f"python_overhead: {a.attention} d_model {a.d_model}, {a.heads} heads, d_ff {a.d_ff}, {a.layers} layers, "
          f"vocab {a.vocab}{f', k {a.k}' if a.attention == 'linformer' else ''}; batch {a.batch} x {a.n}; "
          f"{a.threads} threads; float32; {a.rounds} rounds of {a.repeats} calls (medians of the fastest)")
    print(f"machine: {cpu_name()}, {os.cpu_count()} cores; linformer {linformer.__version__}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print("| caller | forward ms | vs C++ |")
    print("|---|---|---|")
    print(f"| C++ API (linformer forward) | {c:.2f} | 1.000x |")
    print(f"| Python, numpy int32 ids | {p_np:.2f} | {p_np / c:.3f}x |")
    print(f"| Python, list of lists | {p_l:.2f} | {p_l / c:.3f}x |")
    overhead = 100 * (p_np / c - 1)
    verdict = "met" if overhead < a.target else "NOT met"
    print(f"overhead of Model.forward: {overhead:+.2f}% (target < {a.target:g}%: {verdict})")


if __name__ == "__main__":
    main()

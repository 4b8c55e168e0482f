#!/usr/bin/python3
"""linformer.torch.Encoder (our kernels inside PyTorch's autograd) against the same computation in
plain PyTorch, forward + backward, side by side in one run (issue 19, item 3: target at least 1.3x
at n = 4096 with RoBERTa-base layer sizes).

    /usr/bin/python3 bench/torch_module_side_by_side.py [--n 512,4096,16384] [--k 256] [--layers 1]
        [--threads 2] [--repeats 3]

Both sides hold the same weights (the Encoder's state_dict loaded into the twin of
tests/reference/linformer_ref.py, with the attention a PyTorch user would write for a projection
shared over the heads: bench/torch_side_by_side.py's FastLayer), run the same threads
(torch.set_num_threads and linformer.set_num_threads) in training mode, and time one step:
forward, loss = sum(hidden * W), backward (gradients zeroed before each). Before timing, the two
encoders' outputs are compared in eval mode (printed; exit status 1 if they differ by more than
1e-3). Medians of --repeats steps after a warm-up, alternating the two sides.

For PyTorch at its best on these machines (DESIGN notes, DEVELOPERS.md) run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE GLIBC_TUNABLES=glibc.malloc.hugetlb=1 \
        LD_LIBRARY_PATH=/usr/lib/x86_64-linux-gnu/openblas-openmp /usr/bin/python3 bench/torch_module_side_by_side.py
Figures are only worth keeping from a quiet machine.
"""

import argparse
import os
import statistics
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
try:
    import linformer
except ImportError:  # not installed and not on PYTHONPATH: the build's package
    sys.path.insert(0, os.path.join(HERE, "..", "build", "python"))
    import linformer
import linformer.torch as lt  # noqa: E402
import linformer_ref as ref  # noqa: E402
from torch_side_by_side import build_torch_model  # noqa: E402


def step_time(forward, params, w, repeats):
    def step():
        for p in params:
            p.grad = None
        (forward() * w).sum().backward()
    step()  # warm-up (buffers, workers)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return times


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", default="512,4096,16384")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--d-ff", type=int, default=3072)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--vocab", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    linformer.set_num_threads(a.threads)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# linformer.torch.Encoder vs plain PyTorch {torch.__version__}, forward + backward, float32")
    print(f"cpu: {cpu}; threads: {a.threads}; d_model {a.d_model}, {a.heads} heads, FFN {a.d_ff}, {a.layers} "
          f"layers, vocab {a.vocab}, Linformer k {a.k} (layerwise sharing), batch 1; median of {a.repeats} steps\n")
    print("| n | max abs diff | plain PyTorch | linformer.torch | speed-up |")
    print("|---|---|---|---|---|")
    worst = 0.0
    for n in [int(x) for x in a.n.split(",")]:
        cfg = {"vocab_size": a.vocab, "max_len": n, "d_model": a.d_model, "n_heads": a.heads, "d_ff": a.d_ff,
               "n_layers": a.layers, "attention": "linformer", "k": [min(a.k, n)], "sharing": "layerwise"}
        enc = lt.Encoder(cfg, seed=1)
        twin = build_torch_model(ref.Config.from_dict(cfg), {k: v.detach().clone() for k, v in enc.state_dict().items()})
        g = torch.Generator().manual_seed(n)
        ids = torch.randint(5, a.vocab, (1, n), generator=g)
        mask = torch.ones(1, n, dtype=torch.int32)
        w = torch.randn(1, n, a.d_model, generator=g)
        enc.eval()
        twin.eval()
        with torch.no_grad():
            diff = float((enc(ids, mask) - twin.encode(ids, mask)).abs().max())
        worst = max(worst, diff)
        enc.train()
        twin.train()
        ours, theirs = [], []
        for _ in range(2):  # alternate the sides, so that a slow moment of the machine hits both
            theirs += step_time(lambda: twin.encode(ids, mask), list(twin.parameters()), w, (a.repeats + 1) // 2)
            ours += step_time(lambda: enc(ids, mask), list(enc.parameters()), w, (a.repeats + 1) // 2)
        t_ours, t_theirs = statistics.median(ours), statistics.median(theirs)
        print(f"| {n} | {diff:.2e} | {t_theirs * 1e3:.1f} ms | {t_ours * 1e3:.1f} ms | {t_theirs / t_ours:.2f}x |")
        enc = twin = None  # free both models before the next size
    if worst > 1e-3:
        print(f"error: the two encoders disagree (max abs diff {worst:.3g})")
        sys.exit(1)


if __name__ == "__main__":
    main()

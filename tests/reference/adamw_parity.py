#!/usr/bin/python3
"""Parity of linformer's AdamW + schedule + clipping with torch.optim.AdamW.

Runs tests/adamw_dump (C++), which writes the initial parameters, the gradients of every step,
the lr used per step, the clipping norms and the final parameters/moments. Replays the same run
with torch.optim.AdamW (a decay and a no-decay param group, the per-step lr set through
param_group['lr'], torch.nn.utils.clip_grad_norm_) and compares.

Relative error of x against the reference r, per tensor and normwise: max|x - r| / max|r|. (Not
element-wise: the first moment m sums gradients of random sign, so some of its elements nearly
cancel and carry a large relative error from float32 rounding alone; the same holds for
parameters that cross zero.)
Exit 1 when the worst one exceeds --tol (default 1e-5), or on any structural mismatch.

    /usr/bin/python3 adamw_parity.py --dump path/to/adamw_dump --workdir DIR [--steps 10]
"""
import argparse
import json
import math
import os
import subprocess
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402


def rel_err(x, ref):
    x = np.asarray(x, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if x.shape != ref.shape:
        raise ValueError(f"shape mismatch {x.shape} vs {ref.shape}")
    if x.size == 0:
        return 0.0
    if not np.all(np.isfinite(x)):
        return math.inf
    scale = float(np.max(np.abs(ref)))
    return float(np.max(np.abs(x - ref))) / max(scale, 1e-30)


def schedule_lr(step, peak, warmup, total, end, power):
    """The documented formula of linformer::Schedule::lr (include/linformer/optimizer.hpp)."""
    s = max(step, 0)
    if warmup > 0 and s < warmup:
        return peak * s / warmup
    if s >= total:
        return end
    remaining = 1.0 - (s - warmup) / (total - warmup)
    return end + (peak - end) * remaining ** power


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dump", required=True, help="path of the adamw_dump executable")
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--tol", type=float, default=1e-5)
    args = ap.parse_args()

    os.makedirs(args.workdir, exist_ok=True)
    out = os.path.join(args.workdir, "adamw.safetensors")
    subprocess.run([args.dump, "--out", out, "--steps", str(args.steps)], check=True)
    t, meta = safetensors_io.load(out)

    names = json.loads(meta["names"])
    decay = json.loads(meta["decay"])
    f32 = lambda k: float(np.float32(float(meta[k])))  # noqa: E731  exact float32 values
    steps = int(meta["steps"])
    peak, end, power = f32("lr.peak"), f32("lr.end"), f32("lr.power")
    warmup, total = int(meta["lr.warmup"]), int(meta["lr.total"])
    beta1, beta2, eps, wd, max_norm = f32("beta1"), f32("beta2"), f32("eps"), f32("weight_decay"), f32("max_norm")

    torch.set_num_threads(1)
    params = {n: torch.nn.Parameter(torch.from_numpy(t["init." + n].copy())) for n in names}
    groups = [
        {"params": [params[n] for n, d in zip(names, decay) if d], "weight_decay": wd},
        {"params": [params[n] for n, d in zip(names, decay) if not d], "weight_decay": 0.0},
    ]
    opt = torch.optim.AdamW(groups, lr=peak, betas=(beta1, beta2), eps=eps, weight_decay=wd,
                            amsgrad=False, foreach=False)
    all_params = [params[n] for n in names]

    errors = {}
    lrs = t["lr"].astype(np.float64)
    sched_ref = np.array([schedule_lr(s, peak, warmup, total, end, power) for s in range(steps)])
    errors["lr (vs formula)"] = rel_err(lrs, sched_ref)
    ref_norms = []
    clipped = 0
    for s in range(steps):
        for n in names:
            params[n].grad = torch.from_numpy(t[f"grad.{s}.{n}"].copy())
        norm = float(torch.nn.utils.clip_grad_norm_(all_params, max_norm))
        ref_norms.append(norm)
        clipped += norm > max_norm
        for g in opt.param_groups:
            g["lr"] = float(lrs[s])  # the exact float32 lr the C++ side used
        opt.step()
    errors["clip norm"] = rel_err(t["norm"], ref_norms)
    for n in names:
        p = params[n]
        st = opt.state[p]
        errors["final." + n] = rel_err(t["final." + n], p.detach().numpy())
        # The total displacement, so that errors in the (small) updates are not hidden by |p|.
        init = t["init." + n].astype(np.float64)
        errors["update." + n] = rel_err(t["final." + n] - init, p.detach().numpy().astype(np.float64) - init)
        errors["m." + n] = rel_err(t["m." + n], st["exp_avg"].numpy())
        errors["v." + n] = rel_err(t["v." + n], st["exp_avg_sq"].numpy())
        # Sanity: the run moved every parameter.
        if np.array_equal(t["final." + n], t["init." + n]):
            print(f"FAIL: {n} did not change over {steps} steps")
            return 1

    if clipped == 0 or clipped == steps:
        print(f"FAIL: clipping should be active on some steps only (active on {clipped}/{steps})")
        return 1
    for k, e in errors.items():
        print(f"  {k:24s} rel err {e:.3e}")
    worst_key = max(errors, key=lambda k: errors[k])
    worst = errors[worst_key]
    print(f"adamw parity: {steps} steps, clipping active on {clipped}, lr {lrs.min():.3g}..{lrs.max():.3g}; "
          f"worst relative error {worst:.3e} ({worst_key}), tolerance {args.tol:g}")
    if not worst <= args.tol:
        print("FAIL")
        return 1
    print("OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

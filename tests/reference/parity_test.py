#!/usr/bin/python3
"""Parity of the C++ model with its PyTorch twin (linformer_ref.py), in float64.

    /usr/bin/python3 tests/reference/parity_test.py --dump build/tests/parity_dump --workdir /tmp/parity [-v]

For every configuration below: write the config and a padded batch of token ids, run parity_dump
(C++: init, forward, backward, dump of weights/gradients/outputs), load the C++ weights into the
twin in float64, recompute hidden states, logits, loss and every parameter gradient with autograd,
and compare each tensor, every intermediate activation by name included (the C++ activation
table, dumped with --activations 1); a failing configuration names the first layer and tensor,
in forward order, that diverges. Plus two property checks:
  (a) twin only: Linformer attention with k = n = max_len and E = F = identity equals full attention;
  (b) C++ and twin: a sequence's hidden states do not depend on the padding around it.
Exit status 1 if any tensor exceeds its bound or a dump fails.
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import safetensors_io  # noqa: E402
from linformer_ref import Config, LinformerRef  # noqa: E402

BOUND = 1e-4          # parity bound on the norm-relative error (C++ float32 vs twin float64)
PAD_BOUND = 1e-5      # padding invariance: max abs difference of hidden states (values ~ O(1))

BASE = dict(vocab_size=50, max_len=20, d_model=32, n_heads=4, d_ff=48, n_layers=2,
            attention="linformer", k=8, sharing="headwise", proj_order="input_first",
            dropout=0.0, attention_dropout=0.0, layer_norm_eps=1e-5,
            # Larger than BERT's 0.02 so that attention is far from uniform and every path
            # (softmax, GELU, tanh) works in its non-linear range.
            init_std=0.3,
            num_labels=0, pooling="first")

# Three sequences of different lengths (padding), longest 13 < max_len 20 (E/F are sliced).
# The id 0 (= pad id) appears as a real token once: the mask must come from the lengths.
SEQS = [
    [5, 17, 3, 44, 9, 21, 0, 12, 33, 8, 49, 2, 27],
    [7, 1, 38, 15, 26, 4, 11],
    [30, 6, 19, 42, 13, 25, 36, 10, 47, 22],
]


def make_configs():
    cfgs = [("full", dict(attention="full"), "mlm"), ("tiled", dict(attention="tiled"), "mlm")]
    for sharing in ("none", "headwise", "kv", "layerwise"):
        for order in ("input_first", "linear_first"):
            cfgs.append((f"lin-{sharing}-{order}", dict(sharing=sharing, proj_order=order), "mlm"))
    # Nonuniform k: one layer with k < n, the other with k > n (13).
    cfgs.append(("lin-none-input_first-k[16,4]", dict(sharing="none", k=[16, 4]), "mlm"))
    cfgs.append(("lin-kv-linear_first-k[4,16]",
                 dict(sharing="kv", proj_order="linear_first", k=[4, 16]), "mlm"))
    cfgs.append(("lin-headwise-linear_first-k[8,4]",
                 dict(sharing="headwise", proj_order="linear_first", k=[8, 4]), "mlm"))
    # Classification head.
    cfgs.append(("cls-first-lin-kv", dict(sharing="kv", num_labels=3, pooling="first"), "cls"))
    cfgs.append(("cls-mean-lin-none-linear_first",
                 dict(sharing="none", proj_order="linear_first", num_labels=3, pooling="mean"), "cls"))
    cfgs.append(("cls-mean-full", dict(attention="full", num_labels=3, pooling="mean"), "cls"))
    # Other projections (docs/model.md). Window kinds need k | max_len (20): k = 5 is 4 positions
    # per window, so the sequences (13, 7, 10) end in partial windows and leave empty ones.
    for kind in ("mean", "max"):
        for order in ("input_first", "linear_first"):
            cfgs.append((f"{kind}-{order}", dict(projection=kind, k=5, proj_order=order), "mlm"))
    cfgs.append(("mean-k[4,10]", dict(projection="mean", k=[4, 10]), "mlm"))
    cfgs.append(("conv-none-input_first", dict(projection="conv", k=5, sharing="none"), "mlm"))
    cfgs.append(("conv-headwise-linear_first-k[5,4]",
                 dict(projection="conv", k=[5, 4], sharing="headwise", proj_order="linear_first"), "mlm"))
    cfgs.append(("conv-kv-input_first-k[4,10]", dict(projection="conv", k=[4, 10], sharing="kv"), "mlm"))
    cfgs.append(("conv-layerwise-linear_first",
                 dict(projection="conv", k=5, sharing="layerwise", proj_order="linear_first"), "mlm"))
    cfgs.append(("random-none-input_first", dict(projection="random", sharing="none"), "mlm"))
    cfgs.append(("random-kv-linear_first", dict(projection="random", sharing="kv", proj_order="linear_first"),
                 "mlm"))
    cfgs.append(("random-layerwise-input_first", dict(projection="random", sharing="layerwise"), "mlm"))
    cfgs.append(("cls-mean-max-linear_first",
                 dict(projection="max", k=4, proj_order="linear_first", num_labels=3, pooling="mean"), "cls"))
    out = []
    for name, over, task in cfgs:
        c = dict(BASE)
        c.update(over)
        out.append((name, c, task))
    return out


# Configurations (by name) also checked for padding invariance (b).
PAD_CHECK = {"full", "tiled", "lin-none-input_first", "lin-layerwise-linear_first",
             "lin-none-input_first-k[16,4]", "lin-kv-linear_first-k[4,16]", "cls-mean-lin-none-linear_first",
             "mean-input_first", "max-linear_first", "conv-none-input_first", "conv-layerwise-linear_first",
             "random-kv-linear_first"}


def rel_err(cpp, ref):
    """Norm-relative error: max|cpp - ref| / max(max|ref|, 1e-12).

    Not elementwise relative: the C++ computes in float32, where a sum's rounding error is of
    order eps * (magnitude of its terms), not of the result; entries near zero (cancellation)
    would make an elementwise ratio meaningless. Scaling by the tensor's largest magnitude
    measures the error against the tensor's own scale, which float32 keeps around 1e-6 here.
    The 1e-12 floor only avoids 0/0 for tensors that are exactly zero (e.g. the gradients of a
    head that the task does not use); then the C++ value must be (numerically) zero too.
    """
    ref = np.asarray(ref, dtype=np.float64)
    cpp = np.asarray(cpp, dtype=np.float64)
    if ref.shape != cpp.shape:
        return float("inf")
    if ref.size == 0:
        return 0.0
    diff = np.max(np.abs(cpp - ref))
    if not np.isfinite(diff):
        return float("inf")
    return float(diff / max(np.max(np.abs(ref)), 1e-12))


def write_inputs(wd, name, cfg, seqs):
    cpath = os.path.join(wd, f"{name}.json")
    ipath = os.path.join(wd, f"{name}.ids.txt")
    with open(cpath, "w") as f:
        json.dump(cfg, f, indent=1)
    with open(ipath, "w") as f:
        for s in seqs:
            f.write(" ".join(str(t) for t in s) + "\n")
    return cpath, ipath


def run_dump(args, cpath, ipath, out, seed, task):
    cmd = [args.dump, "--config", cpath, "--seed", str(seed), "--ids", ipath, "--out", out,
           "--task", task, "--activations", "1"]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"dump failed to run: {e}"
    if r.returncode != 0:
        return None, f"dump exit {r.returncode}: {r.stderr.strip()[-2000:]}"
    try:
        return safetensors_io.load(out), None
    except Exception as e:  # noqa: BLE001
        return None, f"cannot read dump {out}: {e}"


def padded(seqs):
    n = max(len(s) for s in seqs)
    ids = np.zeros((len(seqs), n), dtype=np.int64)
    mask = np.zeros((len(seqs), n), dtype=np.int64)
    for b, s in enumerate(seqs):
        ids[b, :len(s)] = s
        mask[b, :len(s)] = 1
    return ids, mask


def config_mismatch(mine, meta_json):
    """Differences between our config and the one the C++ read (metadata 'config')."""
    try:
        theirs = json.loads(meta_json)
    except Exception as e:  # noqa: BLE001
        return [f"metadata config is not JSON: {e}"]
    bad = []
    for key, val in mine.items():
        if key not in theirs:
            bad.append(f"{key}: missing")
            continue
        tv = theirs[key]
        if key == "k":
            a = [val] if isinstance(val, int) else list(val)
            b = [tv] if isinstance(tv, int) else list(tv)
            if len(b) == 1 and len(a) > 1:
                b = b * len(a)
            if len(a) == 1 and len(b) > 1:
                a = a * len(b)
            if a != b:
                bad.append(f"k: {val} vs {tv}")
        elif isinstance(val, float):
            if not np.isclose(val, tv, rtol=1e-6, atol=0):
                bad.append(f"{key}: {val} vs {tv}")
        elif val != tv:
            bad.append(f"{key}: {val!r} vs {tv!r}")
    return bad


def twin_forward(cfg_dict, tensors, task):
    """Loads the dumped weights into a float64 twin; returns (model, outputs dict)."""
    cfg = Config.from_dict(cfg_dict)
    m = LinformerRef(cfg).to(torch.float64)
    m.load_named(tensors)
    m.eval()
    ids = torch.from_numpy(tensors["ids"].astype(np.int64))
    mask = torch.from_numpy(tensors["mask"].astype(np.int64))
    labels = torch.from_numpy(tensors["labels"].astype(np.int64))
    m.zero_grad(set_to_none=True)
    acts = {}  # name -> tensor, in forward order (the C++ activation table's names)
    hidden = m.encode(ids, mask, acts)
    if task == "mlm":
        logits = m.mlm_logits(hidden, acts)
        loss = m.mlm_loss(logits, labels)
    else:
        logits = m.cls_logits(hidden, mask, acts)
        loss = m.cls_loss(logits, labels)
    loss.backward()
    return m, dict(hidden=hidden.detach().numpy(), logits=logits.detach().numpy(),
                   loss=loss.detach().numpy().reshape(1),
                   acts={k: v.detach().numpy() for k, v in acts.items()})


def compare_activations(tensors, meta, ref_acts, realm):
    """Errors of the dumped activations ("act." + name) against the twin's, in forward order;
    rows are B*n positions (only the real ones compared, as for hidden) or B sequences."""
    names = [a for a in meta.get("activations", "").split(",") if a]
    errors, msgs = {}, []
    if names != list(ref_acts):
        msgs.append(f"activation names differ: C++ only {sorted(set(names) - set(ref_acts))}, "
                    f"twin only {sorted(set(ref_acts) - set(names))}"
                    + ("" if set(names) != set(ref_acts) else " (order differs)"))
    flat = realm.reshape(-1)
    for name in names:
        if name not in ref_acts:
            continue
        cpp = tensors["act." + name]
        ref = ref_acts[name].reshape(cpp.shape) if ref_acts[name].size == cpp.size else ref_acts[name]
        if cpp.shape[0] == flat.size and not name.startswith("cls."):
            cpp, ref = cpp[flat], ref[flat]
        errors["act." + name] = rel_err(cpp, ref)
    return errors, msgs


def first_divergence(errors):
    """The first activation (in forward order) over the bound, as 'layer L, tensor NAME'."""
    for k, e in errors.items():
        if k.startswith("act.") and e > BOUND:
            name = k[4:]
            where = f"layer {name.split('.')[1]}" if name.startswith("blk.") else \
                ("embeddings" if name.startswith("emb") else "head " + name.split(".")[0])
            return f"first divergence: {where}, tensor {name} (error {e:.2e})"
    return None


def check_config(args, wd, idx, name, cfg, task):
    """Returns (ok, worst_name, worst_err, errors dict, messages)."""
    msgs = []
    cpath, ipath = write_inputs(wd, name, cfg, SEQS)
    out = os.path.join(wd, f"{name}.safetensors")
    seed = 1000 + idx
    res, err = run_dump(args, cpath, ipath, out, seed, task)
    if err:
        return False, "dump", float("inf"), {}, [err]
    tensors, meta = res

    # Inputs and config as the C++ saw them.
    ids, mask = padded(SEQS)
    if not np.array_equal(tensors["ids"], ids) or not np.array_equal(tensors["mask"], mask):
        msgs.append("ids/mask in the dump differ from the written batch")
    bad = config_mismatch(cfg, meta.get("config", "{}"))
    if bad:
        msgs.append("config read by C++ differs: " + "; ".join(bad))

    # Parameter set: the dump must hold exactly the twin's parameters, with the same shapes.
    twin_names = dict(LinformerRef(Config.from_dict(cfg)).named_parameters())
    special = {"ids", "mask", "labels", "hidden", "logits", "loss"}
    dumped = {k for k in tensors if not k.startswith(("grad.", "act.")) and k not in special}
    if set(twin_names) != dumped:
        msgs.append(f"parameter names differ: C++ only {sorted(dumped - set(twin_names))}, "
                    f"twin only {sorted(set(twin_names) - dumped)}")
        return False, "names", float("inf"), {}, msgs
    for k, p in twin_names.items():
        if tuple(tensors[k].shape) != tuple(p.shape):
            msgs.append(f"{k}: C++ shape {tensors[k].shape} vs twin {tuple(p.shape)}")
    if msgs:
        return False, "inputs", float("inf"), {}, msgs

    m, ref = twin_forward(cfg, tensors, task)
    realm = mask.astype(bool)
    errors, amsgs = compare_activations(tensors, meta, ref["acts"], realm)
    msgs += amsgs
    # hidden / MLM logits: only real positions. The spec defines nothing at padded positions
    # (no output or loss reads them), so an implementation may compute, zero or skip them.
    errors["hidden"] = rel_err(tensors["hidden"][realm], ref["hidden"][realm])
    if task == "mlm":
        errors["logits"] = rel_err(tensors["logits"][realm], ref["logits"][realm])
    else:
        errors["logits"] = rel_err(tensors["logits"], ref["logits"])
    errors["loss"] = rel_err(tensors["loss"], ref["loss"])
    params = dict(m.named_parameters())
    for pname, p in params.items():
        g = p.grad.detach().numpy() if p.grad is not None else np.zeros(tuple(p.shape))
        cg = tensors["grad." + pname]
        if pname.endswith("attn_k.bias") and (cfg["attention"] in ("full", "tiled")
                                              or cfg["proj_order"] == "input_first"
                                              or cfg.get("projection") in ("mean", "max")):
            # The exact gradient is zero: the key bias adds q . b_k to every score of a row
            # (every key, or every projected key; mean and max pooling of K = x Wk + bk pass
            # b_k through unchanged), and softmax is shift-invariant. Both sides
            # hold only rounding noise, so measure it against the scale of the key weights'
            # gradient instead of its own (zero) scale.
            scale = np.max(np.abs(params[pname[:-4] + "weight"].grad.detach().numpy()))
            errors["grad." + pname] = float(np.max(np.abs(cg - g)) / max(scale, 1e-12))
        else:
            errors["grad." + pname] = rel_err(cg, g)
    worst = max(errors, key=lambda k: errors[k])
    ok = all(e <= BOUND for e in errors.values()) and not amsgs
    first = first_divergence(errors)
    if first:
        msgs.insert(0, first)
    return ok, worst, errors[worst], errors, msgs


def check_padding_cpp(args, wd, idx, name, cfg, task):
    """(b) in C++ and the twin: the shortest sequence alone vs inside the padded batch."""
    b = int(np.argmin([len(s) for s in SEQS]))
    L = len(SEQS[b])
    seed = 1000 + idx
    full_out = os.path.join(wd, f"{name}.safetensors")  # written by check_config
    cpath, ipath = write_inputs(wd, name + ".alone", cfg, [SEQS[b]])
    res, err = run_dump(args, cpath, ipath, os.path.join(wd, f"{name}.alone.safetensors"), seed, task)
    if err:
        return False, err
    alone, _ = res
    batch, _ = safetensors_io.load(full_out)
    d_cpp = float(np.max(np.abs(alone["hidden"][0, :L] - batch["hidden"][b, :L])))
    # Same check in the twin (float64, should be ~1e-15).
    _, ref_alone = twin_forward(cfg, alone, task)
    _, ref_batch = twin_forward(cfg, batch, task)
    d_ref = float(np.max(np.abs(ref_alone["hidden"][0, :L] - ref_batch["hidden"][b, :L])))
    ok = d_cpp <= PAD_BOUND and d_ref <= 1e-10
    return ok, f"padding invariance: C++ max|diff| {d_cpp:.2e}, twin {d_ref:.2e}"


def check_identity_projection():
    """(a) twin only: k = n = max_len, headwise, E = F = I, no padding: Linformer == full."""
    worst = 0.0
    for order in ("input_first", "linear_first"):
        c = dict(BASE, max_len=12, k=12, sharing="headwise", proj_order=order)
        lin = LinformerRef(Config.from_dict(c)).to(torch.float64).init_weights(7)
        full = LinformerRef(Config.from_dict(dict(c, attention="full"))).to(torch.float64)
        full.load_named(dict(lin.named_parameters()), strict=False)
        with torch.no_grad():
            for blk in lin.blk:
                blk.attn_proj_e.copy_(torch.eye(12, dtype=torch.float64))
                blk.attn_proj_f.copy_(torch.eye(12, dtype=torch.float64))
        g = torch.Generator().manual_seed(3)
        ids = torch.randint(0, 50, (2, 12), generator=g)
        mask = torch.ones(2, 12, dtype=torch.int64)
        lin.eval()
        full.eval()
        with torch.no_grad():
            d = (lin.encode(ids, mask) - full.encode(ids, mask)).abs().max().item()
        worst = max(worst, d)
    return worst <= 1e-10, f"identity E/F == full attention (twin): max|diff| {worst:.2e}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dump", required=True, help="path to the parity_dump executable")
    ap.add_argument("--workdir", required=True, help="folder for configs, ids and dumps")
    ap.add_argument("-v", "--verbose", action="store_true", help="print every tensor's error")
    ap.add_argument("--only", default=None, help="run only configs whose name contains this")
    args = ap.parse_args()
    os.makedirs(args.workdir, exist_ok=True)
    torch.set_num_threads(1)
    t0 = time.time()
    failed = []

    ok, msg = check_identity_projection()
    print(f"{'PASS' if ok else 'FAIL'}  property (a): {msg}")
    if not ok:
        failed.append("property (a)")

    for idx, (name, cfg, task) in enumerate(make_configs()):
        if args.only and args.only not in name:
            continue
        ok, worst, werr, errors, msgs = check_config(args, args.workdir, idx, name, cfg, task)
        print(f"{'PASS' if ok else 'FAIL'}  {name:36s} worst {worst:40s} {werr:.2e}")
        for m in msgs:
            print(f"      {m}")
        if errors and (args.verbose or not ok):
            for k, e in errors.items():
                flag = "  <-- exceeds bound" if e > BOUND else ""
                print(f"      {k:40s} {e:.2e}{flag}")
        if not ok:
            failed.append(name)
            continue
        if name in PAD_CHECK:
            pok, pmsg = check_padding_cpp(args, args.workdir, idx, name, cfg, task)
            print(f"{'PASS' if pok else 'FAIL'}  {name:36s} {pmsg}")
            if not pok:
                failed.append(name + " (padding)")

    print(f"{len(failed)} failure(s) in {time.time() - t0:.1f} s (bound {BOUND:g})"
          + (": " + ", ".join(failed) if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

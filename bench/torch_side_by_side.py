#!/usr/bin/python3
"""linformer (C++) against PyTorch running the same algorithm, on the same machine, in one run.

    /usr/bin/python3 bench/torch_side_by_side.py --bin build/linformer \
        [--n 512,4096,16384] [--k 256] [--layers 2] [--threads 2] [--repeats 3] \
        [--modes infer,train] [--with-bf16] [--json FILE]

For each sequence length n it times, with the same config (RoBERTa-base layer sizes by default:
d 768, 12 heads, FFN 3072; Linformer with one projection shared by all layers, as in the paper's
Table 3; batch 1) and the same thread count:

- C++: `linformer bench --table3` (inference: the encoder in eval mode) and `--train-step`
  (forward with the MLM loss on every 7th token, backward, gradient clipping, AdamW), each in a
  fresh process, median of --repeats runs;
- PyTorch (Debian's torch, float32): the twin of the parity tests (tests/reference/linformer_ref.py),
  with its attention written the way a PyTorch user would for a projection shared over the heads
  (E X computed once, not once per head, see FastLayer), and the MLM head on the labelled rows only,
  as the C++ does: same FLOPs on both sides. Median of --repeats runs after one warm-up.

Before timing, both sides load the same weights (a model file written by `linformer init`) and
the script checks that their encoder outputs agree (printed: the largest absolute difference),
so that the two really run the same computation.

--with-bf16 also times the C++ side in bf16 mode (`linformer --bf16`: bf16 matmul operands,
float32 accumulation; AVX512_BF16 CPUs) against the same PyTorch float32 run.

Prints one table row per (mode, n) with both times and the ratio PyTorch / C++ (above 1: C++ is
faster), plus the thread count, the CPU and the config. Exit status 1 if the outputs disagree.
"""
import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

import linformer_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402


def fast_attention(layer, x, mask, shared):
    """The twin's attention with E X and F X computed once for all heads (shared projections)."""
    cfg = layer.cfg
    if cfg.attention != "linformer" or cfg.sharing not in ("headwise", "layerwise") or \
            cfg.proj_order != "input_first" or getattr(cfg, "projection", "learned") != "learned":
        return ref.Layer.attention(layer, x, mask, shared)
    B, n, d = x.shape
    h = cfg.n_heads
    dh = d // h
    if cfg.sharing == "headwise":
        E, Fp = layer.attn_proj_e, layer.attn_proj_f
    else:
        E = Fp = shared
    xm = x * mask.to(x.dtype)[:, :, None]
    ex = torch.matmul(E[:, :n], xm)  # [B, k, d]
    fx = ex if Fp is E else torch.matmul(Fp[:, :n], xm)

    def heads(t):
        return t.reshape(t.shape[0], t.shape[1], h, dh).transpose(1, 2)

    q = heads(layer.attn_q(x))
    kk = heads(layer.attn_k(ex))
    vv = heads(layer.attn_v(fx))
    p = torch.softmax(q @ kk.transpose(-1, -2) * (1.0 / math.sqrt(dh)), dim=-1)
    p = layer.drop(p, cfg.attention_dropout)
    c = (p @ vv).transpose(1, 2).reshape(B, n, d)
    return layer.attn_out(c)


class FastLayer(ref.Layer):
    def attention(self, x, mask, shared):
        return fast_attention(self, x, mask, shared)


def build_torch_model(cfg, weights):
    model = ref.LinformerRef(cfg)
    for layer in model.blk:
        layer.__class__ = FastLayer
    model.load_named(weights)
    return model.float()


def median_time(fn, repeats):
    fn()  # warm-up
    t = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        t.append(time.perf_counter() - t0)
    return statistics.median(t)


def torch_infer(model, ids, mask, repeats):
    model.eval()
    with torch.no_grad():
        return median_time(lambda: model.encode(ids, mask), repeats)


def torch_train_step(model, ids, mask, repeats):
    model.train()
    labels = torch.full_like(ids, ref.IGNORE_INDEX)
    labels.view(-1)[::7] = ids.view(-1)[::7]  # every 7th token, as `linformer bench --train-step`
    rows = (labels.view(-1) != ref.IGNORE_INDEX).nonzero().squeeze(1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.98), eps=1e-6, weight_decay=0.01)

    def step():
        opt.zero_grad(set_to_none=False)
        hidden = model.encode(ids, mask)
        flat = hidden.reshape(-1, hidden.shape[-1]).index_select(0, rows)  # the labelled rows only
        logits = model.mlm_logits(flat)
        loss = F.cross_entropy(logits, labels.view(-1).index_select(0, rows))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    return median_time(step, repeats)


def cpp_bench(args, mode, n, bf16=False):
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "b.json")
        flag = "--table3" if mode == "infer" else "--train-step"
        cmd = [args.bin, "--threads", str(args.threads)] + (["--bf16"] if bf16 else []) + ["bench", flag, "--kinds", "linformer", "--n", str(n), "--k", str(args.k),
               "--d-model", str(args.d_model), "--heads", str(args.heads), "--d-ff", str(args.d_ff),
               "--layers", str(args.layers), "--vocab", str(args.vocab), "--repeats", str(args.repeats),
               "--json", out]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{r.stdout}\n{r.stderr}")
        rows = json.load(open(out))["table3" if mode == "infer" else "train_step"]
        rows = [x for x in rows if x["kind"] == "linformer"]
        if not rows or not rows[0]["ok"]:
            raise SystemExit(f"{' '.join(cmd)}: no result: {rows}")
        return rows[0]["seconds"]


def check_same_outputs(args, cfg_dict, tmp, n):
    """Both sides load one model file; their hidden states must agree (float32 tolerance)."""
    cfg_path = os.path.join(tmp, "config.json")
    model_path = os.path.join(tmp, "model.safetensors")
    ids_path = os.path.join(tmp, "ids.txt")
    out_path = os.path.join(tmp, "out.safetensors")
    json.dump(cfg_dict, open(cfg_path, "w"))
    subprocess.run([args.bin, "init", "--config", cfg_path, "--out", model_path, "--seed", "3"], check=True,
                   capture_output=True)
    g = torch.Generator().manual_seed(5)
    ids = torch.randint(5, args.vocab, (1, n), generator=g)
    with open(ids_path, "w") as f:
        f.write(" ".join(str(int(i)) for i in ids[0]) + "\n")
    subprocess.run([args.bin, "forward", "--model", model_path, "--ids", ids_path, "--out", out_path, "--threads",
                    str(args.threads)], check=True, capture_output=True)
    tensors, _ = safetensors_io.load(model_path)
    model = build_torch_model(ref.Config.from_dict(cfg_dict), tensors)
    model.eval()
    with torch.no_grad():
        hidden = model.encode(ids, torch.ones_like(ids))
    cpp, _ = safetensors_io.load(out_path)
    diff = (torch.as_tensor(cpp["hidden"]).float() - hidden).abs().max().item()
    return model, ids, diff


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default=os.path.join(HERE, "..", "build", "linformer"))
    ap.add_argument("--n", default="512,4096,16384")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--d-model", type=int, default=768)
    ap.add_argument("--heads", type=int, default=12)
    ap.add_argument("--d-ff", type=int, default=3072)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--vocab", type=int, default=8000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--modes", default="infer,train")
    ap.add_argument("--with-bf16", action="store_true", help="also time linformer --bf16")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args()
    if not os.path.exists(args.bin):
        raise SystemExit(f"{args.bin}: no such binary (build first: bash scripts/setup.sh)")
    torch.set_num_threads(args.threads)
    ns = [int(x) for x in args.n.split(",")]
    modes = args.modes.split(",")
    for m in modes:
        if m not in ("infer", "train"):
            raise SystemExit(f"--modes: unknown mode '{m}' (infer, train)")

    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"# linformer (C++) vs PyTorch {torch.__version__}, same algorithm, float32")
    print(f"cpu: {cpu}; threads: {args.threads} (torch.set_num_threads and linformer --threads)")
    print(f"config: d_model {args.d_model}, {args.heads} heads, FFN {args.d_ff}, {args.layers} layers, vocab "
          f"{args.vocab}, Linformer k {args.k} (layerwise sharing), batch 1; median of {args.repeats} runs\n")
    extra_head = " linformer bf16 | PyTorch / linformer bf16 |" if args.with_bf16 else ""
    print("| mode | n | max abs diff of outputs | PyTorch | linformer | PyTorch / linformer |" + extra_head)
    print("|---|---|---|---|---|---|" + ("---|---|" if args.with_bf16 else ""))
    results, ok = [], True
    for n in ns:
        cfg_dict = {"vocab_size": args.vocab, "max_len": n, "d_model": args.d_model, "n_heads": args.heads,
                    "d_ff": args.d_ff, "n_layers": args.layers, "attention": "linformer", "k": [min(args.k, n)],
                    "sharing": "layerwise", "proj_order": "input_first", "dropout": 0.1, "attention_dropout": 0.1}
        with tempfile.TemporaryDirectory() as tmp:
            model, ids, diff = check_same_outputs(args, cfg_dict, tmp, n)
        if not diff < 1e-3:
            ok = False
        mask = torch.ones_like(ids)
        for mode in modes:
            t_torch = torch_infer(model, ids, mask, args.repeats) if mode == "infer" else \
                torch_train_step(model, ids, mask, args.repeats)
            t_cpp = cpp_bench(args, mode, n)
            ratio = t_torch / t_cpp
            row = {"mode": mode, "n": n, "max_abs_diff": diff, "torch_s": t_torch, "linformer_s": t_cpp,
                   "ratio": ratio}
            extra = ""
            if args.with_bf16:
                t_bf16 = cpp_bench(args, mode, n, bf16=True)
                row.update({"linformer_bf16_s": t_bf16, "ratio_bf16": t_torch / t_bf16})
                extra = f" {t_bf16 * 1e3:.1f} ms | {t_torch / t_bf16:.2f}x |"
            print(f"| {mode} | {n} | {diff:.2e} | {t_torch * 1e3:.1f} ms | {t_cpp * 1e3:.1f} ms | {ratio:.2f}x |" + extra,
                  flush=True)
            results.append(row)
        del model
    if args.json:
        meta = {"cpu": cpu, "threads": args.threads, "torch": torch.__version__, "config": vars(args),
                "results": results}
        tmp = args.json + ".tmp"
        json.dump(meta, open(tmp, "w"), indent=1)
        os.replace(tmp, args.json)
    if not ok:
        print("error: the outputs of the two sides differ by more than 1e-3", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

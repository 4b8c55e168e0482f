"""tatp22/linformer-pytorch: MHAttention modules (docs/convert.md).

Per module: one to_q / to_k / to_v ([dim, channels], no bias) per head, each head's
LinearAttentionHead with E and F (nn.Linear(input_size, dim_k), weight [k, N], with a bias), and
w_o (or w_o_1 then w_o_2, two linear maps that compose into one). Heads' maps stacked in head order
are our [d, d] maps. Keys and values are projected along the sequence after to_k / to_v (our
"linear_first"), padded rows zeroed first (input_mask), scores divided by sqrt(dim): as ours. Its
parameter_sharing modes are ours: "none" (every head its E, F), "headwise" (one E and one F per
layer), "kv" (E is F), "layerwise" (one for the model) -- read from which tensors are equal.

What does not map, refused by name: the activation MHAttention applies to the concatenated heads
before w_o (`activation`, which the state dict does not record: --activation says it; only "none"
maps), non-zero E/F biases (bE[j] would be added to every key's channel: linformer's projections
have no bias), convolutional E/F (per-channel Conv1d weights and bias), and the PreNorm residual
blocks of its `Linformer` / `LinformerLM`.
"""
import re

import numpy as np

from .errors import ConvertError
from .into import merge, natural_key
from .source import Source, same
from .torchfile import find_state_dict, load_torch


def _modules(state):
    return sorted({k[: -len("to_q.0.weight")] for k in state if k.endswith("to_q.0.weight")
                   and (k[: -len("to_q.0.weight")] + "heads.0.E.weight") in state}, key=natural_key)


def detect(state):
    return bool(_modules(state))


def convert(path, opts):
    state = find_state_dict(load_torch(path), path)
    mods = _modules(state)
    if not mods:
        raise ConvertError(f"{path}: no tatp22 MHAttention (keys ...to_q.0.weight with ...heads.0.E.weight)")
    problems = []
    if any(p.endswith("fn.") for p in mods) and any(re.search(r"fn\.norm\.weight$", k) for k in state):
        problems.append("pre-LayerNorm residual blocks (Residual(PreNorm(...)): ...fn.norm.weight normalises "
                        "each block's input; linformer normalises after each residual sum)")
    if "to_token_emb.weight" in state:
        problems.append("no embedding LayerNorm after to_token_emb + the sinusoidal positions")
    if "to_logits.weight" in state:
        problems.append("to_logits, an output layer of its own (linformer ties the decoder to the token embedding)")
    if problems:
        raise ConvertError(f"{path}: tatp22's Linformer/LinformerLM does not map onto a linformer model: "
                           + "; ".join(problems) + ". Its MHAttention modules alone may: convert their state "
                           "dicts with --into")
    if opts.activation is None:
        raise ConvertError(f"{path}: tatp22's MHAttention applies `activation` to the concatenated heads before "
                           "w_o and its state dict does not record which: pass --activation (only 'none' maps)")
    if opts.activation != "none":
        raise ConvertError(f"{path}: activation {opts.activation!r} on the concatenated heads before w_o does not "
                           "map: linformer's attention applies none")
    src = Source(state, path)
    layers, modes = [], []
    for p in mods:
        h = len({m.group(1) for k in state for m in [re.match(re.escape(p) + r"to_q\.(\d+)\.weight$", k)] if m})
        qs = [src.take(p + f"to_q.{i}.weight", [None, None]) for i in range(h)]
        dh, d = qs[0].shape
        if dh * h != d:
            raise ConvertError(f"{path}: {p}to_q.*: {h} heads of {dh} (dim_d) for {d} channels; linformer's heads "
                               "are d_model / n_heads wide")
        ks = [src.take(p + f"to_k.{i}.weight", [dh, d]) for i in range(h)]
        vs = [src.take(p + f"to_v.{i}.weight", [dh, d]) for i in range(h)]
        E, F = [], []
        for i in range(h):
            for name, out in (("E", E), ("F", F)):
                key = p + f"heads.{i}.{name}.weight"
                w = src.take(key)
                if w.ndim != 2:
                    raise ConvertError(f"{path}: {key} has shape {list(w.shape)}: a convolutional {name} (method "
                                       "'convolution': per-channel Conv1d weights and a bias) does not map onto "
                                       "linformer's one-kernel conv projection")
                b = src.take_optional(p + f"heads.{i}.{name}.bias", [w.shape[0]])
                if b is not None and np.any(b != 0):
                    raise ConvertError(f"{path}: {p}heads.{i}.{name}.bias is not zero (max |b| {np.abs(b).max():.3g}): "
                                       f"tatp22's {name} is nn.Linear with a bias, which adds b[j] to every channel "
                                       "of projected key/value j; linformer's projections have no bias")
                out.append(w)
        k, N = E[0].shape
        for w, name in [(w, "E") for w in E] + [(w, "F") for w in F]:
            if w.shape != (k, N):
                raise ConvertError(f"{path}: {p}heads.*.{name}.weight: heads project to different lengths "
                                   f"({list(w.shape)} vs [{k}, {N}])")
        if all(same(e, E[0]) for e in E) and all(same(f, F[0]) for f in F):
            mode = "kv" if same(E[0], F[0]) else "headwise"
        else:
            mode = "none"
        modes.append(mode)
        if src.has(p + "w_o.weight"):
            wo = src.take(p + "w_o.weight", [d, d])
            bo = src.take(p + "w_o.bias", [d])
        else:  # w_o_2(w_o_1(x)): one linear map W2 W1, bias W2 b1 + b2
            w1 = src.take(p + "w_o_1.weight", [None, d], "w_o, or w_o_1 and w_o_2 (w_o_intermediate_dim)")
            b1 = src.take(p + "w_o_1.bias", [w1.shape[0]])
            w2 = src.take(p + "w_o_2.weight", [d, w1.shape[0]])
            b2 = src.take(p + "w_o_2.bias", [d])
            wo = (w2.astype(np.float64) @ w1).astype(np.float32)
            bo = (w2.astype(np.float64) @ b1 + b2).astype(np.float32)
        z = np.zeros(d, np.float32)
        layers.append({"name": p.rstrip(".") or "(root)", "d": d, "k": k, "max_len": N, "h": h, "E": E, "F": F,
                       "tensors": {"attn_q.weight": np.concatenate(qs), "attn_q.bias": z,
                                   "attn_k.weight": np.concatenate(ks), "attn_k.bias": z,
                                   "attn_v.weight": np.concatenate(vs), "attn_v.bias": z,
                                   "attn_out.weight": wo, "attn_out.bias": bo}})
    src.finish(" (only MHAttention modules convert)")
    # One sharing mode for the model: the most general any module needs (kv data fits headwise,
    # headwise fits none), layerwise when every module holds the same single projection.
    order = ["kv", "headwise", "none"]
    mode = max(modes, key=order.index)
    if mode == "kv" and len({lay["k"] for lay in layers}) == 1 and all(same(l["E"][0], layers[0]["E"][0]) for l in layers):
        mode = "layerwise" if len(layers) > 1 else "kv"
    for i, lay in enumerate(layers):
        t = lay["tensors"]
        if mode == "layerwise":
            if i == 0:
                t["attn_proj_shared"] = lay["E"][0]
        elif mode == "kv":
            t["attn_proj_kv"] = lay["E"][0]
        elif mode == "headwise":
            t["attn_proj_e"], t["attn_proj_f"] = lay["E"][0], lay["F"][0]
        else:
            t["attn_proj_e"], t["attn_proj_f"] = np.stack(lay["E"]), np.stack(lay["F"])
    return merge(opts.into, path, layers, mode, "linear_first", [], heads=layers[0]["h"])

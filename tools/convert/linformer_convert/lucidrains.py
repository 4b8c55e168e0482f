"""lucidrains/linformer: LinformerSelfAttention modules (docs/convert.md).

Per module: to_q, to_k, to_v (no biases), proj_k / proj_v as [seq_len, k] (E = proj_k^T), to_out
(with a bias). Keys and values are projected along the sequence after to_k / to_v (our
proj_order "linear_first"; without key/value biases "input_first" would be the same function).
share_kv: values are the keys (to_v = to_k, proj_v = proj_k): our sharing "kv"; otherwise "headwise"
(one E, one F per layer for all heads). one_kv_head (keys/values of one head's width, shared by
every head) maps by repeating to_k / to_v for each head. Scores scaled by dim_head^-0.5, as ours.
The module has no padding mask and takes sequences of exactly seq_len: outputs agree on those.

`Linformer` / `LinformerLM` (PreNorm blocks, no embedding LayerNorm, to_logits) do not map.
"""
import re

import numpy as np

from .errors import ConvertError
from .into import load_base, merge, natural_key
from .source import Source
from .torchfile import find_state_dict, load_torch


def _modules(state):
    return sorted({k[: -len("to_q.weight")] for k in state if k.endswith("to_q.weight")
                   and (k[: -len("to_q.weight")] + "proj_k") in state}, key=natural_key)


def detect(state):
    return bool(_modules(state))


def refuse_stack(state, path):
    """lucidrains' own encoders: name every part that has no counterpart in ours."""
    problems = []
    for p in _modules(state):
        if p.endswith("fn.") and (p[: -len("fn.")] + "norm.weight") in state:
            problems.append(f"pre-LayerNorm blocks ({p[:-3]}norm.weight normalises the input of {p}; linformer "
                            "normalises after each residual sum)")
            break
    if "token_emb.weight" in state:
        problems.append("no embedding LayerNorm after token_emb + pos_emb (linformer has emb_norm)")
    if "to_logits.weight" in state:
        problems.append("to_logits, an output layer of its own (linformer's LM head is dense + GELU + LayerNorm "
                        "with the decoder tied to the token embedding)")
    if any(re.search(r"\.w1\.weight$", k) for k in state) and not problems:
        problems.append("FeedForward blocks outside linformer's post-LayerNorm layer")
    if problems:
        raise ConvertError(f"{path}: lucidrains' Linformer/LinformerLM does not map onto a linformer model: "
                           + "; ".join(problems) + ". Its LinformerSelfAttention modules alone do: save their "
                           "state dicts and convert them with --into")


def convert(path, opts):
    state = find_state_dict(load_torch(path), path)
    if not detect(state):
        raise ConvertError(f"{path}: no lucidrains LinformerSelfAttention (keys ...to_q.weight with ...proj_k)")
    refuse_stack(state, path)
    # The state dict does not record the heads: --heads, or the --into model's n_heads.
    h = opts.heads if opts.heads is not None else load_base(opts.into, path)[0]["n_heads"]
    src = Source(state, path)
    layers, share = [], set()
    for p in _modules(state):
        q = src.take(p + "to_q.weight", [None, None])
        inner, d = q.shape
        if inner % h:
            raise ConvertError(f"{path}: {p}to_q.weight has {inner} rows, not a multiple of {h} heads")
        dh = inner // h
        if inner != d:
            raise ConvertError(f"{path}: {p}to_q.weight is [{inner}, {d}]: dim_head x heads = {dh} x {h} differs "
                               f"from dim {d}, which linformer's attention (head size d_model / n_heads) cannot express")
        wk = src.take(p + "to_k.weight", [None, d])
        if wk.shape[0] not in (d, dh):
            raise ConvertError(f"{path}: {p}to_k.weight has {wk.shape[0]} rows: neither heads x dim_head ({d}) "
                               f"nor one head ({dh}, one_kv_head)")
        one_kv = wk.shape[0] == dh and dh != d
        pk = src.take(p + "proj_k", [None, None])
        N, k = pk.shape
        share_kv = not src.has(p + "to_v.weight")
        share.add(share_kv)
        wv = wk if share_kv else src.take(p + "to_v.weight", list(wk.shape))
        pv = pk if share_kv else src.take(p + "proj_v", [N, k])
        if one_kv:  # every head reads the same keys and values
            wk, wv = np.tile(wk, (h, 1)), np.tile(wv, (h, 1))
        t = {"attn_q.weight": q, "attn_q.bias": np.zeros(d, np.float32),
             "attn_k.weight": wk, "attn_k.bias": np.zeros(d, np.float32),
             "attn_v.weight": wv, "attn_v.bias": np.zeros(d, np.float32),
             "attn_out.weight": src.take(p + "to_out.weight", [d, d]),
             "attn_out.bias": src.take(p + "to_out.bias", [d])}
        if share_kv:
            t["attn_proj_kv"] = np.ascontiguousarray(pk.T)
        else:
            t["attn_proj_e"] = np.ascontiguousarray(pk.T)
            t["attn_proj_f"] = np.ascontiguousarray(pv.T)
        layers.append({"name": p.rstrip(".") or "(root)", "d": d, "k": k, "max_len": N, "tensors": t})
    src.finish(" (only LinformerSelfAttention modules convert)")
    if len(share) > 1:
        raise ConvertError(f"{path}: some modules share keys and values (share_kv) and others do not; a linformer "
                           "model has one sharing mode")
    notes = ["lucidrains' attention has no padding mask: outputs agree on sequences of exactly seq_len tokens"]
    return merge(opts.into, path, layers, "kv" if share.pop() else "headwise", "linear_first", notes, heads=h)

"""Attention modules from other Linformer libraries, placed into a linformer model (--into).

lucidrains' LinformerSelfAttention and tatp22's MHAttention are attention layers; their own
encoders around them (pre-LayerNorm blocks, no embedding LayerNorm, untied output layers) do not
map onto ours, so those are refused by name (lucidrains.py, tatp22.py). What maps is the attention
itself: each module becomes one layer's attention of a linformer model whose other tensors
(embeddings, FFN, LayerNorms, heads) come from the --into model file, in the modules' order.
"""
import json
import re

from . import safetensors
from .errors import ConvertError
from .model_file import Converted, make_config, tensor_table


def natural_key(s):
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", s)]


def load_base(path, source):
    if not path:
        raise ConvertError(f"{source}: its modules are attention layers: pass --into MODEL, a linformer model "
                           "file (e.g. from `linformer init`) that gives the rest of the encoder")
    tensors, meta = safetensors.read(path)
    if "linformer.config" not in meta:
        raise ConvertError(f"{path}: not a linformer model file (no linformer.config in its metadata)")
    try:
        cfg = json.loads(meta["linformer.config"])
    except ValueError as e:
        raise ConvertError(f"{path}: linformer.config is not valid JSON ({e})") from None
    cfg = make_config(**cfg)
    return cfg, tensors


def merge(base_path, source, layers, sharing, proj_order, notes, heads=None):
    """layers: one dict per module with attn_q/k/v/out weights and biases, the projections by our
    names (attn_proj_e/_f, attn_proj_kv or, for layerwise, attn_proj_shared), k and max_len."""
    cfg, base = load_base(base_path, source)
    L = cfg["n_layers"]
    if len(layers) != L:
        raise ConvertError(f"{source}: {len(layers)} attention modules for the {L} layers of {base_path}")
    d = cfg["d_model"]
    if heads is not None and heads != cfg["n_heads"]:
        raise ConvertError(f"{source}: the modules have {heads} heads, {base_path} has n_heads {cfg['n_heads']}")
    for i, lay in enumerate(layers):
        if lay["d"] != d:
            raise ConvertError(f"{source}: module {lay['name']} is {lay['d']} wide, {base_path} has d_model {d}")
        if lay["max_len"] != cfg["max_len"]:
            raise ConvertError(f"{source}: module {lay['name']} projects sequences of {lay['max_len']} positions, "
                               f"{base_path} has max_len {cfg['max_len']}")
    fields = dict(cfg, attention="linformer", k=[lay["k"] for lay in layers], sharing=sharing,
                  proj_order=proj_order, projection="learned")
    new = make_config(**fields)
    keep = {name for name, _ in tensor_table(cfg)}
    t = {}
    for name, _ in tensor_table(new):
        if re.match(r"blk\.\d+\.attn_(q|k|v|out|proj)", name) or name == "attn_proj_shared":
            continue
        if name not in keep or name not in base:
            raise ConvertError(f"{base_path}: missing tensor {name}")
        t[name] = base[name]
    for l, lay in enumerate(layers):
        for key, val in lay["tensors"].items():
            t[key if key == "attn_proj_shared" else f"blk.{l}.{key}"] = val
    notes.append(f"{len(layers)} attention modules ({', '.join(x['name'] for x in layers)}) into the layers of "
                 f"{base_path}; its other tensors kept")
    return Converted(new, t, notes=notes)

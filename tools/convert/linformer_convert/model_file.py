"""Our side of every conversion: the config, the tensor table and writing the model file.

The tensor table follows docs/format.md ("Tensors"); the file is what `linformer init` writes
(metadata format, format_version, linformer.config). `write_model` checks that the converter
produced exactly the table's tensors with the table's shapes and finite values, so a converter
bug surfaces here with the tensor's name instead of as a load error later.
"""
import json
import os
import shutil
import subprocess
import tempfile

import numpy as np

from . import safetensors
from .errors import ConvertError

# ModelConfig's fields and defaults (include/linformer/config.hpp, docs/format.md).
CONFIG_DEFAULTS = {
    "vocab_size": 8000, "max_len": 512, "d_model": 256, "n_heads": 4, "d_ff": 1024, "n_layers": 4,
    "attention": "linformer", "k": 64, "sharing": "headwise", "proj_order": "input_first",
    "projection": "learned", "dropout": 0.1, "attention_dropout": 0.1, "layer_norm_eps": 1e-5,
    "init_std": 0.02, "num_labels": 0, "pooling": "first",
}


def make_config(**fields):
    cfg = dict(CONFIG_DEFAULTS)
    for key, val in fields.items():
        if key not in cfg:
            raise ConvertError(f"internal: unknown config key {key}")
        cfg[key] = val
    ks = cfg["k"] if isinstance(cfg["k"], list) else [cfg["k"]]
    ks = [int(v) for v in ks]
    cfg["k"] = ks[0] if len(set(ks)) == 1 else ks
    if cfg["d_model"] % cfg["n_heads"]:
        raise ConvertError(f"d_model {cfg['d_model']} is not divisible by n_heads {cfg['n_heads']}")
    if cfg["attention"] == "linformer":
        if cfg["sharing"] == "layerwise" and len(set(ks)) > 1:
            raise ConvertError(f"sharing layerwise needs the same k in every layer, not {ks}")
        for k in ks:
            if not 1 <= k <= cfg["max_len"]:
                raise ConvertError(f"k = {k} must lie in [1, max_len = {cfg['max_len']}]")
            if cfg["projection"] in ("mean", "max", "conv") and cfg["max_len"] % k:
                raise ConvertError(f"projection {cfg['projection']} needs k dividing max_len: k = {k}, "
                                   f"max_len = {cfg['max_len']}")
    return cfg


def k_of(cfg, layer):
    return cfg["k"][layer] if isinstance(cfg["k"], list) else cfg["k"]


def proj_shape(cfg, layer):
    """The shape of one projection of `layer` (format.md's P_l), or None for mean/max."""
    kind = cfg["projection"]
    if kind in ("mean", "max"):
        return None
    if kind == "conv":
        return [cfg["max_len"] // k_of(cfg, layer)]
    return [k_of(cfg, layer), cfg["max_len"]]


def tensor_table(cfg):
    """[(name, shape)] in file order (docs/format.md)."""
    V, N, d, h, f = cfg["vocab_size"], cfg["max_len"], cfg["d_model"], cfg["n_heads"], cfg["d_ff"]
    lin = cfg["attention"] == "linformer"
    table = [("tok_emb.weight", [V, d]), ("pos_emb.weight", [N, d]), ("emb_norm.weight", [d]),
             ("emb_norm.bias", [d])]
    if lin and cfg["sharing"] == "layerwise" and proj_shape(cfg, 0) is not None:
        table.append(("attn_proj_shared", proj_shape(cfg, 0)))
    for l in range(cfg["n_layers"]):
        p = f"blk.{l}."
        for m in ("q", "k", "v"):
            table += [(p + f"attn_{m}.weight", [d, d]), (p + f"attn_{m}.bias", [d])]
        shape = proj_shape(cfg, l)
        if lin and shape is not None:
            if cfg["sharing"] == "none":
                table += [(p + "attn_proj_e", [h] + shape), (p + "attn_proj_f", [h] + shape)]
            elif cfg["sharing"] == "headwise":
                table += [(p + "attn_proj_e", shape), (p + "attn_proj_f", shape)]
            elif cfg["sharing"] == "kv":
                table.append((p + "attn_proj_kv", shape))
        table += [(p + "attn_out.weight", [d, d]), (p + "attn_out.bias", [d]),
                  (p + "attn_norm.weight", [d]), (p + "attn_norm.bias", [d]),
                  (p + "ffn_up.weight", [f, d]), (p + "ffn_up.bias", [f]),
                  (p + "ffn_down.weight", [d, f]), (p + "ffn_down.bias", [d]),
                  (p + "ffn_norm.weight", [d]), (p + "ffn_norm.bias", [d])]
    table += [("mlm.dense.weight", [d, d]), ("mlm.dense.bias", [d]), ("mlm.norm.weight", [d]),
              ("mlm.norm.bias", [d]), ("mlm.bias", [V])]
    C = cfg["num_labels"]
    if C > 0:
        table += [("cls.dense.weight", [d, d]), ("cls.dense.bias", [d]), ("cls.out.weight", [C, d]),
                  ("cls.out.bias", [C])]
    return table


def write_model(path, cfg, tensors):
    """Checks `tensors` against the table of `cfg` and writes the model file atomically."""
    table = tensor_table(cfg)
    names = {n for n, _ in table}
    extra = sorted(set(tensors) - names)
    if extra:
        raise ConvertError(f"internal: tensors not in the model's table: {extra}")
    ordered = {}
    for name, shape in table:
        if name not in tensors:
            raise ConvertError(f"internal: converter produced no tensor {name}")
        arr = np.ascontiguousarray(np.asarray(tensors[name], dtype=np.float32))
        if list(arr.shape) != shape:
            raise ConvertError(f"internal: {name} has shape {list(arr.shape)}, the model needs {shape}")
        if not np.isfinite(arr).all():
            bad = int(np.flatnonzero(~np.isfinite(arr))[0])
            raise ConvertError(f"tensor {name}: element {bad} is not finite ({arr.reshape(-1)[bad]}); "
                               "the source checkpoint holds NaN or infinity")
        ordered[name] = arr
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConvertError(f"{path}: folder {folder} does not exist")
    meta = {"format": "linformer", "format_version": "1",
            "linformer.config": json.dumps(cfg, separators=(",", ":"), sort_keys=True)}
    safetensors.write(path, ordered, meta)


def linformer_bin():
    """The `linformer` executable: $LINFORMER_BIN (set by `linformer convert` to itself), else None."""
    path = os.environ.get("LINFORMER_BIN")
    return path if path and os.path.isfile(path) else None


def init_tensors(cfg, seed):
    """Freshly initialised tensors of `cfg` as docs/model.md says (N(0, init_std), random
    projections N(0, 1/k), ...). With the `linformer` executable at hand this is `linformer init`
    itself, so the same seed gives the same tensors as `linformer init --seed`; without it, numpy
    draws from the same distributions (not the same numbers)."""
    exe = linformer_bin()
    if exe:
        tmp = tempfile.mkdtemp(prefix="linformer-convert-")
        try:
            cfg_path = os.path.join(tmp, "config.json")
            out = os.path.join(tmp, "init.safetensors")
            with open(cfg_path, "w") as f:
                json.dump(cfg, f)
            r = subprocess.run([exe, "init", "--config", cfg_path, "--seed", str(seed), "--out", out],
                               capture_output=True, text=True)
            if r.returncode != 0:
                raise ConvertError(f"linformer init refused the converted config: {r.stderr.strip()}")
            tensors, _ = safetensors.read(out)
            return tensors
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in tensor_table(cfg):
        if name.endswith("norm.weight"):
            out[name] = np.ones(shape, np.float32)
        elif name.endswith("bias"):
            out[name] = np.zeros(shape, np.float32)
        elif "attn_proj" in name and cfg["projection"] == "random":
            out[name] = (rng.standard_normal(shape) / np.sqrt(shape[-2])).astype(np.float32)
        else:
            out[name] = (rng.standard_normal(shape) * cfg["init_std"]).astype(np.float32)
    return out


class Converted:
    """What a converter returns: the config, the tensors by our names, the tokenizer to write
    (bytes of a SentencePiece model, or None) and lines for the report."""

    def __init__(self, cfg, tensors, tokenizer=None, notes=None):
        self.cfg = cfg
        self.tensors = tensors
        self.tokenizer = tokenizer
        self.notes = list(notes or [])

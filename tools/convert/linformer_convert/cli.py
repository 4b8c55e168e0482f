"""The command line: `linformer convert` runs this (`/usr/bin/python3 -m linformer_convert`).

    linformer convert [--from auto|fairseq|hf|lucidrains|tatp22] INPUT --out MODEL.safetensors [options]

Exit status 0 on success, 1 with `error: <message>` on stderr for anything that does not convert,
2 for a bad command line (argparse).
"""
import argparse
import os
import sys

from .errors import ConvertError
from .model_file import write_model

SOURCES = ("fairseq", "hf", "lucidrains", "tatp22")


def build_parser():
    p = argparse.ArgumentParser(
        prog="linformer convert",
        description="Convert a model trained elsewhere into a linformer model file (docs/convert.md).")
    p.add_argument("input", help="fairseq/PyTorch checkpoint (.pt), or a Hugging Face model folder")
    p.add_argument("--from", dest="source", choices=("auto",) + SOURCES, default="auto",
                   help="the source's layout (default: detected from the files and keys)")
    p.add_argument("--out", required=True, help="model file to write (safetensors)")
    p.add_argument("--tokenizer-out", help="where a carried-over tokenizer goes "
                   "(default: tokenizer.model beside --out)")
    g = p.add_argument_group("the source")
    g.add_argument("--heads", type=int, help="attention heads, when the checkpoint does not record them")
    g.add_argument("--padding-idx", type=int, help="fairseq: the dictionary's pad id (default 1)")
    g.add_argument("--head", help="fairseq: the classification head to keep (when there are several)")
    g.add_argument("--into", help="lucidrains/tatp22: a linformer model file giving every tensor but the "
                   "attention (embeddings, FFN, LayerNorms, heads)")
    g.add_argument("--activation", choices=("none", "gelu", "relu"),
                   help="tatp22: the MHAttention `activation` the module was built with (not in its state dict)")
    g = p.add_argument_group("the Linformer to build (hf; fairseq RoBERTa without compress matrices)")
    g.add_argument("--attention", choices=("linformer", "full", "tiled"),
                   help="attention of the converted model (hf default: linformer)")
    g.add_argument("--k", type=int, default=None, help="projected length (hf default: 256, at most max_len)")
    g.add_argument("--sharing", choices=("none", "headwise", "kv", "layerwise"), default="headwise")
    g.add_argument("--proj-order", choices=("input_first", "linear_first"), default="input_first")
    g.add_argument("--projection", choices=("learned", "random", "conv", "mean", "max"), default="learned")
    g.add_argument("--max-len", type=int, help="keep only the first MAX_LEN positions")
    g.add_argument("--init-std", type=float, default=None,
                   help="N(0, std) of the new E/F (hf default: the source's initializer_range)")
    g.add_argument("--seed", type=int, default=0, help="seed of the new tensors' initialisation")
    return p


def detect_source(path):
    from . import fairseq, lucidrains, tatp22
    from .torchfile import find_state_dict, load_torch

    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.json")):
            return "hf"
        raise ConvertError(f"{path}: unknown layout: a folder without config.json (a Hugging Face model "
                           "folder has config.json and model.safetensors or pytorch_model.bin)")
    if not os.path.exists(path):
        raise ConvertError(f"{path}: no such file or folder")
    state = find_state_dict(load_torch(path), path)
    for name, mod in (("fairseq", fairseq), ("lucidrains", lucidrains), ("tatp22", tatp22)):
        if mod.detect(state):
            return name
    keys = ", ".join(list(state)[:6])
    raise ConvertError(f"{path}: unknown layout: not fairseq (encoder.sentence_encoder.*), lucidrains "
                       f"(to_q / proj_k) or tatp22 (to_q.0 / heads.0.E) keys; first keys: {keys}; "
                       "pass --from to say which it is")


def run(opts):
    from . import fairseq, hf, lucidrains, tatp22

    source = opts.source if opts.source != "auto" else detect_source(opts.input)
    mod = {"fairseq": fairseq, "hf": hf, "lucidrains": lucidrains, "tatp22": tatp22}[source]
    conv = mod.convert(opts.input, opts)
    write_model(opts.out, conv.cfg, conv.tensors)
    cfg = conv.cfg
    lin = cfg["attention"] == "linformer"
    extra = (f" k={cfg['k']} sharing={cfg['sharing']} proj_order={cfg['proj_order']} "
             f"projection={cfg['projection']}") if lin else ""
    print(f"convert: {source} {opts.input} -> {opts.out}: attention={cfg['attention']} layers={cfg['n_layers']} "
          f"d_model={cfg['d_model']} heads={cfg['n_heads']} d_ff={cfg['d_ff']} vocab={cfg['vocab_size']} "
          f"max_len={cfg['max_len']}{extra} labels={cfg['num_labels']}")
    if conv.tokenizer is not None:
        tok_out = opts.tokenizer_out or os.path.join(os.path.dirname(os.path.abspath(opts.out)), "tokenizer.model")
        from .safetensors import write_bytes_atomic
        write_bytes_atomic(tok_out, conv.tokenizer)
        print(f"convert: tokenizer -> {tok_out}")
    for note in conv.notes:
        print(f"convert: {note}")


def main(argv=None):
    opts = build_parser().parse_args(argv)
    try:
        run(opts)
    except ConvertError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0

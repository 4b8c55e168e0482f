"""Hugging Face RoBERTa / XLM-RoBERTa folders into a Linformer (docs/convert.md).

RoBERTa is our encoder with full attention: learned positions offset by pad_token_id + 1, one
token type whose embedding (row 0) is added everywhere (we fold it into the positions), post-
LayerNorm layers with the erf GELU, the LM head tied to the word embedding. Converting keeps every
pretrained tensor and adds what a Linformer has beyond it: E/F, initialised as the target config
says (`linformer init`'s initialisation, with --seed), ready for more pretraining or fine-tuning.
`--attention full` gives the same model exactly; so does a Linformer with `--projection mean
--k MAX_LEN` (windows of one position: the identity).

Tokenizers: XLM-R's SentencePiece model is carried over (spm_model.py), the vocabulary reordered
to linformer's special ids; RoBERTa's byte-level BPE is not supported yet (reported; the model
then keeps RoBERTa's token ids).
"""
import json
import os
import re

import numpy as np

from . import safetensors
from .errors import ConvertError
from .model_file import Converted, init_tensors, make_config
from .source import Source, same
from .spm_model import xlmr_to_linformer
from .torchfile import find_state_dict, load_torch

MODEL_TYPES = ("roberta", "xlm-roberta", "camembert")


def _load_weights(folder):
    st = os.path.join(folder, "model.safetensors")
    index = os.path.join(folder, "model.safetensors.index.json")
    pt = os.path.join(folder, "pytorch_model.bin")
    if os.path.isfile(st):
        return safetensors.read(st)[0], st
    if os.path.isfile(index):  # sharded: the index's weight_map names each tensor's file
        try:
            with open(index) as f:
                files = sorted(set(json.load(f)["weight_map"].values()))
        except (OSError, ValueError, KeyError) as e:
            raise ConvertError(f"{index}: not a safetensors index ({e})") from None
        tensors = {}
        for name in files:
            tensors.update(safetensors.read(os.path.join(folder, name))[0])
        return tensors, index
    if os.path.isfile(pt):
        return find_state_dict(load_torch(pt), pt), pt
    raise ConvertError(f"{folder}: no weights: expected model.safetensors (or its index) or pytorch_model.bin")


def convert(folder, opts):
    if not os.path.isdir(folder):
        raise ConvertError(f"{folder}: a Hugging Face model is a folder (config.json and the weights)")
    cfg_path = os.path.join(folder, "config.json")
    try:
        with open(cfg_path) as f:
            hf = json.load(f)
    except FileNotFoundError:
        raise ConvertError(f"{cfg_path}: no such file (a Hugging Face model folder has config.json)") from None
    except ValueError as e:
        raise ConvertError(f"{cfg_path}: not valid JSON ({e})") from None

    def need(key):
        if key not in hf:
            raise ConvertError(f"{cfg_path}: missing key {key}")
        return hf[key]

    mtype = hf.get("model_type")
    if mtype not in MODEL_TYPES:
        raise ConvertError(f"{cfg_path}: model_type {mtype!r} is not supported (supported: {', '.join(MODEL_TYPES)})")
    for key, want in (("hidden_act", "gelu"), ("position_embedding_type", "absolute")):
        if hf.get(key, want) != want:
            raise ConvertError(f"{cfg_path}: {key} = {hf[key]!r} does not map (linformer: {want!r})")
    for key in ("is_decoder", "add_cross_attention"):
        if hf.get(key):
            raise ConvertError(f"{cfg_path}: {key} = true does not map (linformer is an encoder)")

    raw, wpath = _load_weights(folder)
    # RobertaForMaskedLM / ...ForSequenceClassification prefix the encoder with "roberta."
    prefix = "roberta." if any(k.startswith("roberta.") for k in raw) else ""
    src = Source(raw, wpath)
    d, h, f, L = need("hidden_size"), need("num_attention_heads"), need("intermediate_size"), need("num_hidden_layers")
    V = need("vocab_size")
    pad = hf.get("pad_token_id", 1)
    eps = float(hf.get("layer_norm_eps", 1e-5))
    e = prefix + "embeddings."
    tok = src.take(e + "word_embeddings.weight", [V, d])
    pos = src.take(e + "position_embeddings.weight", [need("max_position_embeddings"), d])
    N_src = pos.shape[0] - (pad + 1)
    if N_src <= 0:
        raise ConvertError(f"{wpath}: {e}position_embeddings.weight has {pos.shape[0]} rows: none left after "
                           f"RoBERTa's offset pad_token_id + 1 = {pad + 1}")
    max_len = opts.max_len or N_src
    if max_len > N_src:
        raise ConvertError(f"--max-len {max_len} exceeds the model's {N_src} positions")
    pos = pos[pad + 1: pad + 1 + max_len].copy()
    types = src.take_optional(e + "token_type_embeddings.weight", [None, d])
    if types is not None:
        pos += types[0]  # every token has type 0: a constant added to every position
    src.ignore(lambda k: k in (e + "position_ids", e + "token_type_ids"))

    attention = opts.attention or "linformer"
    k = opts.k if opts.k is not None else min(256, max_len)
    std = opts.init_std if opts.init_std is not None else float(hf.get("initializer_range", 0.02))
    labels = 0
    if src.has("classifier.out_proj.weight"):
        labels = src.take("classifier.out_proj.weight", [None, d]).shape[0]
    cfg = make_config(vocab_size=V, max_len=max_len, d_model=d, n_heads=h, d_ff=f, n_layers=L,
                      attention=attention, k=k, sharing=opts.sharing, proj_order=opts.proj_order,
                      projection=opts.projection, dropout=float(hf.get("hidden_dropout_prob", 0.1)),
                      attention_dropout=float(hf.get("attention_probs_dropout_prob", 0.1)),
                      layer_norm_eps=eps, init_std=std, num_labels=labels)
    t = init_tensors(cfg, opts.seed)  # E/F (and a missing LM head) keep these; the rest is overwritten
    notes = []
    t["tok_emb.weight"] = tok
    t["pos_emb.weight"] = pos
    t["emb_norm.weight"] = src.take(e + "LayerNorm.weight", [d])
    t["emb_norm.bias"] = src.take(e + "LayerNorm.bias", [d])
    found = sorted({int(m.group(1)) for key in raw for m in [re.match(re.escape(prefix) + r"encoder\.layer\.(\d+)\.", key)] if m})
    if found and found[-1] >= L:
        raise ConvertError(f"{wpath}: {prefix}encoder.layer.{found[-1]} exists but num_hidden_layers is {L}")
    for l in range(L):
        p, b = f"{prefix}encoder.layer.{l}.", f"blk.{l}."
        for ours, theirs in (("attn_q", "attention.self.query"), ("attn_k", "attention.self.key"),
                             ("attn_v", "attention.self.value"), ("attn_out", "attention.output.dense")):
            t[b + ours + ".weight"] = src.take(p + theirs + ".weight", [d, d])
            t[b + ours + ".bias"] = src.take(p + theirs + ".bias", [d])
        for ours, theirs in (("attn_norm", "attention.output.LayerNorm"), ("ffn_norm", "output.LayerNorm")):
            t[b + ours + ".weight"] = src.take(p + theirs + ".weight", [d])
            t[b + ours + ".bias"] = src.take(p + theirs + ".bias", [d])
        t[b + "ffn_up.weight"] = src.take(p + "intermediate.dense.weight", [f, d])
        t[b + "ffn_up.bias"] = src.take(p + "intermediate.dense.bias", [f])
        t[b + "ffn_down.weight"] = src.take(p + "output.dense.weight", [d, f])
        t[b + "ffn_down.bias"] = src.take(p + "output.dense.bias", [d])

    if src.has("lm_head.dense.weight"):
        t["mlm.dense.weight"] = src.take("lm_head.dense.weight", [d, d])
        t["mlm.dense.bias"] = src.take("lm_head.dense.bias", [d])
        t["mlm.norm.weight"] = src.take("lm_head.layer_norm.weight", [d])
        t["mlm.norm.bias"] = src.take("lm_head.layer_norm.bias", [d])
        t["mlm.bias"] = src.take("lm_head.bias", [V])
        dec = src.take_optional("lm_head.decoder.weight", [V, d])
        if dec is not None and not same(dec, tok):
            raise ConvertError(f"{wpath}: lm_head.decoder.weight differs from {e}word_embeddings.weight (untied "
                               "decoder) and does not map: linformer ties the decoder to the token embedding")
        dec_b = src.take_optional("lm_head.decoder.bias", [V])
        if dec_b is not None and not same(dec_b, t["mlm.bias"]):
            raise ConvertError(f"{wpath}: lm_head.decoder.bias differs from lm_head.bias")
    else:
        notes.append("no LM head (lm_head.*) in the weights: mlm.* freshly initialised")
    if labels:
        t["cls.dense.weight"] = src.take("classifier.dense.weight", [d, d])
        t["cls.dense.bias"] = src.take("classifier.dense.bias", [d])
        t["cls.out.weight"] = src.take("classifier.out_proj.weight", [labels, d])
        t["cls.out.bias"] = src.take("classifier.out_proj.bias", [labels])
        notes.append(f"classification head: {labels} labels")
    if src.has(prefix + "pooler.dense.weight"):
        src.ignore(lambda key: key.startswith(prefix + "pooler."))
        notes.append("the pooler (pooler.dense) is not used by RoBERTa's heads and is dropped")
    src.finish()

    if attention == "linformer" and cfg["projection"] in ("learned", "random", "conv"):
        notes.append(f"E/F added ({cfg['projection']}, sharing {cfg['sharing']}, k {cfg['k']}): initialised "
                     f"with seed {opts.seed}; continue pretraining before use")

    tokenizer = None
    spm = os.path.join(folder, "sentencepiece.bpe.model")
    if os.path.isfile(spm):
        for key, want in (("bos_token_id", 0), ("pad_token_id", 1), ("eos_token_id", 2)):
            if hf.get(key, want) != want:
                raise ConvertError(f"{cfg_path}: {key} = {hf[key]} is not XLM-R's {want}: the ids of "
                                   "sentencepiece.bpe.model cannot be mapped as XLMRobertaTokenizer does")
        with open(spm, "rb") as fh:
            model_bytes, hf_ids = xlmr_to_linformer(fh.read(), V, spm)
        order = np.asarray(hf_ids)
        t["tok_emb.weight"] = t["tok_emb.weight"][order]
        t["mlm.bias"] = t["mlm.bias"][order]
        tokenizer = model_bytes
        notes.append("tokenizer: XLM-R's SentencePiece model carried over; token ids reordered to linformer's "
                     "(<pad>=0 <s>=1 </s>=2 <unk>=3 <mask>=4, then the pieces: Hugging Face id i >= 4 is id i + 1)")
    elif os.path.isfile(os.path.join(folder, "vocab.json")) or os.path.isfile(os.path.join(folder, "merges.txt")):
        notes.append("tokenizer: RoBERTa's byte-level BPE (vocab.json + merges.txt) is not supported yet and was "
                     "not converted; the model keeps RoBERTa's token ids (encode text with RoBERTa's tokenizer)")
    else:
        notes.append("tokenizer: none in the folder; the model keeps the source's token ids")
    return Converted(cfg, t, tokenizer, notes)

"""fairseq checkpoints: `linformer_roberta` (examples/linformer) and plain `roberta` (docs/convert.md).

fairseq's encoder is ours: learned positions, embedding LayerNorm, post-LayerNorm layers with the
erf GELU, RoBERTa's LM head tied to the token embedding. Its Linformer attention
(MultiheadLinearAttention) projects the layer input along the sequence before the key/value maps
(our proj_order "input_first"), with one compress matrix per layer shared by the heads
(compress_k / compress_v: our sharing "headwise"), one for keys and values (shared_kv_compressed:
"kv"), or one for the whole model (shared_layer_kv_compressed: "layerwise"). Its q scaling
(q * head_dim^-0.5, bias included) is our 1/sqrt(dh) on the scores. Positions: fairseq numbers
real tokens from padding_idx + 1 (make_positions), so our pos_emb row t is its row t + padding_idx + 1.

Not the same: fairseq zeroes padded positions only after the embeddings, and from layer 1 on its
compressed keys mix in the padded rows; ours exclude padding in every layer. Sequences without
padding (and all sequences of a one-layer model) give the same outputs.
"""
import re

import numpy as np

from .errors import ConvertError
from .model_file import Converted, make_config
from .source import Source, same
from .torchfile import find_state_dict, load_torch, plain

_PREFIXES = ("encoder.sentence_encoder.", "decoder.sentence_encoder.")


def detect(state):
    return any(k.startswith(p) for k in state for p in _PREFIXES)


def _args(ckpt):
    """The model's arguments: 'args' (argparse.Namespace, older fairseq) or cfg['model']."""
    if not isinstance(ckpt, dict):
        return {}
    args = plain(ckpt.get("args"))
    if isinstance(args, dict) and args:
        return args
    cfg = plain(ckpt.get("cfg"))
    if isinstance(cfg, dict) and isinstance(cfg.get("model"), dict):
        return cfg["model"]
    return {}


def convert(path, opts):
    ckpt = load_torch(path)
    state = find_state_dict(ckpt, path)
    if not detect(state):
        raise ConvertError(f"{path}: not a fairseq RoBERTa/Linformer checkpoint: no key starts with "
                           f"{' or '.join(_PREFIXES)} (first keys: {', '.join(list(state)[:5])})")
    args = _args(ckpt)
    src = Source(state, path)
    root = next(p for p in _PREFIXES if any(k.startswith(p) for k in state))  # encoder. or decoder.
    se = root
    head = root[: -len("sentence_encoder.")]  # "encoder." (lm_head lives beside sentence_encoder)
    notes = []
    std = opts.init_std if opts.init_std is not None else 0.02

    def arg(name, default=None):
        return args.get(name, default)

    # Parts of fairseq's encoder that ours has no counterpart for.
    act = arg("activation_fn", "gelu")
    if act != "gelu":
        raise ConvertError(f"{path}: activation_fn = {act!r} does not map: linformer uses the exact "
                           "(erf) GELU ('gelu'); 'gelu_accurate' is the tanh approximation")
    if arg("encoder_normalize_before", False) or src.has(se + "layer_norm.weight"):
        raise ConvertError(f"{path}: encoder_normalize_before (pre-LayerNorm layers, key "
                           f"{se}layer_norm.weight) does not map: linformer's layers are post-LayerNorm")
    if arg("no_scale_embedding", True) is False:
        raise ConvertError(f"{path}: no_scale_embedding = False (token embeddings scaled by sqrt(d)) does "
                           "not map: linformer ties the unscaled embedding to the LM decoder")
    if src.has(se + "embed_positions._float_tensor"):
        raise ConvertError(f"{path}: sinusoidal positions ({se}embed_positions._float_tensor) do not map: "
                           "linformer needs learned positions (encoder_learned_pos)")
    for key in src.keys():
        if key.endswith("self_attn.bias_k") or key.endswith("self_attn.bias_v"):
            raise ConvertError(f"{path}: {key} (add_bias_kv) does not map onto linformer's attention")
    if src.has(se + "segment_embeddings.weight") or src.has(se + "embed_segments.weight"):
        raise ConvertError(f"{path}: segment embeddings do not map (linformer has no token types)")

    tok = src.take(se + "embed_tokens.weight", [None, None], "the token embedding")
    V, d = tok.shape
    layer_ids = sorted({int(m.group(1)) for k in state for m in [re.match(re.escape(se) + r"layers\.(\d+)\.", k)] if m})
    if not layer_ids:
        raise ConvertError(f"{path}: missing key {se}layers.0.self_attn.q_proj.weight (no encoder layers)")
    if layer_ids != list(range(len(layer_ids))):
        raise ConvertError(f"{path}: encoder layers are not numbered 0..{len(layer_ids) - 1}: {layer_ids}")
    L = len(layer_ids)
    heads = opts.heads or arg("encoder_attention_heads")
    if not heads:
        raise ConvertError(f"{path}: the number of attention heads is not in the checkpoint (no args / "
                           "cfg.model.encoder_attention_heads): pass --heads")
    heads = int(heads)
    if d % heads:
        raise ConvertError(f"{path}: embedding width {d} is not divisible by {heads} heads")

    # Linformer's compress matrices: which sharing mode the keys say.
    shared_key = se + "compress_layer.weight"
    lay = se + "layers.0.self_attn."
    linformer = src.has(shared_key) or src.has(lay + "compress_k.weight") or \
        src.has(se + "layers.0.shared_compress_layer.weight")
    if linformer:
        if src.has(shared_key):
            shared = src.take(shared_key, [None, None])
            src.ignore(lambda k: k == se + "compress_layer.bias")  # nn.Linear's bias: never used
        elif src.has(se + "layers.0.shared_compress_layer.weight"):
            shared = src.take(se + "layers.0.shared_compress_layer.weight", [None, None])
        else:
            shared = None
        first = shared if shared is not None else src.take(lay + "compress_k.weight", [None, None])
        k, N = first.shape
        if shared is not None:
            sharing = "layerwise"
        elif src.has(lay + "compress_v.weight"):
            sharing = "headwise"
        else:
            sharing = "kv"
    else:
        k, N, sharing, shared = 0, None, None, None

    pad = opts.padding_idx if opts.padding_idx is not None else 1
    pos = src.take(se + "embed_positions.weight", [None, d], "learned positions")
    if N is None:  # plain RoBERTa: max_positions = rows - padding_idx - 1
        N = pos.shape[0] - (pad + 1)
        if N <= 0:
            raise ConvertError(f"{path}: {se}embed_positions.weight has {pos.shape[0]} rows: no room for "
                               f"positions after fairseq's offset padding_idx + 1 = {pad + 1}")
    if pos.shape[0] != N + pad + 1:
        raise ConvertError(f"{path}: {se}embed_positions.weight has {pos.shape[0]} rows, expected "
                           f"max_positions + padding_idx + 1 = {N} + {pad} + 1 (the compress matrices have "
                           f"{N} columns); pass --padding-idx if the dictionary's pad is not 1")
    max_len = opts.max_len or N
    if max_len > N:
        raise ConvertError(f"{path}: --max-len {max_len} exceeds the checkpoint's {N} positions")

    t = {"tok_emb.weight": tok, "pos_emb.weight": pos[pad + 1: pad + 1 + max_len]}
    for ours, theirs in (("emb_norm", "layernorm_embedding"), ("emb_norm", "emb_layer_norm")):
        if src.has(se + theirs + ".weight"):
            t[ours + ".weight"] = src.take(se + theirs + ".weight", [d])
            t[ours + ".bias"] = src.take(se + theirs + ".bias", [d])
    if "emb_norm.weight" not in t:
        raise ConvertError(f"{path}: missing key {se}layernorm_embedding.weight (or emb_layer_norm.weight): "
                           "linformer needs the embedding LayerNorm")
    if linformer and shared is not None:
        t["attn_proj_shared"] = shared[:, :max_len]

    d_ff = None
    for l in range(L):
        p = f"{se}layers.{l}."
        b = f"blk.{l}."
        for ours, theirs in (("attn_q", "q_proj"), ("attn_k", "k_proj"), ("attn_v", "v_proj"),
                             ("attn_out", "out_proj")):
            t[b + ours + ".weight"] = src.take(p + f"self_attn.{theirs}.weight", [d, d])
            t[b + ours + ".bias"] = src.take(p + f"self_attn.{theirs}.bias", [d])
        if linformer:
            ck, cv = p + "self_attn.compress_k.weight", p + "self_attn.compress_v.weight"
            if sharing == "layerwise":
                # fairseq's state dict may repeat the shared module under every layer: it must be it.
                for key in (ck, cv, p + "shared_compress_layer.weight"):
                    if src.has(key):
                        if not same(src.take(key, [k, N]), shared):
                            raise ConvertError(f"{path}: {key} differs from the shared compress layer")
                # its bias (nn.Linear's; F.linear on .weight never uses it), wherever it is repeated
                src.ignore(lambda x, p=p: x in (p + "shared_compress_layer.bias", p + "self_attn.compress_k.bias",
                                                p + "self_attn.compress_v.bias"))
            else:
                e = src.take(ck, [k, N], "the layer's compress matrix")
                if sharing == "headwise":
                    t[b + "attn_proj_e"] = e[:, :max_len]
                    t[b + "attn_proj_f"] = src.take(cv, [k, N])[:, :max_len]
                else:
                    if src.has(cv):
                        raise ConvertError(f"{path}: {cv} present in layer {l} but not in layer 0")
                    t[b + "attn_proj_kv"] = e[:, :max_len]
        for ours, theirs in (("attn_norm", "self_attn_layer_norm"), ("ffn_norm", "final_layer_norm")):
            t[b + ours + ".weight"] = src.take(p + theirs + ".weight", [d])
            t[b + ours + ".bias"] = src.take(p + theirs + ".bias", [d])
        up = src.take(p + "fc1.weight", [d_ff, d])
        d_ff = up.shape[0]
        t[b + "ffn_up.weight"] = up
        t[b + "ffn_up.bias"] = src.take(p + "fc1.bias", [d_ff])
        t[b + "ffn_down.weight"] = src.take(p + "fc2.weight", [d, d_ff])
        t[b + "ffn_down.bias"] = src.take(p + "fc2.bias", [d])

    # RoBERTa's LM head: dense, GELU, LayerNorm, the decoder tied to embed_tokens, a bias.
    lm = head + "lm_head."
    if src.has(lm + "dense.weight"):
        t["mlm.dense.weight"] = src.take(lm + "dense.weight", [d, d])
        t["mlm.dense.bias"] = src.take(lm + "dense.bias", [d])
        t["mlm.norm.weight"] = src.take(lm + "layer_norm.weight", [d])
        t["mlm.norm.bias"] = src.take(lm + "layer_norm.bias", [d])
        t["mlm.bias"] = src.take(lm + "bias", [V])
        if src.has(lm + "weight") and not same(src.take(lm + "weight", [V, d]), tok):
            raise ConvertError(f"{path}: {lm}weight differs from {se}embed_tokens.weight (an untied LM "
                               "decoder) and does not map: linformer ties the decoder to the token embedding")
    else:
        notes.append(f"no LM head in the checkpoint ({lm}dense.weight): mlm.* initialised as for a new model")
        t["mlm.dense.weight"] = np.random.default_rng(opts.seed).normal(0, std, (d, d)).astype(np.float32)
        t["mlm.dense.bias"] = np.zeros(d, np.float32)
        t["mlm.norm.weight"] = np.ones(d, np.float32)
        t["mlm.norm.bias"] = np.zeros(d, np.float32)
        t["mlm.bias"] = np.zeros(V, np.float32)

    # Sentence classification heads (RobertaClassificationHead: dense, tanh, out_proj).
    heads_found = sorted({k.split(".")[1] for k in state if k.startswith("classification_heads.")})
    num_labels = 0
    chosen = opts.head
    if chosen and chosen not in heads_found:
        raise ConvertError(f"{path}: no classification head {chosen!r} (found: {heads_found or 'none'})")
    if not chosen and len(heads_found) == 1:
        chosen = heads_found[0]
    if not chosen and len(heads_found) > 1:
        raise ConvertError(f"{path}: several classification heads {heads_found}: pass --head NAME")
    if chosen:
        if arg("pooler_activation_fn", "tanh") != "tanh":
            raise ConvertError(f"{path}: pooler_activation_fn = {arg('pooler_activation_fn')!r} does not map "
                               "(linformer's classification head uses tanh)")
        hp = f"classification_heads.{chosen}."
        t["cls.dense.weight"] = src.take(hp + "dense.weight", [d, d])
        t["cls.dense.bias"] = src.take(hp + "dense.bias", [d])
        out = src.take(hp + "out_proj.weight", [None, d])
        num_labels = out.shape[0]
        t["cls.out.weight"] = out
        t["cls.out.bias"] = src.take(hp + "out_proj.bias", [num_labels])
        notes.append(f"classification head {chosen!r}: {num_labels} labels")
    src.ignore(lambda k: k.startswith("classification_heads.") and chosen is not None
               and not k.startswith(f"classification_heads.{chosen}."))
    src.ignore(lambda k: k.endswith(".version") or k == "version" or k.endswith("._float_tensor"))
    src.finish()

    cfg = make_config(
        vocab_size=V, max_len=max_len, d_model=d, n_heads=heads, d_ff=d_ff, n_layers=L,
        attention="linformer" if linformer else (opts.attention or "full"),
        k=k if linformer else 64, sharing=sharing or "headwise", proj_order="input_first",
        dropout=float(arg("dropout", 0.1)), attention_dropout=float(arg("attention_dropout", 0.1)),
        layer_norm_eps=1e-5, init_std=std, num_labels=num_labels)
    if not linformer:
        if opts.attention == "linformer":
            raise ConvertError(f"{path}: a RoBERTa checkpoint without compress matrices; converting it into "
                               "a Linformer is what `--from hf` does for Hugging Face folders")
        notes.append("no compress matrices: a full-attention (RoBERTa) model")
    notes.append(f"token ids are fairseq's dictionary ids (<s>=0 <pad>={pad} </s>=2 <unk>=3, <mask> last); "
                 "fairseq's GPT-2 BPE tokenizer is not converted")
    return Converted(cfg, t, notes=notes)

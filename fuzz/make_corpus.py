#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into fuzz/corpus/<target>/ (deterministic).

Small valid files of each format (so that the fuzzer starts from deep inside the parsers) and a
few malformed ones (truncated, inconsistent counts, bad JSON). Standard library only.
Usage: python3 fuzz/make_corpus.py [OUT_DIR]   (default: fuzz/corpus next to this script)
"""
import json
import os
import shutil
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")


def put(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


# ------------------------------------------------------------------------------------------------
# safetensors (docs/format.md): u64 LE header length, JSON header padded to 8, raw data.

def safetensors(tensors, metadata=None, pad=True, header_obj=None):
    """tensors: list of (name, dtype, shape, bytes)."""
    h = {}
    if metadata is not None:
        h["__metadata__"] = metadata
    off = 0
    for name, dtype, shape, data in tensors:
        h[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(data)]}
        off += len(data)
    if header_obj is not None:
        h = header_obj
    hs = json.dumps(h, separators=(",", ":")).encode()
    if pad:
        hs += b" " * (-len(hs) % 8)
    return struct.pack("<Q", len(hs)) + hs + b"".join(t[3] for t in tensors)


def f32(*vals):
    return struct.pack("<%df" % len(vals), *vals)


def i32(*vals):
    return struct.pack("<%di" % len(vals), *vals)


def corpus_safetensors():
    t = "safetensors"
    put(t, "empty_header", safetensors([]))
    put(t, "one_f32", safetensors([("w", "F32", [2, 2], f32(1, 2, 3, 4))]))
    put(t, "f32_i32_meta", safetensors([("hidden", "F32", [1, 2, 3], f32(*range(6))),
                                        ("ids", "I32", [1, 2], i32(7, 8))],
                                       {"format": "linformer", "note": "x"}))
    put(t, "scalar_and_empty", safetensors([("s", "F32", [], f32(5)), ("z", "I32", [0, 3], b"")]))
    put(t, "unpadded", safetensors([("a", "I32", [1], i32(1))], pad=False))
    # malformed
    good = safetensors([("w", "F32", [2], f32(1, 2))])
    put(t, "bad_truncated", good[:-3])
    put(t, "bad_trailing", good + b"\0\0\0\0")
    put(t, "bad_hlen", struct.pack("<Q", 1 << 40) + good[8:])
    put(t, "bad_dtype", safetensors([("w", "F16", [2], b"\0" * 4)]))
    put(t, "bad_overlap", safetensors([], header_obj={"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                                                      "b": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})
        + f32(1))
    dup = b'{"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}'
    put(t, "bad_dup_key", struct.pack("<Q", len(dup)) + dup + f32(1))
    put(t, "bad_nested", safetensors([], header_obj={"a": {"dtype": "F32", "shape": [[1]], "data_offsets": [0, 4]}}))
    put(t, "bad_negative", safetensors([], header_obj={"a": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}))


# ------------------------------------------------------------------------------------------------
# model files: safetensors whose tensors are those of the config (src/nn/model.cpp).

def model_params(c):
    V, N, d, f, h = c["vocab_size"], c["max_len"], c["d_model"], c["d_ff"], c["n_heads"]
    L = c["n_layers"]
    projection = c.get("projection", "learned")
    # mean/max pooling have no tensors; conv has a kernel [w] (w = N / k) where the others have [k, N]
    lin = c.get("attention", "linformer") == "linformer" and projection not in ("mean", "max")
    sharing = c.get("sharing", "headwise")
    ks = c.get("k", [64])
    ks = ks if isinstance(ks, list) else [ks]

    def proj_shape(k):
        return [N // k] if projection == "conv" else [k, N]

    p = [("tok_emb.weight", [V, d]), ("pos_emb.weight", [N, d]), ("emb_norm.weight", [d]), ("emb_norm.bias", [d])]
    if lin and sharing == "layerwise":
        p.append(("attn_proj_shared", proj_shape(ks[0])))
    for l in range(L):
        b = "blk.%d." % l
        k = ks[0] if len(ks) == 1 else ks[l]
        for m in ("q", "k", "v"):
            p += [(b + "attn_%s.weight" % m, [d, d]), (b + "attn_%s.bias" % m, [d])]
        if lin:
            if sharing == "none":
                p += [(b + "attn_proj_e", [h] + proj_shape(k)), (b + "attn_proj_f", [h] + proj_shape(k))]
            elif sharing == "headwise":
                p += [(b + "attn_proj_e", proj_shape(k)), (b + "attn_proj_f", proj_shape(k))]
            elif sharing == "kv":
                p += [(b + "attn_proj_kv", proj_shape(k))]
        p += [(b + "attn_out.weight", [d, d]), (b + "attn_out.bias", [d]),
              (b + "attn_norm.weight", [d]), (b + "attn_norm.bias", [d]),
              (b + "ffn_up.weight", [f, d]), (b + "ffn_up.bias", [f]),
              (b + "ffn_down.weight", [d, f]), (b + "ffn_down.bias", [d]),
              (b + "ffn_norm.weight", [d]), (b + "ffn_norm.bias", [d])]
    p += [("mlm.dense.weight", [d, d]), ("mlm.dense.bias", [d]), ("mlm.norm.weight", [d]), ("mlm.norm.bias", [d]),
          ("mlm.bias", [V])]
    if c.get("num_labels", 0) > 0:
        nl = c["num_labels"]
        p += [("cls.dense.weight", [d, d]), ("cls.dense.bias", [d]), ("cls.out.weight", [nl, d]),
              ("cls.out.bias", [nl])]
    return p


def model_file(c, drop=None):
    tensors = []
    for i, (name, shape) in enumerate(model_params(c)):
        if name == drop:
            continue
        n = 1
        for s in shape:
            n *= s
        tensors.append((name, "F32", shape, f32(*[((i * 7 + j) % 13) / 13.0 for j in range(n)])))
    meta = {"format": "linformer", "format_version": "1", "linformer.config": json.dumps(c)}
    return safetensors(tensors, meta)


TINY = {"vocab_size": 8, "max_len": 4, "d_model": 2, "n_heads": 1, "d_ff": 2, "n_layers": 1}


def corpus_model_file():
    t = "model_file"
    put(t, "full", model_file(dict(TINY, attention="full")))
    put(t, "linformer_headwise", model_file(dict(TINY, attention="linformer", k=[2], sharing="headwise")))
    put(t, "linformer_none_2layers", model_file(dict(TINY, n_layers=2, n_heads=2, attention="linformer", k=[1, 2],
                                                     sharing="none", proj_order="linear_first")))
    put(t, "linformer_kv", model_file(dict(TINY, attention="linformer", k=1, sharing="kv")))
    put(t, "linformer_layerwise", model_file(dict(TINY, attention="linformer", k=[3], sharing="layerwise")))
    put(t, "linformer_conv_none", model_file(dict(TINY, attention="linformer", k=[2], sharing="none",
                                                  projection="conv")))
    put(t, "linformer_random_kv", model_file(dict(TINY, attention="linformer", k=[2], sharing="kv",
                                                  projection="random")))
    put(t, "tiled_cls", model_file(dict(TINY, attention="tiled", num_labels=2, pooling="mean")))
    # malformed
    put(t, "bad_missing_tensor", model_file(dict(TINY, attention="full"), drop="mlm.bias"))
    # Regression: the config's error message used to overflow the stack (see corpus/config).
    put(t, "bad_deep_config", safetensors([("w", "F32", [1], f32(1))], {
        "linformer.config": '{"d_model": ' + "[" * 30000 + "]" * 30000 + "}"}))
    put(t, "bad_no_config", safetensors([("w", "F32", [1], f32(1))], {"format": "linformer"}))
    put(t, "bad_huge_config", safetensors([("w", "F32", [1], f32(1))], {
        "linformer.config": json.dumps(dict(TINY, vocab_size=2000000000, d_model=2000000000, attention="full"))}))
    put(t, "bad_huge_projection", safetensors([("w", "F32", [1], f32(1))], {
        "linformer.config": json.dumps(dict(TINY, d_model=1, n_heads=1, max_len=1 << 20, k=1 << 20,
                                            attention="linformer", sharing="none"))}))


# ------------------------------------------------------------------------------------------------
# model configs (include/linformer/config.hpp)

def corpus_config():
    t = "config"
    cfg_dir = os.path.join(HERE, "..", "configs")
    for name in sorted(os.listdir(cfg_dir)):
        p = os.path.join(cfg_dir, name)
        if name.endswith(".json") and os.path.isfile(p):
            with open(p, "rb") as f:
                put(t, "configs_" + name, f.read())
    put(t, "all_keys", json.dumps({"vocab_size": 100, "max_len": 16, "d_model": 8, "n_heads": 2, "d_ff": 16,
                                   "n_layers": 2, "attention": "linformer", "k": [4, 8], "sharing": "none",
                                   "proj_order": "linear_first", "dropout": 0.0, "attention_dropout": 0.25,
                                   "layer_norm_eps": 1e-12, "init_std": 0.5, "num_labels": 3, "pooling": "mean"},
                                  indent=1))
    put(t, "projection_conv", json.dumps({"max_len": 16, "k": [4, 8], "n_layers": 2, "projection": "conv"}))
    put(t, "bad_projection_window", '{"max_len": 16, "k": 5, "projection": "max"}')
    put(t, "empty_object", "{}")
    put(t, "tiled", '{"attention": "tiled", "k": 7}')
    put(t, "bad_unknown_key", '{"vocab": 10}')
    put(t, "bad_type", '{"vocab_size": "10", "k": [1.5]}')
    put(t, "bad_range", '{"max_len": 4294967296}')
    put(t, "bad_number_overflow", '{"dropout": 1e999}')
    put(t, "bad_json", '{"vocab_size": 10,,}')
    put(t, "bad_not_object", '[[[1]]]')
    # Regression: the error message used to dump() the value, recursing once per level (stack overflow).
    put(t, "bad_deep_nesting", '{"k": ' + "[" * 30000 + "]" * 30000 + "}")


# ------------------------------------------------------------------------------------------------
# token files (docs/data.md, src/data/token_file.hpp): 64-byte header, int32 ids, pad to 8, u64 ends.

def token_file(docs, max_id=None, vocab=0, version=1, dtype=1, ndocs=None, ends=None):
    """docs: list of documents, each a list of sentences (lists of ids); kEosId=2 ends a document."""
    ids, sent_ends = [], []
    for doc in docs:
        for s in doc + [[2]]:
            ids += s
            sent_ends.append(len(ids))
    if ends is not None:
        sent_ends = ends
    if max_id is None:
        max_id = max(ids) if ids else -1
    hdr = b"LFTOKENS" + struct.pack("<IIQQQii", version, dtype, len(ids), len(sent_ends),
                                     len(docs) if ndocs is None else ndocs, max_id, vocab) + b"\0" * 16
    assert len(hdr) == 64
    body = struct.pack("<%di" % len(ids), *ids)
    body += b"\0" * (-(64 + len(body)) % 8)
    return hdr + body + struct.pack("<%dQ" % len(sent_ends), *sent_ends)


def corpus_token_file():
    t = "token_file"
    put(t, "empty", token_file([]))
    put(t, "one_doc", token_file([[[5, 6, 7], [8, 9]]], vocab=16))
    put(t, "two_docs_odd", token_file([[[5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]], [[7]]], vocab=32))
    put(t, "long_sentence", token_file([[list(range(5, 45))]], vocab=64))
    # malformed
    good = token_file([[[5, 6], [7]]])
    put(t, "bad_truncated", good[:-8])
    put(t, "bad_magic", b"LFTOKENZ" + good[8:])
    put(t, "bad_version", token_file([[[5]]], version=2))
    put(t, "bad_max_id", token_file([[[5, 6]]], max_id=5))
    put(t, "bad_ends", token_file([[[5, 6]]], ends=[2, 1]))
    put(t, "bad_docs", token_file([[[5]]], ndocs=9))
    put(t, "bad_short", good[:40])


# ------------------------------------------------------------------------------------------------
# task folders (docs/tasks.md): task.json 0x1E train.tsv 0x1E valid.tsv 0x1E test.tsv

RS = "\x1e"


def task(info, train, valid="", test=""):
    return json.dumps(info) + RS + train + RS + valid + RS + test


def corpus_task():
    t = "task"
    lo = {"name": "listops", "labels": [str(i) for i in range(10)], "tokenizer": "listops", "source": "gen",
          "licence": "MIT", "examples": {"train": 2}}
    put(t, "listops", task(lo, "3\t[MAX 1 [MIN 3 4 ] 2 ]\n7\t[SM 3 4 ]\n", "0\t[MED 0 0 9 ]\n"))
    px = {"name": "px", "labels": ["a", "b"], "tokenizer": "pixels"}
    put(t, "pixels", task(px, "a\t0 255 17\nb\t1 \n", "", "b\t3 4\n"))
    sp = {"name": "spam", "labels": ["ham", "spam"], "tokenizer": "sentencepiece", "source": "x", "licence": "y"}
    put(t, "sentencepiece_escapes", task(sp, "ham\thello\\tworld\\n\\\\ ok\r\nspam\tbuy \\r now \u00e9\u4e2d\n",
                                         "spam\tx\n", "ham\ty\n"))
    # malformed
    put(t, "bad_missing_test", json.dumps(px) + RS + "a\t1\n" + RS + "")
    put(t, "bad_label", task(px, "c\t1\n"))
    put(t, "bad_escape", task(sp, "ham\ttrailing\\\n"))
    put(t, "bad_columns", task(sp, "ham\ta\tb\n"))
    put(t, "bad_utf8", task(sp, "ham\t\xff\n").encode("utf-8", "surrogateescape").replace(b"\xc3\xbf", b"\xff"))
    put(t, "bad_task_json", '{"name": "x", "labels": []}' + RS + "a\t1\n" + RS + RS)
    put(t, "bad_listops_expr", task(lo, "3\t[MAX 1 ] ] 2\n4\t[SM ]\n"))


# ------------------------------------------------------------------------------------------------
# ids files (app/ids_file.hpp): two bytes (vocab_size = 1 + 64*b0, max_len = 1 + b1 % 32), then text.

def corpus_ids_file():
    t = "ids_file"
    put(t, "simple", b"\x02\x1f" + b"1 2 3\n4 5\n0\n")
    put(t, "tabs_crlf", b"\x02\x07" + b"7\t8  9\r\n10\n")
    put(t, "no_final_newline", b"\x01\x03" + b"63 0")
    put(t, "bad_blank_line", b"\x02\x1f" + b"1 2\n\n3\n")
    put(t, "bad_token", b"\x02\x1f" + b"1 x2\n")
    put(t, "bad_range", b"\x00\x1f" + b"1\n")
    put(t, "bad_too_long", b"\x02\x00" + b"1 2\n")
    put(t, "bad_overflow", b"\x02\x1f" + b"99999999999999999999999\n")
    put(t, "bad_empty", b"\x02\x1f")


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    corpus_safetensors()
    corpus_model_file()
    corpus_config()
    corpus_token_file()
    corpus_task()
    corpus_ids_file()
    n = sum(len(files) for _, _, files in os.walk(OUT))
    print("wrote %d seed files under %s" % (n, OUT))


if __name__ == "__main__":
    main()

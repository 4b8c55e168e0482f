"""Hugging Face RoBERTa / XLM-RoBERTa folders -> linformer (ctest: convert_hf)."""
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

import ref_hf
from convert_util import convert, expect_error, forward, linformer_bin, random_ids, read_model, worst

PAD = 1


def build(tmp_path, seed=0, fmt="safetensors", name="hf", **kw):
    torch.manual_seed(seed)
    model = ref_hf.RobertaForMaskedLM(ref_hf.config(**kw)).randomize(seed)
    return model, model.save(tmp_path / name, fmt)


def padded_batch(rng, lengths, vocab, n_max):
    ids = [random_ids(rng, 1, n, vocab)[0] for n in lengths]
    return ids, [row + [PAD] * (n_max - len(row)) for row in ids]


def compare(model, out, ids, hf_ids, tmp_path, what=""):
    hidden, logits, mask = forward(out, ids, tmp_path)
    with torch.no_grad():
        h_ref, l_ref = model(torch.tensor(hf_ids))
    n = hidden.shape[1]
    worst(f"hidden{what}", hidden, h_ref[:, :n], mask)
    return logits, l_ref[:, :n], mask


@pytest.mark.parametrize("fmt", ["safetensors", "bin"])
def test_full_attention_equals_roberta(tmp_path, fmt):
    model, folder = build(tmp_path, seed=1, fmt=fmt)
    out = tmp_path / "model.safetensors"
    r = convert(folder, "--out", out, "--attention", "full")
    assert "BPE" not in r.stdout  # no tokenizer files in this folder
    _, cfg = read_model(out)
    assert cfg["attention"] == "full" and cfg["max_len"] == 12 and cfg["vocab_size"] == 40
    ids, hf_ids = padded_batch(np.random.default_rng(0), [12, 5, 9], 40, 12)
    logits, l_ref, mask = compare(model, out, ids, hf_ids, tmp_path, " (full)")
    worst("logits (full)", logits, l_ref, mask)


def test_linformer_keeps_weights_and_inits_projections(tmp_path):
    model, folder = build(tmp_path, seed=2)
    out = tmp_path / "model.safetensors"
    convert(folder, "--out", out, "--k", 4, "--sharing", "headwise", "--seed", 7)
    t, cfg = read_model(out)
    assert cfg["attention"] == "linformer" and cfg["k"] == 4 and cfg["projection"] == "learned"
    assert cfg["init_std"] == pytest.approx(0.02)
    sd = model.state_dict()
    np.testing.assert_array_equal(t["blk.1.attn_q.weight"], sd["roberta.encoder.layer.1.attention.self.query.weight"])
    np.testing.assert_array_equal(t["blk.0.ffn_down.weight"], sd["roberta.encoder.layer.0.output.dense.weight"])
    np.testing.assert_array_equal(t["mlm.dense.weight"], sd["lm_head.dense.weight"])
    pos = (sd["roberta.embeddings.position_embeddings.weight"][PAD + 1:]
           + sd["roberta.embeddings.token_type_embeddings.weight"][0]).numpy()
    np.testing.assert_allclose(t["pos_emb.weight"], pos, rtol=0, atol=1e-7)
    # E/F: exactly what `linformer init` draws for this config and seed.
    cfg_file = tmp_path / "cfg.json"
    cfg_file.write_text(json.dumps(cfg))
    fresh = tmp_path / "fresh.safetensors"
    subprocess.run([linformer_bin(), "init", "--config", str(cfg_file), "--seed", "7", "--out", str(fresh)], check=True,
                   capture_output=True)
    f, _ = read_model(fresh)
    for key in ("blk.0.attn_proj_e", "blk.1.attn_proj_f"):
        assert t[key].shape == (4, 12)
        np.testing.assert_array_equal(t[key], f[key])
        assert 0.005 < t[key].std() < 0.05  # N(0, 0.02)
    assert not np.array_equal(t["blk.0.attn_proj_e"], t["blk.0.attn_proj_f"])
    # The Linformer runs (its outputs differ from RoBERTa's: E/F are new).
    hidden, _, _ = forward(out, [[5, 6, 7]], tmp_path)
    assert np.isfinite(hidden).all()


def test_linformer_identity_windows_equal_roberta(tmp_path):
    # projection mean with k = max_len: windows of one position, the identity: a Linformer that
    # computes RoBERTa exactly, which checks every pretrained tensor's place in the Linformer path.
    model, folder = build(tmp_path, seed=3, layers=3)
    out = tmp_path / "model.safetensors"
    convert(folder, "--out", out, "--projection", "mean", "--k", 12, "--proj-order", "linear_first")
    ids, hf_ids = padded_batch(np.random.default_rng(1), [12, 3, 8], 40, 12)
    logits, l_ref, mask = compare(model, out, ids, hf_ids, tmp_path, " (linformer, w=1)")
    worst("logits (linformer, w=1)", logits, l_ref, mask)


def spm_train(tmp_path, vocab):
    text = tmp_path / "corpus.txt"
    words = ["the", "cat", "sat", "on", "mat", "dog", "ran", "far", "away", "home", "sun", "rain"]
    rng = np.random.default_rng(0)
    text.write_text("".join(" ".join(rng.choice(words, 8)) + "\n" for _ in range(300)))
    prefix = tmp_path / "xlmr"
    # XLM-R's layout: <unk>=0 <s>=1 </s>=2, no pad piece.
    subprocess.run(["spm_train", f"--input={text}", f"--model_prefix={prefix}", f"--vocab_size={vocab}",
                    "--model_type=unigram", "--unk_id=0", "--bos_id=1", "--eos_id=2", "--pad_id=-1",
                    "--hard_vocab_limit=true"], check=True, capture_output=True)
    return prefix.with_suffix(".model")


def spm_ids(model, text):
    r = subprocess.run(["spm_encode", f"--model={model}", "--output_format=id"], input=text, text=True,
                       capture_output=True, check=True)
    return [int(x) for x in r.stdout.split()]


@pytest.mark.skipif(shutil.which("spm_train") is None, reason="sentencepiece tools not installed")
def test_xlmr_tokenizer_carried_over(tmp_path):
    spm = spm_train(tmp_path, 30)
    model, folder = build(tmp_path, seed=4, vocab=32, model_type="xlm-roberta", max_len=32)
    shutil.copy(spm, folder / "sentencepiece.bpe.model")
    out = tmp_path / "run" / "model.safetensors"
    out.parent.mkdir()
    r = convert(folder, "--out", out, "--attention", "full")
    tok = out.parent / "tokenizer.model"
    assert tok.is_file() and "SentencePiece model carried over" in r.stdout
    # Hugging Face's XLMRobertaTokenizer: <s> + (spm id + 1, <unk> -> 3) + </s>.
    text = "the cat sat on the mat far away"
    hf_ids = [0] + [3 if i == 0 else i + 1 for i in spm_ids(spm, text)] + [2]
    # Ours: <s>=1, pieces shifted by one more, </s>=2; the converted tokenizer encodes the same pieces.
    ours = [1] + spm_ids(tok, text) + [2]
    hf_of_ours = {0: 1, 1: 0, 2: 2, 3: 3, 4: 31}
    assert [hf_of_ours.get(i, i - 1) for i in ours] == hf_ids
    dec = subprocess.run([linformer_bin(), "tokenizer", "decode", "--model", str(tok), "--ids",
                          " ".join(map(str, ours[1:-1]))], capture_output=True, text=True)
    assert dec.returncode == 0 and text in dec.stdout, dec.stdout + dec.stderr
    # The same function under the id mapping (the MLM logits too, columns reordered).
    t, _ = read_model(out)
    order = [hf_of_ours.get(i, i - 1) for i in range(32)]
    logits, l_ref, mask = compare(model, out, [ours], [hf_ids], tmp_path, " (xlm-r)")
    worst("logits (xlm-r, reordered)", logits, l_ref[..., order], mask)


def test_roberta_bpe_reported(tmp_path):
    model, folder = build(tmp_path, seed=5)
    (folder / "vocab.json").write_text("{}")
    (folder / "merges.txt").write_text("#version: 0.2\n")
    out = tmp_path / "model.safetensors"
    r = convert(folder, "--out", out)
    assert "byte-level BPE" in r.stdout and "not supported yet" in r.stdout
    assert out.is_file() and not (tmp_path / "tokenizer.model").exists()


def test_bad_input(tmp_path):
    model, folder = build(tmp_path, seed=6)
    out = tmp_path / "model.safetensors"
    from linformer_convert import safetensors

    def variant(name, edit_cfg=None, edit_sd=None):
        c = dict(model.c)
        if edit_cfg:
            edit_cfg(c)
        sd = {k: v.numpy().copy() for k, v in model.state_dict().items()
              if k not in ("lm_head.decoder.weight", "lm_head.decoder.bias")}
        if edit_sd:
            edit_sd(sd)
        d = tmp_path / name
        d.mkdir()
        (d / "config.json").write_text(json.dumps(c))
        safetensors.write(str(d / "model.safetensors"), sd)
        return d

    key = "roberta.encoder.layer.1.intermediate.dense.bias"
    expect_error(variant("missing", edit_sd=lambda sd: sd.pop(key)), "--out", out, contains=["missing key", key])
    q = "roberta.encoder.layer.0.attention.self.query.weight"
    expect_error(variant("shape", edit_sd=lambda sd: sd.__setitem__(q, np.zeros((16, 8), np.float32))),
                 "--out", out, contains=[q, "[16, 8]", "[16, 16]"])
    expect_error(variant("bert", edit_cfg=lambda c: c.__setitem__("model_type", "bert")), "--out", out,
                 contains=["model_type 'bert'", "not supported"])
    expect_error(variant("relu", edit_cfg=lambda c: c.__setitem__("hidden_act", "relu")), "--out", out,
                 contains="hidden_act = 'relu'")
    expect_error(variant("extra", edit_sd=lambda sd: sd.__setitem__("roberta.adapter.w", np.zeros(3, np.float32))),
                 "--out", out, contains=["do not map", "roberta.adapter.w"])
    empty = tmp_path / "empty"
    empty.mkdir()
    expect_error(empty, "--out", out, contains=["unknown layout", "config.json"])
    (empty / "config.json").write_text(json.dumps(model.c))
    expect_error(empty, "--from", "hf", "--out", out, contains=["no weights", "model.safetensors"])
    nan = variant("nan", edit_sd=lambda sd: sd["roberta.embeddings.LayerNorm.bias"].__setitem__(0, np.nan))
    expect_error(nan, "--out", out, contains=["emb_norm.bias", "not finite"])
    assert not out.exists()


def test_roberta_model_without_prefix_or_head(tmp_path):
    # RobertaModel saves the encoder without the "roberta." prefix and has no LM head: the
    # encoder converts exactly, the MLM head is initialised (and said so).
    model, _ = build(tmp_path, seed=7)
    from linformer_convert import safetensors

    folder = tmp_path / "bare"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(model.c))
    sd = {k[len("roberta."):]: v.numpy() for k, v in model.state_dict().items() if k.startswith("roberta.")}
    safetensors.write(str(folder / "model.safetensors"), sd)
    out = tmp_path / "model.safetensors"
    r = convert(folder, "--out", out, "--attention", "full")
    assert "no LM head" in r.stdout and "pooler" in r.stdout
    ids, hf_ids = padded_batch(np.random.default_rng(2), [12, 6], 40, 12)
    compare(model, out, ids, hf_ids, tmp_path, " (RobertaModel)")
    t, _ = read_model(out)
    np.testing.assert_array_equal(t["mlm.norm.weight"], np.ones(16, np.float32))


@pytest.mark.skipif(shutil.which("spm_train") is None, reason="sentencepiece tools not installed")
def test_xlmr_tokenizer_needs_its_special_ids(tmp_path):
    spm = spm_train(tmp_path, 30)
    model, folder = build(tmp_path, seed=8, vocab=32, model_type="xlm-roberta", pad=0)
    shutil.copy(spm, folder / "sentencepiece.bpe.model")
    expect_error(folder, "--out", tmp_path / "model.safetensors", contains=["pad_token_id = 0", "XLM-R"])

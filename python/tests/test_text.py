"""Texts: linformer.Tokenizer (train, load, encode, decode), Model.embed (against forward's hidden
states pooled by hand), Model.classify against `linformer predict`, Model.fill_mask against
`linformer fill-mask`, Model.evaluate."""

import json

import numpy as np
import pytest

import linformer
from helpers import run_cli

TEXTS = ["the cat sees the bird .", "a dog likes a red ball .", "the teacher calls her brother .",
         "my friend helps the cat ."]


def test_tokenizer_train_load_encode_decode(corpus, tmp_path):
    tok = linformer.Tokenizer.load(corpus["tok"])
    assert tok.vocab_size == 40
    ids = tok.encode("the cat sees the bird .")
    assert ids and all(linformer.MASK_ID < i < 40 for i in ids)
    assert tok.decode(ids) == "the cat sees the bird ."
    assert tok.piece(linformer.MASK_ID) == "<mask>" and tok.piece_to_id("<mask>") == linformer.MASK_ID
    assert linformer.Tokenizer(corpus["tok"]).encode("a dog") == tok.encode("a dog")
    # Training is deterministic: the same corpus gives the same pieces.
    again = linformer.Tokenizer.train(str(corpus["dir"] / "train.txt"), 40, str(tmp_path / "again.model"))
    assert [again.piece(i) for i in range(40)] == [tok.piece(i) for i in range(40)]
    # The same ids as the command line's tokenizer.
    out = run_cli("tokenizer", "decode", "--model", corpus["tok"], "--ids", " ".join(map(str, ids)))
    assert out.splitlines()[0] == "the cat sees the bird ."


def test_tokenizer_errors(tmp_path):
    with pytest.raises(linformer.IoError, match="missing.model"):
        linformer.Tokenizer(str(tmp_path / "missing.model"))
    (tmp_path / "corrupt.model").write_bytes(b"not a sentencepiece model")
    with pytest.raises(linformer.IoError, match="corrupt.model"):
        linformer.Tokenizer.load(str(tmp_path / "corrupt.model"))
    (tmp_path / "small.txt").write_text("a b c\n")
    with pytest.raises(linformer.ConfigError, match="vocab_size"):
        linformer.Tokenizer.train(str(tmp_path / "small.txt"), 8, str(tmp_path / "t.model"))
    with pytest.raises(linformer.IoError, match="nowhere.txt"):
        linformer.Tokenizer.train(str(tmp_path / "nowhere.txt"), 40, str(tmp_path / "t.model"))


def test_embed_pools_forward(pretrain_run):
    m = linformer.load(str(pretrain_run))
    ids = [m.encode(t) for t in TEXTS]
    hidden, _ = m.forward(ids, logits=False)
    mean = m.embed(TEXTS)
    first = m.embed(TEXTS, pooling="first")
    unit = m.embed(TEXTS, pooling="mean", normalize=True)
    assert mean.shape == (4, 32) and mean.dtype == np.float32
    for i, s in enumerate(ids):
        alone, _ = m.forward([s], logits=False)  # one sequence: no padding at all
        np.testing.assert_allclose(mean[i], alone[0].mean(axis=0), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(first[i], hidden[i, 0], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(unit, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(unit, mean / np.linalg.norm(mean, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    # Token ids work too.
    assert np.array_equal(m.embed(ids), mean)
    with pytest.raises(linformer.ConfigError, match="pooling"):
        m.embed(TEXTS, pooling="max")


def test_classify_equals_predict(cat_run, tmp_path):
    m = linformer.load(str(cat_run["run"]))
    assert m.labels == ["other", "cat"] and m.has_classifier
    texts = TEXTS + ["our neighbour finds a green apple ."]
    got = m.classify(texts)
    inp = tmp_path / "texts.txt"
    inp.write_text("\n".join(texts) + "\n")
    lines = run_cli("predict", "--threads", 1, "--model", cat_run["run"], "--input", inp).splitlines()
    assert len(lines) == len(texts)
    worst = 0.0
    for g, line in zip(got, lines):
        ref = json.loads(line)
        assert g["label"] == ref["label"]
        assert list(g["probs"]) == list(ref["probs"]) == ["other", "cat"]
        assert g["label_index"] == m.labels.index(g["label"])
        worst = max(worst, *(abs(g["probs"][k] - ref["probs"][k]) for k in ref["probs"]))
    print(f"classify vs linformer predict: worst probability difference {worst:.3g}")
    assert worst <= 1e-9
    # Ids give the same answers as texts.
    assert m.classify([m.encode(t) for t in texts]) == got


def test_classify_has7_and_evaluate(has7_run):
    m = linformer.load(str(has7_run["run"]))
    assert m.info["tokenizer"] == "listops" and m.labels == ["no", "yes"]
    r = m.classify(["1 2 7 3", "1 2 3"])
    assert len(r) == 2 and all(set(x["probs"]) == {"no", "yes"} for x in r)
    assert all(abs(sum(x["probs"].values()) - 1) < 1e-9 for x in r)
    e = m.evaluate(str(has7_run["task"]), "test")
    assert e["examples"] == 24 and 0 <= e["accuracy"] <= 1
    assert len(e["confusion"]) == 2 and sum(map(sum, e["confusion"])) == 24


def test_fill_mask_equals_the_cli(pretrain_run):
    m = linformer.load(str(pretrain_run))
    text = "the cat <mask> the bird ."
    got = m.fill_mask(text, top_k=4)
    assert len(got) == 1 and len(got[0]) == 4
    probs = [c["prob"] for c in got[0]]
    assert probs == sorted(probs, reverse=True) and all(0 < p <= 1 for p in probs)
    out = run_cli("fill-mask", "--threads", 1, "--model", pretrain_run, "--text", text, "--top-k", 4).splitlines()
    assert out[0] == text and out[1] == "<mask> #1:"
    for c, line in zip(got[0], out[2:6]):
        pct, token = line.strip().split("%  ", 1)
        assert token == c["token"] and m.piece(c["id"]) == c["token"]
        assert pct == f"{100 * c['prob']:.2f}"
    two = m.fill_mask("<mask> cat sees <mask> bird .", top_k=2)
    assert len(two) == 2 and all(len(c) == 2 for c in two)
    with pytest.raises(linformer.InputError, match="mask"):
        m.fill_mask("no mask here")


def test_text_calls_without_a_tokenizer(tiny_model_file):
    m = linformer.load(str(tiny_model_file))
    assert not m.has_tokenizer
    with pytest.raises(linformer.ConfigError, match="tokenizer"):
        m.embed(["a text"])
    with pytest.raises(linformer.ConfigError, match="tokenizer"):
        m.encode("a text")

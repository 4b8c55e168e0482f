"""fairseq linformer_roberta checkpoints -> linformer (ctest: convert_fairseq)."""
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import ref_fairseq
from convert_util import convert, expect_error, forward, linformer_bin, random_ids, read_model, save_pt, worst

PAD = 1


def build(tmp_path, seed=0, num_classes=0, with_args=True, vocab=30, **kw):
    torch.manual_seed(seed)
    model = ref_fairseq.LinformerModel(ref_fairseq.args(**kw), vocab, PAD, num_classes).randomize(seed)
    path = save_pt(tmp_path / "checkpoint.pt", model.checkpoint(with_args))
    return model, path


def compare(model, out, ids, tmp_path, mask=None):
    hidden, logits, _ = forward(out, ids, tmp_path)
    with torch.no_grad():
        h_ref, l_ref, _ = model(torch.tensor(ids))
    worst("hidden", hidden, h_ref, mask)
    worst("logits", logits, l_ref, mask)


@pytest.mark.parametrize("sharing,kw", [
    ("headwise", {}),
    ("kv", {"shared_kv": 1}),
    ("layerwise", {"shared_layer": 1}),
])
def test_outputs_equal_fairseq(tmp_path, sharing, kw):
    model, ckpt = build(tmp_path, seed=1, **kw)
    out = tmp_path / "model.safetensors"
    r = convert(ckpt, "--out", out)
    assert "fairseq" in r.stdout
    tensors, cfg = read_model(out)
    assert cfg["attention"] == "linformer" and cfg["sharing"] == sharing
    assert cfg["proj_order"] == "input_first" and cfg["k"] == 4 and cfg["max_len"] == 12
    assert cfg["n_heads"] == 2 and cfg["n_layers"] == 2 and cfg["vocab_size"] == 30
    # fairseq's positions start at padding_idx + 1: our row 0 is its row 2.
    se = model.encoder.sentence_encoder
    np.testing.assert_array_equal(tensors["pos_emb.weight"], se.embed_positions.weight[PAD + 1:].detach().numpy())
    rng = np.random.default_rng(0)
    for n in (12, 7, 1):  # full length, shorter (E sliced to n columns), one token
        compare(model, out, random_ids(rng, 3, n, 30), tmp_path)


def test_padding_one_layer(tmp_path):
    # fairseq zeroes padded rows after the embeddings only; with one layer that is all the
    # masking there is, so padded batches give the same outputs at the real positions.
    model, ckpt = build(tmp_path, seed=2, layers=1)
    out = tmp_path / "model.safetensors"
    convert(ckpt, "--out", out)
    rng = np.random.default_rng(1)
    lengths = [9, 4, 12]
    ids = [random_ids(rng, 1, n, 30)[0] + [PAD] * (12 - n) for n in lengths]
    ids_ours = [row[:n] for row, n in zip(ids, lengths)]  # linformer forward pads on its own
    hidden, logits, mask = forward(out, ids_ours, tmp_path)
    with torch.no_grad():
        h_ref, l_ref, _ = model(torch.tensor(ids))
    worst("hidden (padded batch)", hidden, h_ref, mask)
    worst("logits (padded batch)", logits, l_ref, mask)


def test_classification_head_and_no_args(tmp_path):
    model, ckpt = build(tmp_path, seed=3, num_classes=3, with_args=False)
    out = tmp_path / "model.safetensors"
    expect_error(ckpt, "--out", out, contains=["heads", "--heads"])  # no args: heads unknown
    convert(ckpt, "--out", out, "--heads", 2)
    tensors, cfg = read_model(out)
    assert cfg["num_labels"] == 3
    head = model.classification_heads["sentence_classification_head"]
    np.testing.assert_array_equal(tensors["cls.out.weight"], head.out_proj.weight.detach().numpy())
    # The classification logits through the reference twin's head equal fairseq's.
    ids = random_ids(np.random.default_rng(2), 2, 10, 30)
    hidden, _, _ = forward(out, ids, tmp_path)
    with torch.no_grad():
        _, _, cls_ref = model(torch.tensor(ids))
        h = torch.tensor(hidden)[:, 0]
        ours = torch.tanh(h @ torch.tensor(tensors["cls.dense.weight"]).T + torch.tensor(tensors["cls.dense.bias"]))
        ours = ours @ torch.tensor(tensors["cls.out.weight"]).T + torch.tensor(tensors["cls.out.bias"])
    worst("classification logits", ours.numpy(), cls_ref)


def test_bad_input(tmp_path):
    model, ckpt = build(tmp_path, seed=4)
    out = tmp_path / "model.safetensors"
    sd = model.state_dict()

    def variant(name, edit):
        d = {k: v.clone() for k, v in sd.items()}
        edit(d)
        return save_pt(tmp_path / f"{name}.pt", {"model": d, "args": model.args})

    key = "encoder.sentence_encoder.layers.1.fc2.weight"
    expect_error(variant("missing", lambda d: d.pop(key)), "--out", out, contains=["missing key", key])
    bad = "encoder.sentence_encoder.layers.0.self_attn.compress_v.weight"
    expect_error(variant("shape", lambda d: d.__setitem__(bad, torch.zeros(5, 12))), "--out", out,
                 contains=[bad, "[5, 12]", "[4, 12]"])
    extra = "encoder.sentence_encoder.layers.0.adapter.weight"
    expect_error(variant("extra", lambda d: d.__setitem__(extra, torch.zeros(2))), "--out", out,
                 contains=["do not map", extra])
    untied = "encoder.lm_head.weight"
    expect_error(variant("untied", lambda d: d.__setitem__(untied, d[untied] + 1)), "--out", out,
                 contains=[untied, "untied"])
    gelu = save_pt(tmp_path / "relu.pt", {"model": sd, "args": ref_fairseq.args(activation_fn="relu")})
    expect_error(gelu, "--out", out, contains="activation_fn = 'relu'")
    unknown = save_pt(tmp_path / "unknown.pt", {"model": {"foo.weight": torch.zeros(2, 2)}})
    expect_error(unknown, "--out", out, contains=["unknown layout", "foo.weight"])
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    expect_error(junk, "--out", out, contains=["junk.pt", "not a readable PyTorch checkpoint"])
    expect_error(tmp_path / "absent.pt", "--out", out, contains=["absent.pt", "no such file"])
    assert not out.exists()


def test_command_line(tmp_path):
    # `linformer convert` hands everything to the Python tool: its help, its exit statuses.
    r = convert("--help", ok=False)
    assert r.returncode == 0 and "--from" in r.stdout and "--into" in r.stdout, r.stdout + r.stderr
    r = convert("x.pt", ok=False)  # --out missing: argparse's status 2, passed through
    assert r.returncode == 2 and "--out" in r.stderr, r.stderr
    env = dict(os.environ, LINFORMER_PYTHON=str(tmp_path / "no-python"))
    r = subprocess.run([linformer_bin(), "convert", "x.pt", "--out", "y"], capture_output=True, text=True, env=env)
    assert r.returncode == 1 and "no-python is not installed" in r.stderr, r.stderr


def test_config_of_newer_fairseq(tmp_path):
    # Newer checkpoints keep the arguments as cfg["model"], an omegaconf DictConfig: a class the
    # converter's Python does not have. Pickled here from a stand-in module the converter cannot
    # import, it must still read the heads from it.
    (tmp_path / "fake_omegaconf.py").write_text(
        "class DictConfig:\n"
        "    def __init__(self, content): self._content = content\n"
        "    def __getstate__(self): return {'_content': self._content, '_metadata': None}\n"
        "    def __setstate__(self, s): self.__dict__.update(s)\n")
    sys.path.insert(0, str(tmp_path))
    try:
        import fake_omegaconf

        model, _ = build(tmp_path, seed=5, heads=4)
        cfg = fake_omegaconf.DictConfig({"model": fake_omegaconf.DictConfig(dict(vars(model.args)))})
        ckpt = save_pt(tmp_path / "new.pt", {"model": model.state_dict(), "cfg": cfg})
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("fake_omegaconf", None)
    out = tmp_path / "model.safetensors"
    convert(ckpt, "--out", out)
    _, cfg = read_model(out)
    assert cfg["n_heads"] == 4
    compare(model, out, random_ids(np.random.default_rng(3), 2, 12, 30), tmp_path)

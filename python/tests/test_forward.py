"""linformer.init / load / save / config and Model.forward: the same numbers as `linformer forward`
(to 1e-6; in fact bitwise), padding and masks as the command pads, numpy inputs, precision."""

import numpy as np
import pytest

import linformer
from helpers import TINY_CONFIG, read_safetensors, run_cli

SEQS = [[1, 5, 6, 7, 2], [1, 9, 2], [1, 10, 11, 12, 13, 14, 15, 2]]


def cli_forward(tmp_path, model_file, seqs):
    ids = tmp_path / "ids.txt"
    ids.write_text("".join(" ".join(map(str, s)) + "\n" for s in seqs))
    out = tmp_path / "out.safetensors"
    run_cli("forward", "--threads", 1, "--model", model_file, "--ids", ids, "--out", out)
    return read_safetensors(out)


def test_forward_equals_the_cli(tmp_path, tiny_model_file):
    m = linformer.load(str(tiny_model_file))
    hidden, logits = m.forward(SEQS)
    ref = cli_forward(tmp_path, tiny_model_file, SEQS)
    assert hidden.dtype == np.float32 and logits.dtype == np.float32
    assert hidden.shape == (3, 8, TINY_CONFIG["d_model"]) == ref["hidden"].shape
    assert logits.shape == (3, 8, TINY_CONFIG["vocab_size"]) == ref["logits"].shape
    worst_h = float(np.max(np.abs(hidden - ref["hidden"])))
    worst_l = float(np.max(np.abs(logits - ref["logits"])))
    print(f"forward vs linformer forward: worst |hidden| {worst_h:.3g}, |logits| {worst_l:.3g}")
    assert worst_h <= 1e-6 and worst_l <= 1e-6


def test_numpy_ids_and_mask_pad_as_lists_do(tiny_model_file):
    m = linformer.load(str(tiny_model_file))
    hidden, logits = m.forward(SEQS)
    padded = np.zeros((3, 8), dtype=np.int64)
    mask = np.zeros((3, 8), dtype=bool)
    for b, s in enumerate(SEQS):
        padded[b, :len(s)] = s
        mask[b, :len(s)] = True
    padded[1, 3:] = 17  # whatever lies under the padding is ignored
    h2, l2 = m.forward(padded, mask=mask)
    assert np.array_equal(hidden, h2) and np.array_equal(logits, l2)
    h3, _ = m.forward(padded.astype(np.int32), mask=mask.astype(np.int8).tolist())
    assert np.array_equal(hidden, h3)
    # Without a mask every position of the array is a token: row 0 alone, unpadded.
    h4, _ = m.forward(np.array([SEQS[0]], dtype=np.int32))
    h5, _ = m.forward([SEQS[0]])
    assert np.array_equal(h4, h5)
    # logits=False: hidden states only, the same ones.
    h6, l6 = m.forward(SEQS, logits=False)
    assert l6 is None and np.array_equal(h6, hidden)


def test_init_save_load_round_trip(tmp_path):
    m = linformer.init(TINY_CONFIG, seed=3)
    cfg = m.config
    assert cfg["d_model"] == 32 and cfg["attention"] == "linformer" and cfg["vocab_size"] == 50
    assert m.max_len == 16 and m.vocab_size == 50 and m.d_model == 32 and not m.has_classifier
    path = tmp_path / "m.safetensors"
    m.save(str(path))
    back = linformer.load(str(path))
    assert back.config == cfg
    assert back.info["model_file"] == str(path)
    a, _ = m.forward(SEQS)
    b, _ = back.forward(SEQS)
    assert np.array_equal(a, b)
    # The seed decides the weights.
    c, _ = linformer.init(TINY_CONFIG, seed=4).forward(SEQS)
    assert not np.array_equal(a, c)


def test_init_refuses_bad_configs():
    with pytest.raises(linformer.ConfigError, match="d_modle"):
        linformer.init({**TINY_CONFIG, "d_modle": 3})
    with pytest.raises(linformer.ConfigError, match="n_heads"):
        linformer.init({**TINY_CONFIG, "n_heads": 5})
    with pytest.raises(linformer.ConfigError, match="config"):
        linformer.init("not a dict")


def test_load_a_run_folder(pretrain_run):
    m = linformer.load(str(pretrain_run))
    assert m.has_tokenizer and m.info["run_dir"] == str(pretrain_run)
    ids = m.encode("the cat sees the bird .")
    assert ids[0] == linformer.BOS_ID and ids[-1] == linformer.EOS_ID
    hidden, logits = m.forward([ids])
    assert hidden.shape == (1, len(ids), 32) and logits.shape == (1, len(ids), 40)
    assert m.decode(ids) == "the cat sees the bird ."


def test_truncate_is_explicit(tiny_model_file):
    m = linformer.load(str(tiny_model_file))
    long = [1] + [9] * 20 + [2]
    with pytest.raises(linformer.InputError, match="max_len 16"):
        m.forward([long])
    hidden, _ = m.forward([long], truncate=True)
    assert hidden.shape[1] == 16
    assert m.truncate(long) == [1] + [9] * 14 + [2]


def test_precision_per_model_and_call(tiny_model_file):
    m = linformer.load(str(tiny_model_file))
    assert m.precision is None
    with pytest.raises(linformer.ConfigError, match="unknown precision 'float16'"):
        m.forward(SEQS, precision="float16")
    with pytest.raises(linformer.ConfigError, match="precision"):
        m.precision = "int4"
    if not linformer.bf16_supported():
        with pytest.raises(linformer.ConfigError, match="AVX512_BF16"):
            m.forward(SEQS, precision="bf16")
        with pytest.raises(linformer.ConfigError, match="AVX512_BF16"):
            linformer.load(str(tiny_model_file), precision="bf16")
        pytest.skip("this CPU has no AVX512_BF16: bf16 is refused (checked), not run")
    f32, _ = m.forward(SEQS)
    b16, _ = m.forward(SEQS, precision="bf16")
    worst = float(np.max(np.abs(f32 - b16)))
    print(f"bf16 vs float32 hidden states: worst difference {worst:.3g}")
    assert 0 < worst < 0.5  # rounded operands: close, not equal
    mb = linformer.load(str(tiny_model_file), precision="bf16")
    assert mb.precision == "bf16"
    assert np.array_equal(mb.forward(SEQS)[0], b16)
    assert np.array_equal(mb.forward(SEQS, precision="float32")[0], f32)  # the call's comes first
    # The process default is untouched by per-model and per-call precisions.
    assert linformer.get_precision() == "float32"
    assert np.array_equal(m.forward(SEQS)[0], f32)


def test_set_num_threads():
    with pytest.raises(linformer.ConfigError, match="at least 1"):
        linformer.set_num_threads(0)
    linformer.set_num_threads(2)
    try:
        assert linformer.get_num_threads() == 2
    finally:
        linformer.set_num_threads(1)
    assert linformer.get_num_threads() == 1

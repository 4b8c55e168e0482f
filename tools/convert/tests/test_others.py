"""lucidrains' and tatp22's Linformer attention modules -> linformer (ctest: convert_others).

Their modules are attention layers: converted with --into, a linformer model giving the rest of
the encoder. The reference is that same encoder with the source modules as its attention
(ref_others.encoder_outputs, written from docs/model.md), against `linformer forward`.
"""
import json
import subprocess

import numpy as np
import pytest
import torch

import ref_others
from convert_util import convert, expect_error, forward, linformer_bin, read_model, save_pt, worst

N, D, H, V = 8, 16, 2, 20


def base_model(tmp_path, layers=2):
    """A full-attention model with large random weights (init_std 0.5), to host the attention."""
    cfg = {"vocab_size": V, "max_len": N, "d_model": D, "n_heads": H, "d_ff": 24, "n_layers": layers,
           "attention": "full", "init_std": 0.5}
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "base.safetensors"
    subprocess.run([linformer_bin(), "init", "--config", str(path), "--seed", "3", "--out", str(out)], check=True,
                   capture_output=True)
    return out


def reference(model_file, modules, ids, call):
    """The converted model's other tensors around `modules` as its layers' attention."""
    t, cfg = read_model(model_file)
    n = max(len(r) for r in ids)
    padded = torch.tensor([r + [0] * (n - len(r)) for r in ids])
    mask = torch.tensor([[1] * len(r) + [0] * (n - len(r)) for r in ids])
    attns = [(lambda m: (lambda x, msk: call(m, x, msk)))(mod) for mod in modules]
    with torch.no_grad():
        return ref_others.encoder_outputs(t, cfg, attns, padded, mask)


def check(out, modules, ids, call, tmp_path, what):
    hidden, logits, mask = forward(out, ids, tmp_path)
    h_ref, l_ref = reference(out, modules, ids, call)
    worst(f"hidden ({what})", hidden, h_ref, mask)
    worst(f"logits ({what})", logits, l_ref, mask)


@pytest.mark.parametrize("share_kv,one_kv_head", [(False, False), (True, False), (False, True)])
def test_lucidrains_attention(tmp_path, share_kv, one_kv_head):
    torch.manual_seed(0)
    mods = [ref_others.LucidrainsSelfAttention(D, N, k, H, one_kv_head=one_kv_head, share_kv=share_kv).eval()
            for k in (4, 6)]  # a different k per layer
    state = {}
    for i, m in enumerate(mods):
        state.update({f"layers.{i}.attn.{k}": v for k, v in m.state_dict().items()})
    ckpt = save_pt(tmp_path / "lucidrains.pt", state)
    out = tmp_path / "model.safetensors"
    r = convert(ckpt, "--into", base_model(tmp_path), "--out", out)
    assert "lucidrains" in r.stdout
    _, cfg = read_model(out)
    assert cfg["attention"] == "linformer" and cfg["k"] == [4, 6] and cfg["proj_order"] == "linear_first"
    assert cfg["sharing"] == ("kv" if share_kv else "headwise")
    rng = np.random.default_rng(0)
    ids = rng.integers(5, V, size=(3, N)).tolist()  # lucidrains takes exactly seq_len tokens, no mask
    check(out, mods, ids, lambda m, x, mask: m(x), tmp_path, f"lucidrains share_kv={share_kv} one_kv={one_kv_head}")


@pytest.mark.parametrize("sharing,w_o_mid", [("none", None), ("headwise", 12), ("kv", None), ("layerwise", None)])
def test_tatp22_attention(tmp_path, sharing, w_o_mid):
    torch.manual_seed(1)
    shared = ref_others.get_EF(N, 4) if sharing == "layerwise" else None
    mods = [ref_others.Tatp22MHAttention(N, D // H, D, 4, H, sharing, shared, shared,
                                         w_o_intermediate_dim=w_o_mid).zero_projection_biases().eval()
            for _ in range(2)]
    state = {}
    for i, m in enumerate(mods):
        state.update({f"seq.{2 * i}.{k}": v for k, v in m.state_dict().items()})
    ckpt = save_pt(tmp_path / "tatp22.pt", {"state_dict": state})
    out = tmp_path / "model.safetensors"
    convert(ckpt, "--into", base_model(tmp_path), "--activation", "none", "--out", out)
    _, cfg = read_model(out)
    assert cfg["sharing"] == sharing and cfg["k"] == 4 and cfg["proj_order"] == "linear_first"
    rng = np.random.default_rng(1)
    ids = [rng.integers(5, V, size=n).tolist() for n in (N, 5, 2)]  # tatp22 masks padded keys/values

    def call(m, x, mask):
        assert x.shape[1] == N  # the batch holds a full-length sequence, as tatp22 requires
        return m(x, input_mask=mask.bool())

    check(out, mods, ids, call, tmp_path, f"tatp22 {sharing}")


def test_refusals(tmp_path):
    torch.manual_seed(2)
    out = tmp_path / "model.safetensors"
    lm = save_pt(tmp_path / "lm.pt", ref_others.LucidrainsLM().state_dict())
    expect_error(lm, "--out", out, contains=["lucidrains", "pre-LayerNorm", "emb_norm", "to_logits"])
    one = ref_others.LucidrainsSelfAttention(D, N, 4, H)
    ckpt = save_pt(tmp_path / "one.pt", {f"attn.{k}": v for k, v in one.state_dict().items()})
    expect_error(ckpt, "--out", out, contains="--into")
    expect_error(ckpt, "--into", base_model(tmp_path), "--out", out, contains=["1 attention modules", "2 layers"])
    wide = ref_others.LucidrainsSelfAttention(D, N, 4, H, dim_head=4)
    ckpt = save_pt(tmp_path / "wide.pt", {f"attn.{k}": v for k, v in wide.state_dict().items()})
    expect_error(ckpt, "--into", base_model(tmp_path, 1), "--out", out, contains=["attn.to_q.weight", "dim_head"])

    t = ref_others.Tatp22MHAttention(N, D // H, D, 4, H, "headwise")
    ckpt = save_pt(tmp_path / "tatp22.pt", {f"a.{k}": v for k, v in t.state_dict().items()})
    base1 = base_model(tmp_path, 1)
    expect_error(ckpt, "--into", base1, "--out", out, contains=["--activation", "w_o"])
    expect_error(ckpt, "--into", base1, "--activation", "gelu", "--out", out, contains="activation 'gelu'")
    expect_error(ckpt, "--into", base1, "--activation", "none", "--out", out,
                 contains=["a.heads.0.E.bias", "not zero"])
    t.zero_projection_biases()
    sd = {f"a.{k}": v for k, v in t.state_dict().items()}
    sd.pop("a.to_v.1.weight")
    ckpt = save_pt(tmp_path / "missing.pt", sd)
    expect_error(ckpt, "--into", base1, "--activation", "none", "--out", out, contains=["missing key", "a.to_v.1.weight"])
    assert not out.exists()

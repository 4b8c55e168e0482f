"""linformer.torch.Encoder against the pure-PyTorch twin of the model (tests/reference/
linformer_ref.py, written from docs/model.md): the hidden states and every parameter gradient to
1e-4, the key-padding mask honoured, torch.optim.AdamW lowering the loss as it does for the twin,
state_dict / requires_grad_ / from_file, and the misuse errors."""

import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import linformer  # noqa: E402
import linformer.torch as lt  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "reference"))
from linformer_ref import Config, LinformerRef  # noqa: E402

torch.set_num_threads(1)

CONFIGS = {
    "linformer": {"vocab_size": 30, "max_len": 16, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2,
                  "attention": "linformer", "k": [8], "dropout": 0.0, "attention_dropout": 0.0},
    "full": {"vocab_size": 30, "max_len": 16, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2,
             "attention": "full", "dropout": 0.0, "attention_dropout": 0.0},
}


def batch():
    ids = torch.tensor([[1, 5, 6, 7, 8, 9, 2, 0, 0, 0, 0, 0], [1, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 2]])
    mask = (torch.arange(12)[None] < torch.tensor([[7], [12]])).to(torch.int32)
    return ids, mask


def twin(enc):
    ref = LinformerRef(Config.from_dict(enc.config)).float()
    ref.load_named({k: v.detach().clone() for k, v in enc.state_dict().items()})
    return ref


@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_outputs_and_gradients_match_pytorch(kind):
    enc = lt.Encoder(CONFIGS[kind], seed=3)
    ref = twin(enc)
    ids, mask = batch()
    w = torch.randn(2, 12, 32, generator=torch.Generator().manual_seed(0))
    keep = mask[..., None].float()
    h = enc(ids, mask)
    h_ref = ref.encode(ids, mask)
    worst_h = float(((h - h_ref) * keep).abs().max())
    (h * w * keep).sum().backward()
    (h_ref * w * keep).sum().backward()
    ref_grads = {n: p.grad for n, p in ref.named_parameters()}
    worst_g, checked = 0.0, 0
    for name, p in enc.named_parameters():
        g_ref = ref_grads.get(name)
        if g_ref is None:  # the heads: no gradient from the encoder's output
            assert p.grad is None or float(p.grad.abs().max()) == 0, name
            continue
        scale = max(1.0, float(g_ref.abs().max()))
        worst_g = max(worst_g, float((p.grad - g_ref).abs().max()) / scale)
        checked += 1
    print(f"{kind}: worst |hidden - twin| {worst_h:.3g}, worst gradient difference {worst_g:.3g} "
          f"over {checked} tensors")
    assert worst_h < 1e-4 and worst_g < 1e-4 and checked >= 10


def test_key_padding_mask_is_honoured():
    enc = lt.Encoder(CONFIGS["linformer"], seed=1).eval()
    ids, mask = batch()
    h = enc(ids, mask)
    ids2 = ids.clone()
    ids2[0, 7:] = 25  # other ids under the padding
    alone = enc(ids[:1, :7])
    assert torch.equal(enc(ids2, mask)[0, :7], h[0, :7])
    assert torch.allclose(alone[0], h[0, :7], atol=1e-5)


def test_adamw_lowers_the_loss_like_the_twin():
    enc = lt.Encoder(CONFIGS["linformer"], seed=5)
    ref = twin(enc)
    ids, mask = batch()
    target = torch.randn(2, 32, generator=torch.Generator().manual_seed(1))

    def loss_of(h):
        pooled = (h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return ((pooled - target) ** 2).mean()
    losses = {"ours": [], "twin": []}
    for name, module, fwd in (("ours", enc, lambda: enc(ids, mask)), ("twin", ref, lambda: ref.encode(ids, mask))):
        opt = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=3e-3)
        for _ in range(15):
            opt.zero_grad()
            loss = loss_of(fwd())
            loss.backward()
            opt.step()
            losses[name].append(float(loss))
    print("losses:", [f"{a:.4f}/{b:.4f}" for a, b in zip(losses["ours"], losses["twin"])])
    assert losses["ours"][-1] < 0.7 * losses["ours"][0]
    assert max(abs(a - b) for a, b in zip(losses["ours"], losses["twin"])) < 1e-3


def test_state_dict_requires_grad_and_files(tmp_path):
    enc = lt.Encoder(CONFIGS["linformer"], seed=2)
    sd = enc.state_dict()
    assert "blk.0.attn_q.weight" in sd and sd["tok_emb.weight"].shape == (30, 32)
    other = lt.Encoder(CONFIGS["linformer"], seed=9)
    other.load_state_dict(sd)
    ids, mask = batch()
    assert torch.equal(other(ids, mask), enc(ids, mask))
    path = tmp_path / "enc.safetensors"
    enc.save(path)
    assert torch.equal(lt.Encoder.from_file(path).eval()(ids, mask), enc.eval()(ids, mask))
    # linformer.load reads it: the same hidden states as the inference API.
    h, _ = linformer.load(str(path)).forward(ids.numpy(), mask=mask.numpy())
    assert np.allclose(h, enc(ids, mask).detach().numpy(), atol=1e-5)
    enc.requires_grad_(False)
    assert not enc(ids, mask).requires_grad


def test_misuse_is_an_error():
    enc = lt.Encoder(CONFIGS["linformer"], seed=2)
    ids, mask = batch()
    h1 = enc(ids, mask)
    enc(ids, mask)
    with pytest.raises(RuntimeError, match="older forward"):
        h1.sum().backward()
    with pytest.raises(linformer.InputError, match="token id 30"):
        enc(torch.tensor([[1, 30]]))
    with pytest.raises(linformer.ConfigError, match="n_heads"):
        lt.Encoder({**CONFIGS["linformer"], "n_heads": 3})
    enc.double()
    with pytest.raises(RuntimeError, match="float32"):
        enc(ids, mask)

"""PyTorch twin of the linformer encoder, written from docs/model.md (not from the C++).

The module's state_dict names are exactly the C++ tensor names (docs/model.md, docs/format.md),
so a model file or a parity dump loads by name:

    cfg = Config.from_dict(json.load(open("config.json")))
    m = LinformerRef(cfg).to(torch.float64)
    m.load_named(tensors)            # dict name -> numpy/torch array
    m.eval()
    hidden = m.encode(ids, mask)     # ids [B, n] int64, mask [B, n] (1 = real token)

The dtype is whatever the module is cast to (float64 for the parity test, float32 for
benchmarks). Dropout uses torch's own RNG (it cannot match the C++ masks); parity runs in eval.

Pass a dict as `acts` to encode / mlm_logits / cls_logits to record every intermediate under
the names of the C++ activation table (Model::activations, docs/model.md "Activations"), in
forward order: "emb", "emb_norm", "emb_out", "blk.<l>.attn_out" ... "blk.<l>.out", "mlm.*", "cls.*".
"""
import json
import math
from dataclasses import dataclass, field
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F

IGNORE_INDEX = -100


@dataclass
class Config:
    vocab_size: int = 8000
    max_len: int = 512
    d_model: int = 256
    n_heads: int = 4
    d_ff: int = 1024
    n_layers: int = 4
    attention: str = "linformer"        # full | linformer
    k: List[int] = field(default_factory=lambda: [64])
    sharing: str = "headwise"           # none | headwise | kv | layerwise
    proj_order: str = "input_first"     # input_first | linear_first
    projection: str = "learned"         # learned | mean | max | conv | random
    dropout: float = 0.1
    attention_dropout: float = 0.1
    layer_norm_eps: float = 1e-5
    init_std: float = 0.02
    num_labels: int = 0
    pooling: str = "first"              # first | mean

    @staticmethod
    def from_dict(d):
        cfg = Config()
        for key, val in d.items():
            if not hasattr(cfg, key):
                raise ValueError(f"unknown config key {key!r}")
            setattr(cfg, key, val)
        if isinstance(cfg.k, int):
            cfg.k = [cfg.k]
        cfg.k = [int(v) for v in cfg.k]
        if len(cfg.k) not in (1, cfg.n_layers):
            raise ValueError("k must have 1 or n_layers values")
        assert cfg.attention in ("full", "linformer", "tiled"), cfg.attention  # tiled computes full attention
        assert cfg.sharing in ("none", "headwise", "kv", "layerwise"), cfg.sharing
        assert cfg.proj_order in ("input_first", "linear_first"), cfg.proj_order
        assert cfg.projection in ("learned", "mean", "max", "conv", "random"), cfg.projection
        if cfg.projection in ("mean", "max", "conv"):
            assert all(cfg.max_len % k == 0 for k in cfg.k), "window kinds need k | max_len"
        assert cfg.pooling in ("first", "mean"), cfg.pooling
        assert cfg.d_model % cfg.n_heads == 0
        return cfg

    @staticmethod
    def from_json(text):
        return Config.from_dict(json.loads(text))

    def k_of(self, layer):
        return self.k[0] if len(self.k) == 1 else self.k[layer]

    def proj_shape(self, layer):
        """Shape of one E or F: [k, N] (learned, random), [w] (conv kernel), None (mean, max)."""
        if self.projection in ("mean", "max"):
            return None
        if self.projection == "conv":
            return [self.max_len // self.k_of(layer)]
        return [self.k_of(layer), self.max_len]


def proj_param(shape):
    """E/F (or a conv kernel) as a parameter; projections() detaches the frozen random one."""
    return nn.Parameter(torch.zeros(shape))


def window_pool(t, mask, w, kind):
    """Pools windows of w positions of t [B, n, c] over its real rows (mask [B, n]).

    Positions n..N-1 count as padding, so window j covers positions j*w .. j*w+w-1 of the
    zero-padded sequence. mean: average of the real rows; max: their per-channel maximum; a
    window without a real row gives 0. Returns (pooled [B, k, c], window mask [B, k]).
    """
    B, n, c = t.shape
    N = ((n + w - 1) // w) * w
    tp = F.pad(t, (0, 0, 0, N - n)).reshape(B, N // w, w, c)
    mp = F.pad(mask.to(t.dtype), (0, N - n)).reshape(B, N // w, w)
    count = mp.sum(2)                                               # [B, k']
    if kind == "mean":
        out = (tp * mp[..., None]).sum(2) / count.clamp(min=1)[..., None]
    else:
        out = tp.masked_fill(mp[..., None] == 0, float("-inf")).amax(2)
        out = torch.where(count[..., None] > 0, out, torch.zeros_like(out))
    return out, count > 0


def strided_conv(t, kernel, w):
    """Convolution along the sequence, kernel = stride = w, the same kernel for every channel.

    t [B, h, n, c] (one input per head), kernel [h, w] -> [B, h, n/w rounded up, c]; the
    sequence is zero-padded to a multiple of w.
    """
    B, h, n, c = t.shape
    N = ((n + w - 1) // w) * w
    tp = F.pad(t, (0, 0, 0, N - n)).reshape(B, h, N // w, w, c)
    return torch.einsum("bhjuc,hu->bhjc", tp, kernel)


def record(acts, prefix=""):
    """rec(name, t): stores t under prefix + name in acts (when acts is a dict) and returns t."""
    def rec(name, t):
        if acts is not None:
            acts[prefix + name] = t
        return t
    return rec


class Layer(nn.Module):
    """One post-LayerNorm encoder layer. Attribute names give the C++ names blk.l.*."""

    def __init__(self, cfg: Config, layer: int):
        super().__init__()
        d, f, h, N = cfg.d_model, cfg.d_ff, cfg.n_heads, cfg.max_len
        self.cfg = cfg
        self.attn_q = nn.Linear(d, d)
        self.attn_k = nn.Linear(d, d)
        self.attn_v = nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.attn_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.ffn_up = nn.Linear(d, f)
        self.ffn_down = nn.Linear(f, d)
        self.ffn_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.layer = layer
        shape = cfg.proj_shape(layer)
        if cfg.attention == "linformer" and shape is not None:
            if cfg.sharing == "none":
                self.attn_proj_e = proj_param([h] + shape)
                self.attn_proj_f = proj_param([h] + shape)
            elif cfg.sharing == "headwise":
                self.attn_proj_e = proj_param(shape)
                self.attn_proj_f = proj_param(shape)
            elif cfg.sharing == "kv":
                self.attn_proj_kv = proj_param(shape)
            # layerwise: the model's attn_proj_shared is passed to forward()

    def projections(self, shared):
        """E and F as [h, k, N] (conv: kernels [h, w]; shared ones are expanded over the heads)."""
        h = self.cfg.n_heads
        s = self.cfg.sharing
        if s == "none":
            E, Fp = self.attn_proj_e, self.attn_proj_f
        elif s == "headwise":
            E, Fp = self.attn_proj_e, self.attn_proj_f
        elif s == "kv":
            E = Fp = self.attn_proj_kv
        else:
            E = Fp = shared
        if self.cfg.projection == "conv":
            if E.dim() == 1:
                E = E.unsqueeze(0).expand(h, -1)
                Fp = Fp.unsqueeze(0).expand(h, -1)
        elif E.dim() == 2:
            E = E.unsqueeze(0).expand(h, -1, -1)
            Fp = Fp.unsqueeze(0).expand(h, -1, -1)
        if self.cfg.projection == "random":   # frozen: no gradient reaches it
            E, Fp = E.detach(), Fp.detach()
        return E, Fp

    def drop(self, x, p):
        return F.dropout(x, p, self.training) if p > 0 else x

    def attention(self, x, mask, shared):
        cfg = self.cfg
        B, n, d = x.shape
        h = cfg.n_heads
        dh = d // h
        maskf = mask.to(x.dtype)  # [B, n]

        def heads(t):  # [B, m, d] -> [B, h, m, dh]
            return t.reshape(t.shape[0], t.shape[1], h, dh).permute(0, 2, 1, 3)

        q = heads(self.attn_q(x))  # [B, h, n, dh]
        if cfg.attention in ("full", "tiled"):
            kk = heads(self.attn_k(x))
            vv = heads(self.attn_v(x))
            scores = q @ kk.transpose(-1, -2) / math.sqrt(dh)  # [B, h, n, n]
            scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
        elif cfg.projection in ("mean", "max", "conv"):
            kk, vv, wmask = self.window_context(x, mask, shared)
            scores = q @ kk.transpose(-1, -2) / math.sqrt(dh)  # [B, h, n, k]
            # Projected keys whose window holds no real token are masked like padded keys.
            scores = scores.masked_fill(wmask[:, None, None, :] == 0, float("-inf"))
        else:
            E, Fp = self.projections(shared)
            E = E[:, :, :n]    # [h, k, n]: first n columns
            Fp = Fp[:, :, :n]
            if cfg.proj_order == "input_first":
                xm = x * maskf[:, :, None]                      # padded rows zeroed
                ex = torch.einsum("hkt,btd->bhkd", E, xm)       # E(i) xm, per head
                fx = torch.einsum("hkt,btd->bhkd", Fp, xm)
                Wk = self.attn_k.weight.reshape(h, dh, d)        # Wk_i = rows i*dh..(i+1)*dh
                Wv = self.attn_v.weight.reshape(h, dh, d)
                bk = self.attn_k.bias.reshape(h, 1, dh)
                bv = self.attn_v.bias.reshape(h, 1, dh)
                kk = torch.einsum("bhkd,hed->bhke", ex, Wk) + bk  # [B, h, k, dh]
                vv = torch.einsum("bhkd,hed->bhke", fx, Wv) + bv
            else:  # linear_first
                K = self.attn_k(x) * maskf[:, :, None]
                V = self.attn_v(x) * maskf[:, :, None]
                kk = torch.einsum("hkt,bhte->bhke", E, heads(K))
                vv = torch.einsum("hkt,bhte->bhke", Fp, heads(V))
            scores = q @ kk.transpose(-1, -2) / math.sqrt(dh)  # [B, h, n, k]; no mask
        p = self.drop(torch.softmax(scores, dim=-1), cfg.attention_dropout)
        c = p @ vv                                             # [B, h, n, dh]
        c = c.permute(0, 2, 1, 3).reshape(B, n, d)
        return self.attn_out(c)

    def window_context(self, x, mask, shared):
        """Projected keys/values [B, h, k, dh] of the window kinds (mean, max, conv), and the
        window mask [B, k] (1 where the window holds a real token)."""
        cfg = self.cfg
        B, n, d = x.shape
        h = cfg.n_heads
        dh = d // h
        k = cfg.k_of(self.layer)
        w = cfg.max_len // k
        maskf = mask.to(x.dtype)

        def heads(t):
            return t.reshape(t.shape[0], t.shape[1], h, dh).permute(0, 2, 1, 3)

        def fit(t):  # windows beyond n (all padding) -> exactly k windows
            return F.pad(t, (0, 0, 0, k - t.shape[-2])) if t.shape[-2] < k else t

        _, wmask = window_pool(x, mask, w, "mean")
        wmask = F.pad(wmask, (0, k - wmask.shape[1]))
        Wk = self.attn_k.weight.reshape(h, dh, d)
        Wv = self.attn_v.weight.reshape(h, dh, d)
        bk = self.attn_k.bias.reshape(h, 1, dh)
        bv = self.attn_v.bias.reshape(h, 1, dh)
        if cfg.projection in ("mean", "max"):
            if cfg.proj_order == "input_first":
                px, _ = window_pool(x, mask, w, cfg.projection)          # [B, k', d]
                px = fit(px)
                kk = heads(self.attn_k(px))
                vv = heads(self.attn_v(px))
            else:
                pk, _ = window_pool(self.attn_k(x), mask, w, cfg.projection)
                pv, _ = window_pool(self.attn_v(x), mask, w, cfg.projection)
                kk, vv = heads(fit(pk)), heads(fit(pv))
            return kk, vv, wmask
        E, Fp = self.projections(shared)                                 # kernels [h, w]
        if cfg.proj_order == "input_first":
            xm = (x * maskf[:, :, None])[:, None].expand(B, h, n, d)    # the whole input, per head
            ex = fit(strided_conv(xm, E, w))                              # [B, h, k, d]
            fx = fit(strided_conv(xm, Fp, w))
            kk = torch.einsum("bhkd,hed->bhke", ex, Wk) + bk
            vv = torch.einsum("bhkd,hed->bhke", fx, Wv) + bv
        else:
            K = self.attn_k(x) * maskf[:, :, None]
            V = self.attn_v(x) * maskf[:, :, None]
            kk = fit(strided_conv(heads(K), E, w))
            vv = fit(strided_conv(heads(V), Fp, w))
        return kk, vv, wmask

    def forward(self, x, mask, shared=None, acts=None):
        p = self.cfg.dropout
        rec = record(acts, f"blk.{self.layer}.")
        a = rec("attn_out", self.attention(x, mask, shared))
        x1 = rec("attn_norm", self.attn_norm(rec("attn_res", x + self.drop(a, p))))
        up = rec("ffn_up", self.ffn_up(x1))
        u = rec("ffn_act", F.gelu(up))  # exact erf form
        down = rec("ffn_down", self.ffn_down(u))
        return rec("out", self.ffn_norm(rec("ffn_res", x1 + self.drop(down, p))))


class MlmHead(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.norm = nn.LayerNorm(cfg.d_model, eps=cfg.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(cfg.vocab_size))


class ClsHead(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.dense = nn.Linear(cfg.d_model, cfg.d_model)
        self.out = nn.Linear(cfg.d_model, cfg.num_labels)


class LinformerRef(nn.Module):
    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        d = cfg.d_model
        self.tok_emb = nn.Embedding(cfg.vocab_size, d)
        self.pos_emb = nn.Embedding(cfg.max_len, d)
        self.emb_norm = nn.LayerNorm(d, eps=cfg.layer_norm_eps)
        self.blk = nn.ModuleList([Layer(cfg, l) for l in range(cfg.n_layers)])
        if (cfg.attention == "linformer" and cfg.sharing == "layerwise"
                and cfg.proj_shape(0) is not None):
            self.attn_proj_shared = proj_param(cfg.proj_shape(0))
        else:
            self.attn_proj_shared = None
        self.mlm = MlmHead(cfg)
        self.cls = ClsHead(cfg) if cfg.num_labels > 0 else None

    # ---- weights -------------------------------------------------------------------------
    def init_weights(self, seed=0):
        """docs/model.md initialisation (not bit-identical to the C++ generator)."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                if name.endswith("norm.weight"):
                    p.fill_(1.0)
                elif name.endswith("bias"):
                    p.zero_()
                else:
                    p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64) * self.cfg.init_std)
        return self

    def load_named(self, tensors, strict=True):
        """Copies tensors (name -> array) into the parameters with the same names."""
        own = dict(self.named_parameters())
        missing = [k for k in own if k not in tensors]
        if strict and missing:
            raise KeyError(f"missing tensors: {missing}")
        with torch.no_grad():
            for name, p in own.items():
                if name not in tensors:
                    continue
                t = torch.as_tensor(tensors[name])
                if tuple(t.shape) != tuple(p.shape):
                    raise ValueError(f"{name}: shape {tuple(t.shape)} != {tuple(p.shape)}")
                p.copy_(t.to(p.dtype))
        return self

    # ---- forward -------------------------------------------------------------------------
    def encode(self, ids, mask, acts=None):
        """ids [B, n] (int), mask [B, n] (1 real / 0 pad) -> hidden [B, n, d]."""
        cfg = self.cfg
        B, n = ids.shape
        assert n <= cfg.max_len
        ids = ids.long()
        pos = torch.arange(n, device=ids.device)
        rec = record(acts)
        e = rec("emb", self.tok_emb(ids) + self.pos_emb(pos)[None])
        x = rec("emb_norm", self.emb_norm(e))
        if cfg.dropout > 0:
            x = F.dropout(x, cfg.dropout, self.training)
        rec("emb_out", x)
        for layer in self.blk:
            x = layer(x, mask, self.attn_proj_shared, acts)
        return x

    def mlm_logits(self, hidden, acts=None):
        rec = record(acts)
        h = rec("mlm.dense", self.mlm.dense(hidden))
        z = rec("mlm.norm", self.mlm.norm(rec("mlm.act", F.gelu(h))))
        return rec("mlm.logits", z @ self.tok_emb.weight.t() + self.mlm.bias)

    def cls_logits(self, hidden, mask, acts=None):
        cfg = self.cfg
        rec = record(acts)
        if cfg.pooling == "first":
            p = hidden[:, 0]
        else:
            m = mask.to(hidden.dtype)[:, :, None]
            p = (hidden * m).sum(1) / m.sum(1)
        rec("cls.pooled", p)
        if cfg.dropout > 0:
            p = F.dropout(p, cfg.dropout, self.training)
        t = rec("cls.tanh", torch.tanh(rec("cls.dense", self.cls.dense(rec("cls.pooled_drop", p)))))
        if cfg.dropout > 0:
            t = F.dropout(t, cfg.dropout, self.training)
        return rec("cls.logits", self.cls.out(rec("cls.tanh_drop", t)))

    @staticmethod
    def mlm_loss(logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(),
                               ignore_index=IGNORE_INDEX)

    @staticmethod
    def cls_loss(logits, labels):
        return F.cross_entropy(logits, labels.long())

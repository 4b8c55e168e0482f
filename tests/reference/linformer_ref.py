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
        assert cfg.pooling in ("first", "mean"), cfg.pooling
        assert cfg.d_model % cfg.n_heads == 0
        return cfg

    @staticmethod
    def from_json(text):
        return Config.from_dict(json.loads(text))

    def k_of(self, layer):
        return self.k[0] if len(self.k) == 1 else self.k[layer]


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
        if cfg.attention == "linformer":
            k = cfg.k_of(layer)
            if cfg.sharing == "none":
                self.attn_proj_e = nn.Parameter(torch.zeros(h, k, N))
                self.attn_proj_f = nn.Parameter(torch.zeros(h, k, N))
            elif cfg.sharing == "headwise":
                self.attn_proj_e = nn.Parameter(torch.zeros(k, N))
                self.attn_proj_f = nn.Parameter(torch.zeros(k, N))
            elif cfg.sharing == "kv":
                self.attn_proj_kv = nn.Parameter(torch.zeros(k, N))
            # layerwise: the model's attn_proj_shared is passed to forward()

    def projections(self, shared):
        """E and F as [h, k, N] (shared ones are expanded over the heads)."""
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
        if E.dim() == 2:
            E = E.unsqueeze(0).expand(h, -1, -1)
            Fp = Fp.unsqueeze(0).expand(h, -1, -1)
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

    def forward(self, x, mask, shared=None):
        p = self.cfg.dropout
        a = self.attention(x, mask, shared)
        x1 = self.attn_norm(x + self.drop(a, p))
        u = F.gelu(self.ffn_up(x1))  # exact erf form
        return self.ffn_norm(x1 + self.drop(self.ffn_down(u), p))


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
        if cfg.attention == "linformer" and cfg.sharing == "layerwise":
            self.attn_proj_shared = nn.Parameter(torch.zeros(cfg.k[0], cfg.max_len))
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
    def encode(self, ids, mask):
        """ids [B, n] (int), mask [B, n] (1 real / 0 pad) -> hidden [B, n, d]."""
        cfg = self.cfg
        B, n = ids.shape
        assert n <= cfg.max_len
        ids = ids.long()
        pos = torch.arange(n, device=ids.device)
        e = self.tok_emb(ids) + self.pos_emb(pos)[None]
        x = self.emb_norm(e)
        if cfg.dropout > 0:
            x = F.dropout(x, cfg.dropout, self.training)
        for layer in self.blk:
            x = layer(x, mask, self.attn_proj_shared)
        return x

    def mlm_logits(self, hidden):
        z = self.mlm.norm(F.gelu(self.mlm.dense(hidden)))
        return z @ self.tok_emb.weight.t() + self.mlm.bias

    def cls_logits(self, hidden, mask):
        cfg = self.cfg
        if cfg.pooling == "first":
            p = hidden[:, 0]
        else:
            m = mask.to(hidden.dtype)[:, :, None]
            p = (hidden * m).sum(1) / m.sum(1)
        if cfg.dropout > 0:
            p = F.dropout(p, cfg.dropout, self.training)
        t = torch.tanh(self.cls.dense(p))
        if cfg.dropout > 0:
            t = F.dropout(t, cfg.dropout, self.training)
        return self.cls.out(t)

    @staticmethod
    def mlm_loss(logits, labels):
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).long(),
                               ignore_index=IGNORE_INDEX)

    @staticmethod
    def cls_loss(logits, labels):
        return F.cross_entropy(logits, labels.long())

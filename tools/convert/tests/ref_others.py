"""Small versions of lucidrains' and tatp22's Linformer attention modules, written from their
code (lucidrains/linformer linformer.py; tatp22/linformer-pytorch linformer_pytorch.py), for
test state dicts with their key names and their outputs. Not their code: the same computation.

lucidrains LinformerSelfAttention: to_q/to_k/to_v without bias, proj_k/proj_v [seq_len, k]
applied after to_k/to_v (einsum 'bnd,nk->bkd'), one_kv_head keys expanded over the heads,
share_kv values = keys, scores * dim_head^-0.5, no mask, to_out with bias.
tatp22 MHAttention: per-head to_q/to_k/to_v lists without bias, LinearAttentionHead with E/F
nn.Linear(input_size, dim_k) applied to K^T / V^T after zeroing padded rows (input_mask),
scores / sqrt(dim), sharing modes by which modules are shared, `activation` on the concatenated
heads, w_o or w_o_1 + w_o_2. And the two libraries' PreNorm stacks, only to get their key names.
"""
import torch
import torch.nn as nn


class LucidrainsSelfAttention(nn.Module):
    def __init__(self, dim, seq_len, k, heads, dim_head=None, one_kv_head=False, share_kv=False):
        super().__init__()
        self.seq_len, self.k, self.heads = seq_len, k, heads
        dim_head = dim_head or dim // heads
        self.dim_head = dim_head
        self.to_q = nn.Linear(dim, dim_head * heads, bias=False)
        kv_dim = dim_head if one_kv_head else dim_head * heads
        self.to_k = nn.Linear(dim, kv_dim, bias=False)
        self.proj_k = nn.Parameter(torch.randn(seq_len, k) / k ** 0.5)
        self.share_kv = share_kv
        if not share_kv:
            self.to_v = nn.Linear(dim, kv_dim, bias=False)
            self.proj_v = nn.Parameter(torch.randn(seq_len, k) / k ** 0.5)
        self.to_out = nn.Linear(dim_head * heads, dim)

    def forward(self, x):
        b, n, d = x.shape
        dh, h, k = self.dim_head, self.heads, self.k
        assert n == self.seq_len
        q = self.to_q(x)
        keys = self.to_k(x)
        values = self.to_v(x) if not self.share_kv else keys
        pk, pv = self.proj_k, (self.proj_v if not self.share_kv else self.proj_k)
        keys = torch.einsum("bnd,nk->bkd", keys, pk)
        values = torch.einsum("bnd,nk->bkd", values, pv)
        q = q.reshape(b, n, h, -1).transpose(1, 2)
        merge = lambda t: t.reshape(b, k, -1, dh).transpose(1, 2).expand(-1, h, -1, -1)
        keys, values = merge(keys), merge(values)
        attn = (torch.einsum("bhnd,bhkd->bhnk", q, keys) * dh ** -0.5).softmax(dim=-1)
        out = torch.einsum("bhnk,bhkd->bhnd", attn, values).transpose(1, 2).reshape(b, n, -1)
        return self.to_out(out)


class LucidrainsLM(nn.Module):
    """The key layout of lucidrains' LinformerLM (PreNorm blocks), for the refusal test."""

    def __init__(self, num_tokens=20, dim=16, seq_len=8, depth=1, k=4, heads=2):
        super().__init__()
        self.token_emb = nn.Embedding(num_tokens, dim)
        self.pos_emb = nn.Embedding(seq_len, dim)
        layers = []
        for _ in range(depth):
            attn = nn.Module()
            attn.fn = LucidrainsSelfAttention(dim, seq_len, k, heads)
            attn.norm = nn.LayerNorm(dim)
            ff = nn.Module()
            ff.fn = nn.Module()
            ff.fn.w1, ff.fn.w2 = nn.Linear(dim, 4 * dim), nn.Linear(4 * dim, dim)
            ff.norm = nn.LayerNorm(dim)
            layers.append(nn.ModuleList([attn, ff]))
        self.linformer = nn.Module()
        self.linformer.net = nn.Module()
        self.linformer.net.layers = nn.ModuleList(layers)
        self.to_logits = nn.Linear(dim, num_tokens)


class LinearAttentionHead(nn.Module):
    def __init__(self, dim, E, F):
        super().__init__()
        self.E, self.F, self.dim = E, F, dim

    def forward(self, Q, K, V, input_mask=None):
        if input_mask is not None:
            m = input_mask[:, :, None]
            K = K.masked_fill(~m, 0.0)
            V = V.masked_fill(~m, 0.0)
        K = self.E(K.transpose(1, 2))
        P = torch.matmul(Q, K) / torch.sqrt(torch.tensor(self.dim).type(Q.type()))
        P = P.softmax(dim=-1)
        V = self.F(V.transpose(1, 2)).transpose(1, 2)
        return torch.matmul(P, V)


def get_EF(input_size, dim_k):
    lin = nn.Linear(input_size, dim_k)
    nn.init.xavier_normal_(lin.weight)
    return lin


class Tatp22MHAttention(nn.Module):
    def __init__(self, input_size, dim, channels, dim_k, nhead, parameter_sharing, E_proj=None, F_proj=None,
                 activation=None, w_o_intermediate_dim=None):
        super().__init__()
        self.heads = nn.ModuleList()
        self.w_o_intermediate_dim = w_o_intermediate_dim
        if parameter_sharing != "layerwise":
            E_proj = get_EF(input_size, dim_k)
            F_proj = get_EF(input_size, dim_k) if parameter_sharing in ("none", "headwise") else E_proj
        self.to_q, self.to_k, self.to_v = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for _ in range(nhead):
            if parameter_sharing == "none":
                E_proj, F_proj = get_EF(input_size, dim_k), get_EF(input_size, dim_k)
            self.heads.append(LinearAttentionHead(dim, E_proj, F_proj))
            self.to_q.append(nn.Linear(channels, dim, bias=False))
            self.to_k.append(nn.Linear(channels, dim, bias=False))
            self.to_v.append(nn.Linear(channels, dim, bias=False))
        if w_o_intermediate_dim is None:
            self.w_o = nn.Linear(dim * nhead, channels)
        else:
            self.w_o_1 = nn.Linear(dim * nhead, w_o_intermediate_dim)
            self.w_o_2 = nn.Linear(w_o_intermediate_dim, channels)
        self.activation = activation

    def forward(self, x, input_mask=None):
        outs = [head(self.to_q[i](x), self.to_k[i](x), self.to_v[i](x), input_mask=input_mask)
                for i, head in enumerate(self.heads)]
        out = torch.cat(outs, dim=-1)
        if self.activation is not None:
            out = self.activation(out)
        if self.w_o_intermediate_dim is None:
            return self.w_o(out)
        return self.w_o_2(self.w_o_1(out))

    def zero_projection_biases(self):
        with torch.no_grad():
            for head in self.heads:
                head.E.bias.zero_()
                head.F.bias.zero_()
        return self


def encoder_outputs(tensors, cfg, attentions, ids, mask):
    """A linformer encoder (docs/model.md: embeddings + LayerNorm, post-LayerNorm layers with the
    erf GELU, the tied MLM head) whose layer l's attention is attentions[l](x, mask): the model
    the converter builds, with the source modules themselves as its attention. Eval mode.
    ids, mask: [B, n] tensors (mask 1 = real token) -> (hidden [B, n, d], logits [B, n, V])."""
    T = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in tensors.items()}
    eps = cfg["layer_norm_eps"]
    d = cfg["d_model"]
    ln = lambda x, p: torch.nn.functional.layer_norm(x, (d,), T[p + ".weight"], T[p + ".bias"], eps)
    lin = lambda x, p: x @ T[p + ".weight"].T + T[p + ".bias"]
    gelu = torch.nn.functional.gelu
    n = ids.shape[1]
    x = ln(T["tok_emb.weight"][ids] + T["pos_emb.weight"][:n][None], "emb_norm")
    for l, attn in enumerate(attentions):
        b = f"blk.{l}."
        x1 = ln(x + attn(x, mask), b + "attn_norm")
        x = ln(x1 + lin(gelu(lin(x1, b + "ffn_up")), b + "ffn_down"), b + "ffn_norm")
    z = ln(gelu(lin(x, "mlm.dense")), "mlm.norm")
    return x, z @ T["tok_emb.weight"].T + T["mlm.bias"]

"""A small fairseq `linformer_roberta` written from fairseq's code (examples/linformer and
fairseq/models/roberta), for building test checkpoints with fairseq's key names and computing
what fairseq would output. Not fairseq's code: the same computation, in the same order.

Followed exactly: the module tree (so state_dict() gives fairseq's keys), Time x Batch layout,
make_positions (real tokens numbered from padding_idx + 1, pads at padding_idx), the embedding
LayerNorm, zeroing padded rows only after the embeddings, MultiheadLinearAttention (q scaled by
head_dim^-0.5 after its bias; the layer input compressed along time by compress_k / compress_v
sliced to the first T columns, then k_proj / v_proj; no key padding mask after compression),
post-LayerNorm layers with the erf GELU, and RoBERTa's LM head tied to embed_tokens.
"""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F


def make_positions(tokens, padding_idx):
    mask = tokens.ne(padding_idx).int()
    return (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + padding_idx


class MultiheadLinearAttention(nn.Module):
    def __init__(self, d, heads, max_seq_len, compressed, shared_kv_compressed, shared_compress_layer):
        super().__init__()
        self.num_heads = heads
        self.head_dim = d // heads
        self.scaling = self.head_dim ** -0.5
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.q_proj = nn.Linear(d, d)
        if shared_compress_layer is None:
            self.compress_k = nn.Linear(max_seq_len, max_seq_len // compressed, bias=False)
            if shared_kv_compressed == 0:
                self.compress_v = nn.Linear(max_seq_len, max_seq_len // compressed, bias=False)
        else:
            self.compress_k = shared_compress_layer
            if shared_kv_compressed == 0:
                self.compress_v = shared_compress_layer
        self.shared_kv_compressed = shared_kv_compressed
        self.out_proj = nn.Linear(d, d)

    def forward(self, query):  # query: T x B x C
        T, B, C = query.shape
        q = self.q_proj(query)
        x = query.permute(1, 2, 0)  # B x C x T
        k_in = F.linear(x, self.compress_k.weight[:, :T]).permute(2, 0, 1)
        v_w = self.compress_k.weight if self.shared_kv_compressed else self.compress_v.weight
        v_in = F.linear(x, v_w[:, :T]).permute(2, 0, 1)
        k = self.k_proj(k_in)
        v = self.v_proj(v_in)
        q = q * self.scaling
        q = q.contiguous().view(T, B * self.num_heads, self.head_dim).transpose(0, 1)
        k = k.contiguous().view(-1, B * self.num_heads, self.head_dim).transpose(0, 1)
        v = v.contiguous().view(-1, B * self.num_heads, self.head_dim).transpose(0, 1)
        w = torch.softmax(torch.bmm(q, k.transpose(1, 2)).float(), dim=-1)
        attn = torch.bmm(w, v).transpose(0, 1).contiguous().view(T, B, C)
        return self.out_proj(attn)


class EncoderLayer(nn.Module):
    def __init__(self, args, shared_compress_layer):
        super().__init__()
        d = args.encoder_embed_dim
        self.self_attn = MultiheadLinearAttention(d, args.encoder_attention_heads, args.max_positions,
                                                  args.compressed, args.shared_kv_compressed,
                                                  shared_compress_layer)
        self.self_attn_layer_norm = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, args.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(args.encoder_ffn_embed_dim, d)
        self.final_layer_norm = nn.LayerNorm(d)

    def forward(self, x):
        x = self.self_attn_layer_norm(x + self.self_attn(x))
        return self.final_layer_norm(x + self.fc2(F.gelu(self.fc1(x))))


class SentenceEncoder(nn.Module):
    def __init__(self, args, vocab, padding_idx):
        super().__init__()
        d = args.encoder_embed_dim
        self.padding_idx = padding_idx
        self.embed_tokens = nn.Embedding(vocab, d, padding_idx)
        self.embed_positions = nn.Embedding(args.max_positions + padding_idx + 1, d, padding_idx)
        self.layernorm_embedding = nn.LayerNorm(d)
        self.compress_layer = None
        if args.shared_layer_kv_compressed:
            # nn.Linear with its (unused) bias, as fairseq builds it
            self.compress_layer = nn.Linear(args.max_positions, args.max_positions // args.compressed)
        self.layers = nn.ModuleList([EncoderLayer(args, self.compress_layer) for _ in range(args.encoder_layers)])

    def forward(self, tokens):
        pad = tokens.eq(self.padding_idx)
        x = self.embed_tokens(tokens) + self.embed_positions(make_positions(tokens, self.padding_idx))
        x = self.layernorm_embedding(x)
        x = x * (1 - pad.unsqueeze(-1).type_as(x))
        x = x.transpose(0, 1)  # B x T x C -> T x B x C
        for layer in self.layers:
            x = layer(x)
        return x.transpose(0, 1)


class LMHead(nn.Module):
    def __init__(self, d, weight):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.layer_norm = nn.LayerNorm(d)
        self.weight = weight
        self.bias = nn.Parameter(torch.zeros(weight.shape[0]))

    def forward(self, x):
        return F.linear(self.layer_norm(F.gelu(self.dense(x))), self.weight) + self.bias


class ClassificationHead(nn.Module):
    def __init__(self, d, num_classes):
        super().__init__()
        self.dense = nn.Linear(d, d)
        self.out_proj = nn.Linear(d, num_classes)

    def forward(self, features):
        return self.out_proj(torch.tanh(self.dense(features[:, 0, :])))


class RobertaEncoder(nn.Module):
    def __init__(self, args, vocab, padding_idx):
        super().__init__()
        self.sentence_encoder = SentenceEncoder(args, vocab, padding_idx)
        self.lm_head = LMHead(args.encoder_embed_dim, self.sentence_encoder.embed_tokens.weight)
        self.register_buffer("version", torch.tensor(2))


class LinformerModel(nn.Module):
    """model.encoder.sentence_encoder.*, model.encoder.lm_head.*, model.classification_heads.*"""

    def __init__(self, args, vocab, padding_idx=1, num_classes=0):
        super().__init__()
        self.args = args
        self.encoder = RobertaEncoder(args, vocab, padding_idx)
        self.classification_heads = nn.ModuleDict()
        if num_classes:
            self.classification_heads["sentence_classification_head"] = ClassificationHead(
                args.encoder_embed_dim, num_classes)

    def randomize(self, seed):
        """Every parameter random (biases and LayerNorms included), so no mapping can hide."""
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 0.1)
                        + (1.0 if name.endswith("norm.weight") or "layer_norm.weight" in name else 0.0))
        return self.eval()

    def forward(self, tokens):
        hidden = self.encoder.sentence_encoder(tokens)
        logits = self.encoder.lm_head(hidden)
        cls = None
        if len(self.classification_heads):
            cls = self.classification_heads["sentence_classification_head"](hidden)
        return hidden, logits, cls

    def checkpoint(self, with_args=True):
        ckpt = {"model": self.state_dict()}
        if with_args:
            ckpt["args"] = self.args
        return ckpt


def args(layers=2, d=16, heads=2, ffn=24, max_positions=12, compressed=3, shared_kv=0, shared_layer=0, **kw):
    a = argparse.Namespace(arch="linformer_roberta", encoder_layers=layers, encoder_embed_dim=d,
                           encoder_attention_heads=heads, encoder_ffn_embed_dim=ffn,
                           max_positions=max_positions, compressed=compressed, shared_kv_compressed=shared_kv,
                           shared_layer_kv_compressed=shared_layer, freeze_compress=0, activation_fn="gelu",
                           dropout=0.1, attention_dropout=0.1, encoder_normalize_before=False,
                           pooler_activation_fn="tanh")
    for k, v in kw.items():
        setattr(a, k, v)
    return a

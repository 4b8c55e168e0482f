"""A small Hugging Face RobertaForMaskedLM written from transformers' modeling_roberta, for test
folders with its key names and its outputs. Not transformers' code: the same computation.

Followed exactly: the module tree (state_dict() gives `roberta.embeddings.word_embeddings.weight`,
`roberta.encoder.layer.{i}.attention.self.query.weight`, `lm_head.decoder.weight`, ...), position
ids from create_position_ids_from_input_ids (cumsum of the non-pad mask, plus pad_token_id), the
token type embedding of type 0 added everywhere, padded keys masked with the dtype's minimum
before the softmax, scores divided by sqrt(head size), post-LayerNorm layers with config eps and
the erf GELU, the pooler (unused by the LM head), the LM head dense -> GELU -> LayerNorm ->
decoder tied to the word embeddings, whose bias is lm_head.bias.
"""
import json
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def config(vocab=40, d=16, heads=2, ffn=24, layers=2, max_len=12, pad=1, model_type="roberta", **kw):
    c = {"model_type": model_type, "architectures": ["RobertaForMaskedLM"], "vocab_size": vocab,
         "hidden_size": d, "num_attention_heads": heads, "intermediate_size": ffn, "num_hidden_layers": layers,
         "max_position_embeddings": max_len + pad + 1, "pad_token_id": pad, "bos_token_id": 0,
         "eos_token_id": 2, "type_vocab_size": 1, "hidden_act": "gelu", "layer_norm_eps": 1e-5,
         "initializer_range": 0.02, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
         "position_embedding_type": "absolute"}
    c.update(kw)
    return c


class Embeddings(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.pad = c["pad_token_id"]
        self.word_embeddings = nn.Embedding(c["vocab_size"], c["hidden_size"], padding_idx=self.pad)
        self.position_embeddings = nn.Embedding(c["max_position_embeddings"], c["hidden_size"], padding_idx=self.pad)
        self.token_type_embeddings = nn.Embedding(c["type_vocab_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, ids):
        mask = ids.ne(self.pad).int()
        pos = (torch.cumsum(mask, dim=1).type_as(mask) * mask).long() + self.pad
        types = torch.zeros_like(ids)
        x = self.word_embeddings(ids) + self.token_type_embeddings(types) + self.position_embeddings(pos)
        return self.LayerNorm(x)


class SelfAttention(nn.Module):
    def __init__(self, c):
        super().__init__()
        d = c["hidden_size"]
        self.h = c["num_attention_heads"]
        self.dh = d // self.h
        self.query, self.key, self.value = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)

    def forward(self, x, ext_mask):
        B, n, d = x.shape
        split = lambda t: t.view(B, n, self.h, self.dh).permute(0, 2, 1, 3)
        q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.dh) + ext_mask
        ctx = torch.softmax(scores, dim=-1) @ v
        return ctx.permute(0, 2, 1, 3).reshape(B, n, d)


class SelfOutput(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, a, x):
        return self.LayerNorm(self.dense(a) + x)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self = SelfAttention(c)
        self.output = SelfOutput(c)

    def forward(self, x, m):
        return self.output(self.self(x, m), x)


class Intermediate(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["intermediate_size"])

    def forward(self, x):
        return F.gelu(self.dense(x))


class Output(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["intermediate_size"], c["hidden_size"])
        self.LayerNorm = nn.LayerNorm(c["hidden_size"], eps=c["layer_norm_eps"])

    def forward(self, u, x):
        return self.LayerNorm(self.dense(u) + x)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.attention, self.intermediate, self.output = Attention(c), Intermediate(c), Output(c)

    def forward(self, x, m):
        a = self.attention(x, m)
        return self.output(self.intermediate(a), a)


class Encoder(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.layer = nn.ModuleList([Layer(c) for _ in range(c["num_hidden_layers"])])


class Pooler(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.dense = nn.Linear(c["hidden_size"], c["hidden_size"])


class Roberta(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embeddings, self.encoder, self.pooler = Embeddings(c), Encoder(c), Pooler(c)


class LMHead(nn.Module):
    def __init__(self, c, word_embeddings):
        super().__init__()
        d, V = c["hidden_size"], c["vocab_size"]
        self.dense = nn.Linear(d, d)
        self.layer_norm = nn.LayerNorm(d, eps=c["layer_norm_eps"])
        self.decoder = nn.Linear(d, V)
        self.bias = nn.Parameter(torch.zeros(V))
        self.decoder.weight = word_embeddings.weight  # tied
        self.decoder.bias = self.bias

    def forward(self, x):
        return self.decoder(self.layer_norm(F.gelu(self.dense(x))))


class RobertaForMaskedLM(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        self.roberta = Roberta(c)
        self.lm_head = LMHead(c, self.roberta.embeddings.word_embeddings)

    def randomize(self, seed):
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, p in self.named_parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (0.3 if p.dim() > 1 else 0.1)
                        + (1.0 if "LayerNorm.weight" in name or "layer_norm.weight" in name else 0.0))
        return self.eval()

    def forward(self, ids):
        mask = ids.ne(self.c["pad_token_id"])
        ext = (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min
        x = self.roberta.embeddings(ids)
        for layer in self.roberta.encoder.layer:
            x = layer(x, ext)
        return x, self.lm_head(x)

    def save(self, folder, fmt="safetensors"):
        """A Hugging Face folder: config.json and model.safetensors (tied tensors stored once, as
        transformers does) or pytorch_model.bin."""
        from linformer_convert import safetensors

        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps(self.c))
        sd = self.state_dict()
        if fmt == "safetensors":
            sd = {k: v.numpy() for k, v in sd.items() if k not in ("lm_head.decoder.weight", "lm_head.decoder.bias")}
            safetensors.write(str(folder / "model.safetensors"), sd, {"format": "pt"})
        else:
            torch.save(sd, str(folder / "pytorch_model.bin"))
        return folder

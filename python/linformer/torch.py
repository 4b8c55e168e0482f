"""linformer.torch: the encoder as a torch.nn.Module whose forward and backward run linformer's
C++ kernels (docs/python.md, "Inside PyTorch").

    import torch, linformer.torch as lt
    enc = lt.Encoder({"vocab_size": 8000, "max_len": 512, "attention": "linformer", "k": [64]}, seed=0)
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-4)
    hidden = enc(ids, mask)            # ids [B, n] int, mask [B, n] (1 = token, 0 = padding after them)
    loss = my_loss(hidden); loss.backward(); opt.step(); opt.zero_grad()

The parameters are ordinary float32 CPU torch tensors (torch optimizers, state_dict,
load_state_dict, requires_grad_(False) work) whose storage is the C++ model's own, under the C++
tensor names (docs/model.md); they must stay float32 on the CPU, in place (the module refuses
.double() or a device move). One forward, then its backward, at a time: a second forward before
the first one's backward makes that backward an error. The MLM and classification heads'
parameters are part of the module (they are in the model file) but get no gradient from forward.
"""

import numpy as np
import torch
from torch import nn

from . import _core

__all__ = ["Encoder"]


class _Node(nn.Module):
    """A plain container, so that parameter names keep the C++ tensor names' dots."""


class _EncoderFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, encoder, ids, mask, width, *params):
        hidden = torch.from_numpy(encoder._core.encode(ids, mask))  # [B, longest sequence, d]
        ctx.encoder = encoder
        ctx.forward_id = encoder._core.forwards
        ctx.n = hidden.shape[1]
        if width is not None and width > ctx.n:  # back to the input's width (zeros under the padding)
            hidden = torch.cat([hidden, hidden.new_zeros(hidden.shape[0], width - ctx.n, hidden.shape[2])], 1)
        return hidden

    @staticmethod
    def backward(ctx, dhidden):
        core = ctx.encoder._core
        if core.forwards != ctx.forward_id:
            raise RuntimeError("linformer.torch.Encoder: backward of an older forward (one forward, then its "
                               "backward, at a time)")
        core.zero_grad()
        core.backward(dhidden[:, :ctx.n].detach().to(torch.float32).contiguous().numpy())
        grads = [torch.from_numpy(np.array(core.grad(name), copy=True)) for name in ctx.encoder._names]
        return (None, None, None, None, *grads)


class Encoder(nn.Module):
    """The linformer encoder (embeddings and layers; the heads' tensors ride along) as a module.

    Encoder(config: dict, seed=0): a new model initialised from seed as linformer.init does;
    Encoder.from_file(path): the model of a model file. forward(ids, mask=None) -> hidden
    [B, n, d_model] float32; ids a [B, n] integer tensor (or array; or a list of lists, then n is
    the longest), mask its key-padding mask (1 for each token, then 0; the hidden states at padding positions
    mean nothing: leave them out of the loss). train() / eval() switch dropout.
    """

    def __init__(self, config=None, seed=0, *, _core_model=None):
        super().__init__()
        if _core_model is None:
            if config is None:
                raise _core.ConfigError("Encoder: give a config dict (or use Encoder.from_file)")
            _core_model = _core._TrainableModel(dict(config), seed)
        self._core = _core_model
        self._names = self._core.param_names()
        self._ptrs = []
        for name in self._names:
            *path, leaf = name.split(".")
            node = self
            for part in path:
                if not hasattr(node, part) or not isinstance(getattr(node, part), nn.Module):
                    node.add_module(part, _Node())
                node = getattr(node, part)
            t = torch.from_numpy(self._core.param(name))
            node.register_parameter(leaf, nn.Parameter(t, requires_grad=self._core.trainable(name)))
            self._ptrs.append(t.data_ptr())

    @classmethod
    def from_file(cls, path):
        """The encoder of a model file (.safetensors: linformer init, a training checkpoint, Model.save)."""
        return cls(_core_model=_core._TrainableModel.from_file(str(path)))

    @property
    def config(self):
        """The model config as a dict."""
        return self._core.config

    def _params(self):
        params = [self.get_parameter(name) for name in self._names]
        for p, ptr, name in zip(params, self._ptrs, self._names):
            if p.dtype != torch.float32 or p.device.type != "cpu" or p.data_ptr() != ptr:
                raise RuntimeError(f"linformer.torch.Encoder: parameter {name} was moved or converted; the "
                                   "parameters must stay float32 CPU tensors, in place")
        return params

    def forward(self, ids, mask=None):
        if isinstance(ids, torch.Tensor):
            ids = ids.detach().cpu().numpy()
        if isinstance(mask, torch.Tensor):
            mask = mask.detach().cpu().numpy()
        width = ids.shape[1] if isinstance(ids, np.ndarray) and ids.ndim == 2 else None
        self._core.train(self.training)
        return _EncoderFunction.apply(self, ids, mask, width, *self._params())

    def save(self, path):
        """Writes a model file (linformer.load and Encoder.from_file read it)."""
        self._params()
        self._core.save(str(path))

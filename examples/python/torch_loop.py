#!/usr/bin/python3
"""linformer.torch in a PyTorch training loop (docs/python.md, "Inside PyTorch"): the encoder's
forward and backward run linformer's C++ kernels, the loss, the head and the optimizer are plain
PyTorch. A toy task: is token 7 in the sequence? (ctest runs it: python_example_torch_loop)

    /usr/bin/python3 examples/python/torch_loop.py
"""

import torch
from torch import nn

import linformer.torch as lt

torch.manual_seed(0)
torch.set_num_threads(1)
config = {"vocab_size": 20, "max_len": 32, "d_model": 32, "n_heads": 2, "d_ff": 64, "n_layers": 2,
          "attention": "linformer", "k": [8]}
encoder = lt.Encoder(config, seed=0)       # parameters: ordinary torch tensors (over the C++ model's memory)
head = nn.Linear(32, 2)                    # any PyTorch module on top
opt = torch.optim.AdamW(list(encoder.parameters()) + list(head.parameters()), lr=3e-3)


def batch(size=32):
    lengths = torch.randint(4, 33, (size,))
    ids = torch.randint(8, 20, (size, 32))  # ids 8..19: no 7 yet
    labels = torch.randint(0, 2, (size,))
    for i in range(size):
        if labels[i]:
            ids[i, torch.randint(1, int(lengths[i]) - 1, ())] = 7
    ids[:, 0] = 1                           # <s>
    mask = (torch.arange(32)[None] < lengths[:, None]).to(torch.int32)  # key-padding mask
    return ids, mask, labels


encoder.train()
for step in range(1, 61):
    ids, mask, labels = batch()
    hidden = encoder(ids, mask)             # [B, n, d], our kernels, autograd-aware
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    loss = nn.functional.cross_entropy(head(pooled), labels)
    opt.zero_grad()
    loss.backward()                         # our backward for the encoder, torch's for the rest
    opt.step()
    if step % 20 == 0:
        print(f"step {step}: loss {loss.item():.4f}")

encoder.eval()
ids, mask, labels = batch(256)
with torch.no_grad():
    hidden = encoder(ids, mask)
    pooled = (hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
    accuracy = (head(pooled).argmax(1) == labels).float().mean().item()
print(f"accuracy on 256 new sequences: {accuracy:.3f}")

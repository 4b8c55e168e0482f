"""Linformer and Transformer encoders on the CPU, from Python (docs/python.md).

    import linformer
    m = linformer.load("runs/spam")                 # a run folder or a model file
    m.classify(["cheap pills, click here"])          # [{'label': 'spam', 'probs': {...}, ...}]
    hidden, logits = m.forward([[1, 57, 98, 2]])    # numpy float32 [B, n, d], [B, n, vocab]

The compiled part is linformer._core (C++ through pybind11); everything is re-exported here.
"""

from ._core import (
    BOS_ID,
    EOS_ID,
    MASK_ID,
    PAD_ID,
    UNK_ID,
    ConfigError,
    Error,
    InputError,
    IoError,
    Model,
    Tokenizer,
    __version__,
    bf16_supported,
    finetune,
    get_num_threads,
    get_precision,
    init,
    load,
    pretrain,
    set_num_threads,
    set_precision,
)

__all__ = [
    "BOS_ID",
    "EOS_ID",
    "MASK_ID",
    "PAD_ID",
    "UNK_ID",
    "ConfigError",
    "Error",
    "InputError",
    "IoError",
    "Model",
    "Tokenizer",
    "__version__",
    "bf16_supported",
    "finetune",
    "get_num_threads",
    "get_precision",
    "init",
    "load",
    "pretrain",
    "set_num_threads",
    "set_precision",
]

"""linformer_convert: models trained elsewhere into linformer model files (docs/convert.md).

One module per source: fairseq (linformer_roberta and RoBERTa checkpoints), hf (Hugging Face
RoBERTa / XLM-RoBERTa folders), lucidrains and tatp22 (their Linformer attention modules).
Each has `convert(path, opts) -> Converted`; cli.py is the command line (`linformer convert`).
"""
from .errors import ConvertError  # noqa: F401

__all__ = ["ConvertError"]

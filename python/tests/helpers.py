"""Helpers of the package's tests: generated data (the corpora and tasks of the C++ tests,
tests/pretrain_test_util.hpp and tests/finetune_test_util.hpp), tiny configs, a safetensors
reader, and running the `linformer` command (LINFORMER_BIN, set by ctest)."""

import json
import os
import random
import struct
import subprocess
from pathlib import Path

import numpy as np

# A model small enough to run in milliseconds (vocab 50: ids 0..49).
TINY_CONFIG = {
    "vocab_size": 50,
    "max_len": 16,
    "d_model": 32,
    "n_heads": 2,
    "d_ff": 64,
    "n_layers": 2,
    "attention": "linformer",
    "k": [8],
}

# The pretraining model: vocab 40 (the grammar corpus's tokenizer), max_len 32.
PRETRAIN_CONFIG = {
    "vocab_size": 40,
    "max_len": 32,
    "d_model": 32,
    "n_heads": 2,
    "d_ff": 64,
    "n_layers": 2,
    "attention": "linformer",
    "k": [8],
}

# The has7 task's model (the ListOps vocabulary of 20 ids, texts of 3..10 digits).
HAS7_CONFIG = {
    "vocab_size": 20,
    "max_len": 16,
    "d_model": 32,
    "n_heads": 2,
    "d_ff": 64,
    "n_layers": 1,
    "attention": "linformer",
    "k": [8],
}

_SUBJ = ["the cat", "a dog", "my friend", "the teacher", "our neighbour", "the old man"]
_VERB = ["sees", "likes", "finds", "follows", "calls", "helps"]
_OBJ = ["the bird", "a red ball", "the small house", "her brother", "the garden", "a green apple"]


def grammar_sentences(n, seed):
    rng = random.Random(seed)
    return [f"{rng.choice(_SUBJ)} {rng.choice(_VERB)} {rng.choice(_OBJ)} ." for _ in range(n)]


def grammar_corpus(n, seed):
    """Sentences 'subject verb object .', an empty line after every 5 (documents)."""
    lines = []
    for i, s in enumerate(grammar_sentences(n, seed)):
        lines.append(s)
        if i % 5 == 4:
            lines.append("")
    return "\n".join(lines) + "\n"


def has7_split(n, seed):
    """n lines 'yes|no<TAB>d d d': 'yes' when the digit 7 occurs."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        length = rng.randint(3, 10)
        digits = [str(9 if d == 7 else d) for d in (rng.randrange(9) for _ in range(length))]
        yes = rng.random() < 0.5
        if yes:
            digits[rng.randrange(length)] = "7"
        out.append(("yes" if yes else "no") + "\t" + " ".join(digits))
    return "\n".join(out) + "\n"


def write_has7_task(folder, n_train=96, n_valid=24, n_test=24):
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.json").write_text(json.dumps({
        "name": "has7", "labels": ["no", "yes"], "tokenizer": "listops", "source": "test", "licence": "none"}))
    (folder / "train.tsv").write_text(has7_split(n_train, 1))
    (folder / "valid.tsv").write_text(has7_split(n_valid, 2))
    (folder / "test.tsv").write_text(has7_split(n_test, 3))
    return folder


def write_cat_task(folder, n_train=96, n_valid=24, n_test=24):
    """A sentencepiece task on grammar sentences: 'cat' when the sentence speaks of the cat."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "task.json").write_text(json.dumps({
        "name": "cat", "labels": ["other", "cat"], "tokenizer": "sentencepiece", "source": "test",
        "licence": "none"}))
    for name, n, seed in (("train", n_train, 11), ("valid", n_valid, 12), ("test", n_test, 13)):
        lines = [("cat" if "cat" in s else "other") + "\t" + s for s in grammar_sentences(n, seed)]
        (folder / f"{name}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (F32 and I32 tensors)."""
    data = Path(path).read_bytes()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + header_len])
    base = 8 + header_len
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        dtype = {"F32": np.float32, "I32": np.int32}[t["dtype"]]
        begin, end = t["data_offsets"]
        out[name] = np.frombuffer(data[base + begin:base + end], dtype=dtype).reshape(t["shape"])
    return out


def linformer_bin():
    """The `linformer` command of this build (ctest sets LINFORMER_BIN)."""
    path = os.environ.get("LINFORMER_BIN")
    if path and Path(path).exists():
        return path
    guess = Path(__file__).resolve().parents[2] / "build" / "linformer"
    if guess.exists():
        return str(guess)
    import pytest
    pytest.skip("LINFORMER_BIN is not set (ctest sets it) and build/linformer does not exist")


def run_cli(*args):
    """Runs `linformer ARGS...`; returns its standard output (a failure fails the test)."""
    r = subprocess.run([linformer_bin(), *map(str, args)], capture_output=True, text=True)
    assert r.returncode == 0, f"linformer {' '.join(map(str, args))} failed:\n{r.stdout}\n{r.stderr}"
    return r.stdout

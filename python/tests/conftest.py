"""Shared fixtures: small models built once per test session (a model file from linformer.init, a
pretraining run with a tokenizer, fine-tuning runs), all in pytest's temporary folders."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import linformer  # noqa: E402  (the build's package: PYTHONPATH=BUILD/python, set by ctest)

import helpers  # noqa: E402

# One thread everywhere: the command line runs with --threads 1 in the comparisons, and results
# are bitwise the same only for the same thread count.
linformer.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_model_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    linformer.init(helpers.TINY_CONFIG, seed=7).save(str(path))
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory):
    """A 40-piece tokenizer and token files of the grammar corpus: {tok, train, valid, dir}."""
    d = tmp_path_factory.mktemp("corpus")
    (d / "train.txt").write_text(helpers.grammar_corpus(300, 1))
    (d / "valid.txt").write_text(helpers.grammar_corpus(40, 2))
    tok = linformer.Tokenizer.train([str(d / "train.txt")], 40, str(d / "tok.model"))
    tok.encode_corpus([str(d / "train.txt")], str(d / "train.tokens"))
    tok.encode_corpus(str(d / "valid.txt"), str(d / "valid.tokens"))
    return {"dir": d, "tok": str(d / "tok.model"), "train": str(d / "train.tokens"),
            "valid": str(d / "valid.tokens")}


def pretrain_options(corpus, out, **over):
    o = dict(config=helpers.PRETRAIN_CONFIG, train=corpus["train"], valid=corpus["valid"],
             tokenizer=corpus["tok"], out=str(out), steps=6, batch_size=4, seq_len=32, lr=2e-3, warmup=2,
             eval_every=3, eval_batches=1, save_every=100, log_every=1, seed=3)
    o.update(over)
    return o


@pytest.fixture(scope="session")
def pretrain_run(corpus, tmp_path_factory):
    """A pretraining run folder (6 steps), with its tokenizer.model."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    s = linformer.pretrain(pretrain_options(corpus, out))
    assert s["steps_done"] == 6 and not s["interrupted"]
    return out


@pytest.fixture(scope="session")
def cat_run(pretrain_run, tmp_path_factory):
    """A fine-tuning run from the pretrained model on the 'cat' sentencepiece task."""
    d = tmp_path_factory.mktemp("cat")
    task = helpers.write_cat_task(d / "task")
    # truncate: a few grammar sentences are longer than max_len 32 in this 40-piece vocabulary.
    s = linformer.finetune(model=str(pretrain_run), task=str(task), out=str(d / "run"), truncate=True, steps=8,
                           batch_size=16, lr=3e-3, warmup=2, eval_every=4, save_every=100, log_every=2, seed=5)
    assert s["steps_done"] == 8
    return {"run": d / "run", "task": task}


@pytest.fixture(scope="session")
def has7_run(tmp_path_factory):
    """A fine-tuning run from scratch (config dict) on the has7 task (the ListOps vocabulary)."""
    d = tmp_path_factory.mktemp("has7")
    task = helpers.write_has7_task(d / "task")
    s = linformer.finetune({"config": helpers.HAS7_CONFIG, "task": str(task), "out": str(d / "run")}, steps=8,
                           batch_size=16, lr=3e-3, warmup=2, eval_every=4, save_every=100, log_every=2, seed=11)
    assert s["steps_done"] == 8
    return {"run": d / "run", "task": task}

"""linformer.pretrain and linformer.finetune: the command's options as a dict or keywords, the
progress callback (one dict per log step; False stops cleanly; an exception stops and is raised
again), Ctrl-C stopping as in the command line, resume, the summary and metrics as dicts, and
option errors."""

import json
import os
import signal

import pytest

import linformer
from conftest import pretrain_options
from helpers import HAS7_CONFIG, write_has7_task


def same_losses(a, b):
    """Two metrics lists hold the same train losses and validation losses, step by step."""
    def key(lines):
        return [(m["step"], m.get("train_loss"), m.get("valid_loss")) for m in lines]
    assert key(a) == key(b)


def test_summary_and_metrics(pretrain_run):
    lines = [json.loads(x) for x in (pretrain_run / "metrics.jsonl").read_text().splitlines()]
    train = [x for x in lines if "train_loss" in x]
    assert [x["step"] for x in train] == [1, 2, 3, 4, 5, 6]
    assert (pretrain_run / "tokenizer.model").exists() and (pretrain_run / "latest").exists()


def test_callback_each_log_step_and_metrics(corpus, tmp_path):
    seen = []
    s = linformer.pretrain(pretrain_options(corpus, tmp_path / "run", log_every=2), callback=seen.append)
    assert [x["step"] for x in seen] == [2, 4, 6]
    assert all(isinstance(x["train_loss"], float) and "lr" in x and "grad_norm" in x for x in seen)
    assert "valid_loss" not in seen[0] and "valid_loss" in seen[2]  # step 6 evaluated (eval_every 3)
    assert s["steps_done"] == 6 and s["interrupted"] is False and s["interrupted_by"] is None
    assert s["out"] == str(tmp_path / "run") and s["checkpoint"].endswith("ckpt-00000006")
    assert s["final_valid_loss"] < s["initial_valid_loss"]
    on_disk = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert s["metrics"] == on_disk
    train = [x for x in on_disk if "train_loss" in x]
    for cb, line in zip(seen, train):
        assert cb["train_loss"] == line["train_loss"] and cb["step"] == line["step"]


def test_false_stops_cleanly_and_resume_continues(corpus, tmp_path, pretrain_run):
    out = tmp_path / "run"
    s = linformer.pretrain(pretrain_options(corpus, out), callback=lambda line: line["step"] < 2)
    assert s["interrupted"] and s["interrupted_by"] == "callback" and s["steps_done"] == 2
    assert (out / "ckpt-00000002" / "model.safetensors").exists()
    r = linformer.pretrain(resume=str(out))
    assert r["steps_done"] == 6 and not r["interrupted"]
    # The same losses as the uninterrupted run (the fixture, same options).
    ref = [json.loads(x) for x in (pretrain_run / "metrics.jsonl").read_text().splitlines()]
    same_losses(r["metrics"], ref)
    # A longer total on resume.
    r2 = linformer.pretrain({"resume": str(out), "steps": 8})
    assert r2["steps_done"] == 8


def test_callback_exception_stops_and_is_raised(corpus, tmp_path):
    def boom(line):
        if line["step"] == 3:
            raise RuntimeError("stop here")
    with pytest.raises(RuntimeError, match="stop here"):
        linformer.pretrain(pretrain_options(corpus, tmp_path / "run"), callback=boom)
    assert (tmp_path / "run" / "ckpt-00000003").exists()  # stopped cleanly: resumable
    assert linformer.pretrain(resume=str(tmp_path / "run"))["steps_done"] == 6


def test_ctrl_c_stops_cleanly(corpus, tmp_path):
    handler = signal.getsignal(signal.SIGINT)

    def ctrl_c(line):
        if line["step"] == 2:
            os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C sends
    s = linformer.pretrain(pretrain_options(corpus, tmp_path / "run"), callback=ctrl_c)
    # The loop ends the step it is in, saves a checkpoint and returns, as the command line does.
    assert s["interrupted"] and s["interrupted_by"] == "signal"
    assert 2 <= s["steps_done"] < 6
    assert (tmp_path / "run" / f"ckpt-{s['steps_done']:08d}").exists()
    assert signal.getsignal(signal.SIGINT) is handler  # Python's handler is back
    assert linformer.pretrain(resume=str(tmp_path / "run"))["steps_done"] == 6


def test_keyboard_interrupt_seen_by_python_stops_cleanly(corpus, tmp_path):
    """A Ctrl-C that Python's own handler catches (as one arriving while the run loads its data):
    interrupt_main() from another thread, while the loop computes; the next log step stops."""
    import _thread
    import threading
    import time

    def later():
        time.sleep(0.05)  # the callback has long returned: the main thread is in the C++ loop
        _thread.interrupt_main()
    started = []

    def cb(line):
        if not started:
            started.append(threading.Thread(target=later))
            started[0].start()
    s = linformer.pretrain(pretrain_options(corpus, tmp_path / "run", steps=100000, eval_every=100000), callback=cb)
    started[0].join()
    assert s["interrupted"] and s["interrupted_by"] == "signal" and s["steps_done"] < 100000
    assert (tmp_path / "run" / f"ckpt-{s['steps_done']:08d}" / "model.safetensors").exists()


def test_pretrain_option_errors(corpus, tmp_path, pretrain_run):
    o = pretrain_options(corpus, tmp_path / "run")
    with pytest.raises(linformer.ConfigError, match="unknown key 'stepz'"):
        linformer.pretrain(o, stepz=3)
    with pytest.raises(linformer.ConfigError, match="'steps' given twice"):
        linformer.pretrain(o, steps=3)
    with pytest.raises(linformer.ConfigError, match="required"):
        linformer.pretrain(out=str(tmp_path / "x"))
    with pytest.raises(linformer.ConfigError, match="lr cannot be used with resume"):
        linformer.pretrain(resume=str(pretrain_run), lr=0.1)
    with pytest.raises(linformer.ConfigError, match="batch_size"):
        linformer.pretrain({**o, "batch_size": 0})
    with pytest.raises(linformer.ConfigError, match="wrong type"):
        linformer.pretrain({**o, "steps": "many"})
    with pytest.raises(linformer.IoError, match="already holds a run"):
        linformer.pretrain({**o, "out": str(pretrain_run)})
    with pytest.raises(linformer.IoError, match="nothing.tokens"):
        linformer.pretrain({**o, "train": str(tmp_path / "nothing.tokens")})
    with pytest.raises(linformer.ConfigError, match="threads"):
        linformer.pretrain(o, threads=-2)
    with pytest.raises(linformer.ConfigError, match="precision"):
        linformer.pretrain(o, precision="fp8")
    assert not (tmp_path / "run").exists()  # nothing was written by any of them


def test_pretrain_bf16(corpus, tmp_path):
    o = pretrain_options(corpus, tmp_path / "run", steps=2)
    if not linformer.bf16_supported():
        with pytest.raises(linformer.ConfigError, match="AVX512_BF16"):
            linformer.pretrain(o, bf16=True)
        pytest.skip("this CPU has no AVX512_BF16: bf16 is refused (checked), not run")
    s = linformer.pretrain(o, bf16=True, threads=1)
    assert s["steps_done"] == 2
    assert linformer.get_precision() == "float32"


def test_finetune_from_pretrained_and_resume(cat_run):
    lines = [json.loads(x) for x in (cat_run["run"] / "metrics.jsonl").read_text().splitlines()]
    assert any("valid_accuracy" in x for x in lines)
    assert (cat_run["run"] / "tokenizer.model").exists()  # taken from the pretrained run folder


def test_finetune_callback_stop_and_resume(tmp_path):
    task = write_has7_task(tmp_path / "task")
    seen = []

    def cb(line):
        seen.append(line)
        return line["step"] < 4
    o = {"config": HAS7_CONFIG, "task": str(task), "out": str(tmp_path / "run"), "steps": 8, "batch_size": 16,
         "lr": 3e-3, "eval_every": 2, "log_every": 1, "save_every": 100, "seed": 2}
    s = linformer.finetune(o, callback=cb)
    assert s["interrupted"] and s["interrupted_by"] == "callback" and s["steps_done"] == 4
    assert [x["step"] for x in seen] == [1, 2, 3, 4]
    assert "valid_accuracy" in seen[1] and "valid_accuracy" not in seen[0]
    assert s["final_valid_accuracy"] == seen[3]["valid_accuracy"]
    r = linformer.finetune(resume=str(tmp_path / "run"))
    assert r["steps_done"] == 8 and not r["interrupted"]
    m = linformer.load(str(tmp_path / "run"))
    assert m.labels == ["no", "yes"] and m.config["num_labels"] == 2


def test_finetune_option_errors(tmp_path, pretrain_run):
    task = write_has7_task(tmp_path / "task")
    with pytest.raises(linformer.ConfigError, match="model .* or config"):
        linformer.finetune(task=str(task), out=str(tmp_path / "a"))
    with pytest.raises(linformer.ConfigError, match="keeps its own config"):
        linformer.finetune(model=str(pretrain_run), config=HAS7_CONFIG, task=str(task), out=str(tmp_path / "b"))
    with pytest.raises(linformer.ConfigError, match="pooling"):
        linformer.finetune(config=HAS7_CONFIG, task=str(task), out=str(tmp_path / "c"), pooling="max")
    with pytest.raises(linformer.IoError, match="no_task"):
        linformer.finetune(config=HAS7_CONFIG, task=str(tmp_path / "no_task"), out=str(tmp_path / "d"))
    with pytest.raises(linformer.ConfigError, match="n_heads"):
        linformer.finetune(config={**HAS7_CONFIG, "n_heads": 5}, task=str(task), out=str(tmp_path / "e"))

"""Long calls release the GIL: two Python threads calling forward on one model run at the same
time (their calls overlap in time; with the GIL held they could only take turns), and the main
thread keeps running Python while a call computes. Results do not depend on the thread."""

import threading
import time

import numpy as np

import linformer

# Big enough that one forward takes a good fraction of a second on one thread.
CONFIG = {"vocab_size": 200, "max_len": 512, "d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 4,
          "attention": "linformer", "k": [64]}


def timed_forward(model, ids, out, i, barrier):
    barrier.wait()
    t0 = time.perf_counter()
    h, _ = model.forward(ids, logits=False)
    out[i] = (t0, time.perf_counter(), h)


def test_two_threads_run_forward_at_once():
    m = linformer.init(CONFIG, seed=1)
    rng = np.random.default_rng(0)
    ids = rng.integers(5, 200, size=(4, 512), dtype=np.int32)
    ref, _ = m.forward(ids, logits=False)
    t0 = time.perf_counter()
    m.forward(ids, logits=False)
    one = time.perf_counter() - t0
    out = [None, None]
    barrier = threading.Barrier(2)
    threads = [threading.Thread(target=timed_forward, args=(m, ids, out, i, barrier)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    (a0, a1, ha), (b0, b1, hb) = out
    overlap = min(a1, b1) - max(a0, b0)
    shorter = min(a1 - a0, b1 - b0)
    print(f"one call {one * 1e3:.0f} ms; two threads: {(a1 - a0) * 1e3:.0f} ms and {(b1 - b0) * 1e3:.0f} ms, "
          f"overlapping {overlap * 1e3:.0f} ms")
    # Held, the GIL would let the calls overlap by a switch interval (5 ms) at most.
    assert overlap > 0.5 * shorter
    assert np.array_equal(ha, ref) and np.array_equal(hb, ref)


def test_python_runs_while_a_call_computes():
    m = linformer.init(CONFIG, seed=2)
    ids = np.full((8, 512), 7, dtype=np.int32)
    m.forward(ids, logits=False)  # workers and buffers made
    span = {}

    def work():
        span["t0"] = time.perf_counter()
        m.forward(ids, logits=False)
        m.forward(ids, logits=False)
        span["t1"] = time.perf_counter()
    t = threading.Thread(target=work)
    ticks = []
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.001)
    t.join()
    inside = [x for x in ticks if span["t0"] < x < span["t1"]]
    print(f"{len(inside)} ticks of the main thread during {(span['t1'] - span['t0']) * 1e3:.0f} ms of forward")
    # Held, the GIL would leave the main thread a switch interval (5 ms) between the two calls at most.
    assert (span["t1"] - span["t0"]) > 0.05 and len(inside) >= 20


def test_threads_setting_applies_in_new_threads():
    linformer.set_num_threads(1)
    seen = []
    t = threading.Thread(target=lambda: seen.append(linformer.get_num_threads()))
    t.start()
    t.join()
    assert seen == [1]


def test_precisions_from_two_threads_do_not_mix():
    """The precision is one process-wide setting: calls of different precisions from two threads
    take turns (the gate in compute.cpp), each getting the results of its own precision."""
    import pytest
    if not linformer.bf16_supported():
        pytest.skip("this CPU has no AVX512_BF16")
    m = linformer.init({**CONFIG, "n_layers": 1}, seed=3)
    ids = np.full((2, 256), 9, dtype=np.int32)
    ref = {p: m.forward(ids, logits=False, precision=p)[0] for p in ("float32", "bf16")}
    assert not np.array_equal(ref["float32"], ref["bf16"])
    bad = []

    def loop(p):
        for _ in range(6):
            h, _ = m.forward(ids, logits=False, precision=p)
            if not np.array_equal(h, ref[p]):
                bad.append(p)
    threads = [threading.Thread(target=loop, args=(p,)) for p in ("float32", "bf16")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert bad == []

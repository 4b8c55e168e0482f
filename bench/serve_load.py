#!/usr/bin/python3
"""Load benchmark of `linformer serve` (docs/serving.md, "Benchmark"; figures in docs/BENCHMARKS.md).

For each attention kind (Linformer and full, the same sizes otherwise) and each document length n
it makes a model with max_len n (`linformer init`) and a tokenizer, starts `linformer serve` on the
loopback, and drives POST /embed from C concurrent keep-alive clients (Python threads on
http.client) for --seconds, every request one document cut to exactly n tokens ("truncate": true).
It prints, per row: requests/s, tokens/s, p50/p99 latency, the mean batch the batcher formed, and
the server's overhead against the inference API it calls: 1 - (seconds the compute pool spent
in InferenceModel calls) / (wall time), read from /metrics (linformer_compute_seconds_total). At
saturation (high C) that is what the HTTP, JSON, queueing and tokenizer cost on top of the same
batched calls of the inference API.

The client runs in the same machine and Python's threads cost CPU too: on a small machine, give
the server --threads below the core count and read the figures as the server's, not the
machine's peak. Defaults are a tiny model for a quick check; the documented run:
  bench/serve_load.py --bin build/linformer --n 128,2048 --concurrency 1,8,64 --seconds 20 \\
      --d-model 256 --layers 4 --heads 4 --d-ff 1024 --k 128 --threads 2 --json serve_load.json
"""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "serve"))
import serve_util as su  # noqa: E402


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    i = min(len(xs) - 1, max(0, int(round(q / 100.0 * (len(xs) - 1)))))
    return xs[i]


def metric(text, name):
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{}"):
            return float(line.split()[-1])
    m = re.search(r"^" + re.escape(name) + r"\{[^}]*\} (\S+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def drive(port, concurrency, seconds, doc):
    lat, fails, lock = [], [], threading.Lock()
    stop_at = time.time() + seconds
    body = json.dumps({"inputs": doc, "truncate": True}).encode()

    def client():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        mine = []
        while time.time() < stop_at:
            t0 = time.perf_counter()
            try:
                conn.request("POST", "/embed", body=body, headers={"Content-Type": "application/json"})
                r = conn.getresponse()
                payload = r.read()
                ok = r.status == 200
                why = f"{r.status} {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as e:
                ok = False
                why = repr(e)
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            if ok:
                mine.append(time.perf_counter() - t0)
            else:
                with lock:
                    fails.append(why)
        conn.close()
        with lock:
            lat.extend(mine)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    t0 = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat, fails, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", default="build/linformer")
    ap.add_argument("--n", default="128,256", help="document lengths in tokens (each a model with that max_len)")
    ap.add_argument("--concurrency", default="1,8,64")
    ap.add_argument("--kinds", default="linformer,full")
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--d-model", type=int, default=32)
    ap.add_argument("--heads", type=int, default=2)
    ap.add_argument("--d-ff", type=int, default=64)
    ap.add_argument("--layers", type=int, default=1)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1, help="the server's compute threads")
    ap.add_argument("--max-batch-tokens", type=int, default=16384)
    ap.add_argument("--json", help="also write the rows here")
    a = ap.parse_args()
    su.BIN = a.bin
    work = tempfile.mkdtemp(prefix="linformer_serve_bench_")
    rows = []
    try:
        su.write(f"{work}/corpus.txt", su.grammar_corpus(400, 1))
        su.cli("tokenizer", "train", "--input", f"{work}/corpus.txt", "--vocab-size", "40", "--out", f"{work}/tok.model")
        # Documents a little longer than n tokens (this tokenizer gives about one token per 1.2
        # characters), cut by the server to exactly max_len: longer ones would time the tokenizer.
        corpus = " ".join(su.grammar_corpus(20000, 7).split())
        print("| attention | n | clients | requests/s | tokens/s | p50 ms | p99 ms | mean batch | overhead | failed |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for kind in a.kinds.split(","):
            for n in map(int, a.n.split(",")):
                cfg = {"vocab_size": 40, "max_len": n, "d_model": a.d_model, "n_heads": a.heads, "d_ff": a.d_ff,
                       "n_layers": a.layers, "attention": kind}
                if kind == "linformer":
                    cfg["k"] = [min(a.k, n)]
                su.write(f"{work}/{kind}{n}.json", json.dumps(cfg))
                su.cli("init", "--config", f"{work}/{kind}{n}.json", "--out", f"{work}/{kind}{n}.safetensors")
                doc = corpus[:2 * n]
                for c in map(int, a.concurrency.split(",")):
                    s = su.Server(f"{work}/{kind}{n}.safetensors", "--tokenizer", f"{work}/tok.model",
                                  "--max-batch-tokens", str(max(a.max_batch_tokens, n)),
                                  "--http-threads", str(c + 8), threads=a.threads)
                    try:
                        s.wait_ready()
                        drive(s.port, c, min(1.0, a.seconds), doc)  # warm-up: buffers at their size
                        m0 = su.request(s.port, "GET", "/metrics")[1]
                        lat, fails, wall = drive(s.port, c, a.seconds, doc)
                        m1 = su.request(s.port, "GET", "/metrics")[1]
                    finally:
                        code = s.stop()
                    busy = metric(m1, "linformer_compute_seconds_total") - metric(m0, "linformer_compute_seconds_total")
                    batches = metric(m1, "linformer_batches_total") - metric(m0, "linformer_batches_total")
                    reqs = metric(m1, "linformer_batch_requests_sum") - metric(m0, "linformer_batch_requests_sum")
                    row = {"attention": kind, "n": n, "clients": c, "requests_per_s": len(lat) / wall,
                           "tokens_per_s": len(lat) * n / wall, "p50_ms": 1e3 * percentile(lat, 50),
                           "p99_ms": 1e3 * percentile(lat, 99), "mean_batch": reqs / batches if batches else 0,
                           "overhead": 1 - busy / wall, "failed": len(fails), "exit": code}
                    rows.append(row)
                    print(f"| {kind} | {n} | {c} | {row['requests_per_s']:.1f} | {row['tokens_per_s']:.0f} | "
                          f"{row['p50_ms']:.2f} | {row['p99_ms']:.2f} | {row['mean_batch']:.1f} | "
                          f"{100 * row['overhead']:.1f}% | {len(fails)} |", flush=True)
                    for why in sorted(set(fails))[:3]:
                        print(f"  failed: {why}", file=sys.stderr)
        if a.json:
            with open(a.json, "w") as f:
                json.dump({"args": vars(a), "rows": rows}, f, indent=1)
            print(f"serve_load: rows in {a.json}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    bad = [r for r in rows if r["failed"] or r["exit"]]
    if bad:
        print(f"serve_load: {len(bad)} rows with failed requests or a bad exit", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

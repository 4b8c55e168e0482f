"""Helpers of the `linformer serve` tests (test_serve_http.py, test_serve_load.py): tiny models
made with the CLI, a server started on a free port of the loopback, and a JSON HTTP client on
http.client. Only the standard library (and numpy for the golden comparisons)."""
import http.client
import json
import os
import re
import signal
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("LINFORMER_BIN", "build/linformer")

GRAMMAR_SUBJ = ["the cat", "a dog", "my friend", "the teacher", "our neighbour", "the old man"]
GRAMMAR_VERB = ["sees", "likes", "finds", "follows", "calls", "helps"]
GRAMMAR_OBJ = ["the bird", "a red ball", "the small house", "her brother", "the garden", "a green apple"]


def cli(*args, check=True, timeout=300):
    """Runs `linformer ARGS` and returns its output (stdout + stderr)."""
    p = subprocess.run([BIN, *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError(f"linformer {' '.join(args)} exited {p.returncode}:\n{p.stdout}")
    return p.stdout


def grammar_corpus(lines, seed):
    import random
    rng = random.Random(seed)
    out = []
    for i in range(lines):
        out.append(f"{rng.choice(GRAMMAR_SUBJ)} {rng.choice(GRAMMAR_VERB)} {rng.choice(GRAMMAR_OBJ)} .")
        if i % 5 == 4:
            out.append("")
    return "\n".join(out) + "\n"


def has7_split(n, seed):
    import random
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        digits = [str(rng.choice([0, 1, 2, 3, 4, 5, 6, 8, 9])) for _ in range(rng.randint(3, 10))]
        yes = rng.random() < 0.5
        if yes:
            digits[rng.randrange(len(digits))] = "7"
        lines.append(("yes" if yes else "no") + "\t" + " ".join(digits))
    return "\n".join(lines) + "\n"


def write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def make_models(root, attention="linformer"):
    """root/mlm: a pretraining run with a SentencePiece tokenizer (max_len 32, 2 layers);
    root/cls: a fine-tuned classifier (the ListOps vocabulary, labels no/yes). Both tiny (seconds)."""
    write(f"{root}/train.txt", grammar_corpus(400, 1))
    write(f"{root}/valid.txt", grammar_corpus(60, 2))
    cli("tokenizer", "train", "--input", f"{root}/train.txt", "--vocab-size", "40", "--out", f"{root}/tok.model")
    for s in ("train", "valid"):
        cli("tokenizer", "encode", "--model", f"{root}/tok.model", "--input", f"{root}/{s}.txt", "--out",
            f"{root}/{s}.tokens")
    k = ', "k": [8], "sharing": "headwise", "proj_order": "input_first"' if attention == "linformer" else ""
    write(f"{root}/mlm.json", '{"vocab_size": 40, "max_len": 32, "d_model": 32, "n_heads": 2, "d_ff": 64, '
          f'"n_layers": 2, "attention": "{attention}"{k}}}\n')
    cli("pretrain", "--config", f"{root}/mlm.json", "--train", f"{root}/train.tokens", "--valid",
        f"{root}/valid.tokens", "--tokenizer", f"{root}/tok.model", "--out", f"{root}/mlm", "--steps", "30",
        "--lr", "5e-3", "--warmup", "4", "--eval-every", "30", "--save-every", "30", "--threads", "1",
        "--batch-size", "4", "--seq-len", "32", "--eval-batches", "1", "--log-every", "10")
    os.makedirs(f"{root}/task", exist_ok=True)
    write(f"{root}/task/task.json", '{"name": "has7", "labels": ["no", "yes"], "tokenizer": "listops", '
          '"source": "test", "licence": "none"}\n')
    for s, n, seed in (("train", 200, 1), ("valid", 50, 2), ("test", 50, 3)):
        write(f"{root}/task/{s}.tsv", has7_split(n, seed))
    k = ', "k": [8]' if attention == "linformer" else ""
    write(f"{root}/cls.json", '{"vocab_size": 20, "max_len": 16, "d_model": 32, "n_heads": 2, "d_ff": 64, '
          f'"n_layers": 1, "attention": "{attention}"{k}}}\n')
    cli("finetune", "--model", "none", "--config", f"{root}/cls.json", "--task", f"{root}/task", "--out",
        f"{root}/cls", "--steps", "60", "--lr", "3e-3", "--warmup", "10", "--pooling", "mean", "--eval-every", "60",
        "--save-every", "60", "--seed", "11", "--threads", "1", "--batch-size", "16", "--log-every", "30")


class Server:
    """`linformer serve --port 0 ...` in the background; .port once it printed it, .wait_ready()
    once /health answers 200. stop() sends SIGTERM and returns the exit status."""

    def __init__(self, model, *args, port=0, threads=1):
        self.args = [BIN, "serve", "--model", model, "--port", str(port), "--threads", str(threads), *args]
        self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines = []
        self.port = None
        got_port = threading.Event()

        def reader():
            for line in self.proc.stdout:
                self.lines.append(line)
                m = re.search(r"listening on http://[^:]+:(\d+)", line)
                if m:
                    self.port = int(m.group(1))
                    got_port.set()
            got_port.set()

        self.reader = threading.Thread(target=reader, daemon=True)
        self.reader.start()
        if not got_port.wait(30) or self.port is None:
            self.proc.kill()
            raise AssertionError("the server printed no port:\n" + self.output())

    def output(self):
        return "".join(self.lines)

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        statuses = []
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited {self.proc.returncode}:\n{self.output()}")
            try:
                st, _ = request(self.port, "GET", "/health")
                statuses.append(st)
                if st == 200:
                    return statuses
            except OSError:
                pass
            time.sleep(0.02)
        raise AssertionError("the server did not become ready:\n" + self.output())

    def rss_kib(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def terminate(self):
        """SIGTERM, once: a second one would end the server without draining."""
        if self.proc.poll() is None and not getattr(self, "terminated", False):
            self.terminated = True
            self.proc.send_signal(signal.SIGTERM)

    def wait(self, timeout=60):
        """The exit status, once the process ended and all its output was read."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise AssertionError("the server did not stop within %ds:\n%s" % (timeout, self.output()))
        self.reader.join(10)
        return code

    def stop(self, timeout=60):
        self.terminate()
        return self.wait(timeout)


def request(port, method, path, body=None, headers=None, raw=None, timeout=30, conn=None):
    """One request; returns (status, parsed JSON or text). `body` is sent as JSON, `raw` as bytes."""
    own = conn is None
    if own:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    h = dict(headers or {})
    data = raw
    if body is not None:
        data = json.dumps(body).encode()
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=h)
        r = conn.getresponse()
        payload = r.read()
        ctype = r.getheader("Content-Type", "")
    finally:
        if own:
            conn.close()
    if ctype.startswith("application/json"):
        return r.status, json.loads(payload)
    return r.status, payload.decode("utf-8", "replace")


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (F32, I32)."""
    import numpy as np
    with open(path, "rb") as f:
        data = f.read()
    n = int.from_bytes(data[:8], "little")
    header = json.loads(data[8:8 + n])
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        dtype = {"F32": np.float32, "I32": np.int32}[t["dtype"]]
        out[name] = np.frombuffer(data[8 + n + b:8 + n + e], dtype=dtype).reshape(t["shape"])
    return out


def tempdir(prefix):
    return tempfile.mkdtemp(prefix=prefix)

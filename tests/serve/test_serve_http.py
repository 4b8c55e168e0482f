"""`linformer serve` over real HTTP (ctest serve_http): every route, golden comparisons against
`linformer forward` / `predict` / `fill-mask`, batch == single, and every error status from real
malformed requests. Loopback only; a few tiny models made with the CLI first (seconds)."""
import json
import math
import os
import shutil
import socket
import sys
import threading
import time
import unittest

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

ROOT = None
MLM = CLS = KEY = None
# Short enough for max_len 32 with a 40-piece tokenizer, of different lengths (padding in a batch).
TEXTS = ["the cat sees the bird .", "a dog likes a red ball .", "the old man", "our neighbour calls the teacher",
         "the garden"]


def setUpModule():
    global ROOT, MLM, CLS, KEY
    ROOT = su.tempdir("linformer_test_serve_http_")
    su.make_models(ROOT)
    su.write(f"{ROOT}/key.txt", "s3cret-key\n")
    MLM = su.Server(f"{ROOT}/mlm", "--max-batch-tokens", "256", "--timeout", "2")
    CLS = su.Server(f"{ROOT}/cls")
    KEY = su.Server(f"{ROOT}/cls", "--api-key-file", f"{ROOT}/key.txt")
    for s in (MLM, CLS, KEY):
        s.wait_ready()


def tearDownModule():
    codes = [s.stop() for s in (MLM, CLS, KEY) if s]
    shutil.rmtree(ROOT, ignore_errors=True)
    assert codes == [0, 0, 0], codes


def post(server, path, body, **kw):
    return su.request(server.port, "POST", path, body=body, **kw)


class Routes(unittest.TestCase):
    def test_health_info_metrics_page(self):
        st, j = su.request(MLM.port, "GET", "/health")
        self.assertEqual((st, j), (200, {"status": "ok"}))
        st, info = su.request(MLM.port, "GET", "/info")
        self.assertEqual(st, 200)
        self.assertEqual(info["max_len"], 32)
        self.assertEqual(info["attention"], "linformer")
        self.assertEqual(info["config"]["n_layers"], 2)
        self.assertEqual(info["limits"]["max_batch_tokens"], 256)
        self.assertEqual(info["limits"]["max_client_batch_size"], 32)
        self.assertEqual(info["tokenizer"], "sentencepiece")
        self.assertRegex(info["version"], r"^\d+\.\d+\.\d+$")
        st, cinfo = su.request(CLS.port, "GET", "/info")
        self.assertEqual(cinfo["labels"], ["no", "yes"])
        self.assertEqual(cinfo["task"], "has7")
        post(MLM, "/embed", {"inputs": "the cat"})
        st, text = su.request(MLM.port, "GET", "/metrics")
        self.assertEqual(st, 200)
        for name in ('linformer_requests_total{route="/embed",status="200"}', "linformer_queue_depth",
                     "linformer_batch_tokens_bucket", "linformer_batch_requests_count", "linformer_tokens_total",
                     'linformer_request_duration_seconds_bucket{stage="compute"', 'stage="queue"', 'stage="total"'):
            self.assertIn(name, text)
        st, page = su.request(MLM.port, "GET", "/")
        self.assertEqual(st, 200)
        self.assertIn("<html", page.lower())

    def test_tokenize(self):
        st, j = post(MLM, "/tokenize", {"inputs": ["the cat", "a dog"]})
        self.assertEqual(st, 200)
        self.assertEqual(len(j), 2)
        self.assertEqual(j[0][0], {"id": 1, "text": "<s>", "special": True})
        self.assertEqual(j[0][-1]["id"], 2)
        self.assertTrue(all(not t["special"] for t in j[0][1:-1]))
        self.assertEqual("".join(t["text"] for t in j[0][1:-1]).replace("\u2581", " ").strip(), "the cat")
        st, j2 = post(MLM, "/tokenize", {"inputs": "the cat", "add_special_tokens": False})
        self.assertEqual([t["id"] for t in j2[0]], [t["id"] for t in j[0][1:-1]])

    def test_embed_matches_forward(self):
        """/embed (mean and first pooling, normalised or not) against `linformer forward`'s hidden states."""
        st, toks = post(MLM, "/tokenize", {"inputs": TEXTS})
        self.assertEqual(st, 200)
        ids = [[t["id"] for t in seq] for seq in toks]
        su.write(f"{ROOT}/ids.txt", "".join(" ".join(map(str, s)) + "\n" for s in ids))
        _, info = su.request(MLM.port, "GET", "/info")
        su.cli("forward", "--model", info["model_file"], "--ids", f"{ROOT}/ids.txt", "--out", f"{ROOT}/fwd.safetensors",
               "--threads", "1")
        t = su.read_safetensors(f"{ROOT}/fwd.safetensors")
        hidden, mask = t["hidden"], t["mask"]
        for pooling in ("mean", "first"):
            for normalize in (False, True):
                st, e = post(MLM, "/embed", {"inputs": TEXTS, "pooling": pooling, "normalize": normalize})
                self.assertEqual(st, 200, e)
                e = np.array(e)
                self.assertEqual(e.shape, (len(TEXTS), 32))
                for i in range(len(TEXTS)):
                    n = int(mask[i].sum())
                    want = hidden[i, :n].mean(0) if pooling == "mean" else hidden[i, 0]
                    if normalize:
                        want = want / np.linalg.norm(want)
                    np.testing.assert_allclose(e[i], want, atol=1e-5, rtol=1e-5,
                                               err_msg=f"{pooling} normalize={normalize} input {i}")

    def test_openai_embeddings(self):
        st, j = post(MLM, "/v1/embeddings", {"input": ["the cat", "a dog likes"], "model": "tiny"})
        self.assertEqual(st, 200, j)
        self.assertEqual(j["object"], "list")
        self.assertEqual(j["model"], "tiny")
        self.assertEqual([d["index"] for d in j["data"]], [0, 1])
        _, e = post(MLM, "/embed", {"inputs": ["the cat", "a dog likes"], "normalize": True})
        np.testing.assert_allclose(np.array([d["embedding"] for d in j["data"]]), np.array(e), atol=1e-6)
        self.assertAlmostEqual(float(np.linalg.norm(j["data"][0]["embedding"])), 1.0, places=5)
        _, toks = post(MLM, "/tokenize", {"inputs": ["the cat", "a dog likes"]})
        n = sum(len(t) for t in toks)
        self.assertEqual(j["usage"], {"prompt_tokens": n, "total_tokens": n})

    def test_batch_equals_single(self):
        """One request of many texts, and many requests at once (gathered by the batcher), give what
        each text alone gives, to 1e-6."""
        texts = TEXTS + ["the cat", "a dog likes", "my friend finds the small house"]
        single = [np.array(post(MLM, "/embed", {"inputs": t})[1][0]) for t in texts]
        _, batch = post(MLM, "/embed", {"inputs": texts})
        for i, t in enumerate(texts):
            np.testing.assert_allclose(np.array(batch[i]), single[i], atol=1e-6, err_msg=t)
        results = [None] * len(texts)

        def one(i):
            results[i] = post(MLM, "/embed", {"inputs": texts[i]})

        for _ in range(3):
            threads = [threading.Thread(target=one, args=(i,)) for i in range(len(texts))]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            for i, t in enumerate(texts):
                self.assertEqual(results[i][0], 200)
                np.testing.assert_allclose(np.array(results[i][1][0]), single[i], atol=1e-6, err_msg=t)
        # Predictions too: a list against one text at a time.
        digits = ["1 2 3", "7 7", "4 5 6 8 9 1 2 3 4 5", "9 7 1"]
        one_by_one = [post(CLS, "/predict", {"inputs": d})[1] for d in digits]
        _, together = post(CLS, "/predict", {"inputs": digits})
        for a, b in zip(one_by_one, together):
            self.assertEqual(a["label"], b["label"])
            for k in a["probs"]:
                self.assertAlmostEqual(a["probs"][k], b["probs"][k], delta=1e-6)

    def test_predict_matches_cli(self):
        digits = ["1 2 3", "7 7", "4 5 6 8 9 1 2 3 4 5", "9 7 1", "0 0 0 0", "8"]
        su.write(f"{ROOT}/in.txt", "".join(d + "\n" for d in digits))
        out = su.cli("predict", "--model", f"{ROOT}/cls", "--input", f"{ROOT}/in.txt", "--threads", "1")
        want = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        st, got = post(CLS, "/predict", {"inputs": digits})
        self.assertEqual(st, 200, got)
        self.assertEqual(len(got), len(want))
        for g, w in zip(got, want):
            self.assertEqual(g["label"], w["label"])
            self.assertEqual(set(g["probs"]), {"no", "yes"})
            for k in w["probs"]:
                self.assertAlmostEqual(g["probs"][k], w["probs"][k], delta=1e-6)
            self.assertAlmostEqual(sum(g["probs"].values()), 1.0, places=6)
        st, one = post(CLS, "/predict", {"inputs": "7 7"})
        self.assertEqual(one["label"], got[1]["label"])  # a string in: one object out

    def test_fill_mask_matches_cli(self):
        text = "the cat <mask> the bird ."
        out = su.cli("fill-mask", "--model", f"{ROOT}/mlm", "--text", text, "--top-k", "4", "--threads", "1")
        want = [(float(l.split("%")[0]), l.split("%", 1)[1].strip()) for l in out.splitlines() if "%" in l]
        st, j = post(MLM, "/fill-mask", {"inputs": text, "top_k": 4})
        self.assertEqual(st, 200, j)
        self.assertEqual(len(j["masks"]), 1)
        cands = j["masks"][0]["candidates"]
        self.assertEqual(len(cands), 4)
        self.assertEqual([c["token"] for c in cands], [w[1] for w in want])
        for c, w in zip(cands, want):
            self.assertAlmostEqual(100 * c["score"], w[0], delta=0.006)
        self.assertEqual(j["ids"][j["masks"][0]["position"]], 4)  # the <mask> id
        st, two = post(MLM, "/fill-mask", {"inputs": "<mask> cat sees <mask> bird ."})
        self.assertEqual((st, len(two["masks"])), (200, 2))
        self.assertEqual(len(two["masks"][0]["candidates"]), 5)  # top_k's default

    def test_attention(self):
        st, j = post(MLM, "/attention", {"inputs": "the cat sees the bird .", "layer": 1, "head": 1})
        self.assertEqual(st, 200, j)
        self.assertEqual((j["layer"], j["head"], j["heads"], j["attention"]), (1, 1, 2, "linformer"))
        self.assertEqual(len(j["tokens"]), j["n"])
        self.assertEqual(j["cols"], 8)  # Linformer: k projected keys
        p = np.array(j["probs"])
        self.assertEqual(p.shape, (j["n"], 8))
        np.testing.assert_allclose(p.sum(1), 1.0, atol=1e-5)
        st, e = post(MLM, "/attention", {"inputs": "the cat", "layer": 2})
        self.assertEqual((st, e["error_type"]), (422, "validation"))
        self.assertIn("layer", e["error"])


class Errors(unittest.TestCase):
    def expect(self, server, status, etype, method, path, body=None, raw=None, headers=None, words=()):
        st, j = su.request(server.port, method, path, body=body, raw=raw, headers=headers)
        self.assertEqual(st, status, j)
        self.assertIsInstance(j, dict, j)
        self.assertEqual(j.get("error_type"), etype, j)
        self.assertTrue(j.get("error"), j)
        for w in words:
            self.assertIn(w, j["error"])
        return j

    def test_400_malformed(self):
        self.expect(MLM, 400, "malformed", "POST", "/embed", raw=b'{"inputs": "the cat', words=["JSON"])
        self.expect(MLM, 400, "malformed", "POST", "/embed", raw=bytes(range(256)) * 4)
        self.expect(MLM, 400, "malformed", "POST", "/embed", raw=b"")
        self.expect(MLM, 400, "malformed", "POST", "/embed", raw=b'["the cat"]', words=["object"])
        self.expect(MLM, 400, "malformed", "POST", "/embed", body={"inputs": 5}, words=["inputs"])
        self.expect(MLM, 400, "malformed", "POST", "/embed", body={"inputs": ["a", 3]}, words=["inputs", "[1]"])
        self.expect(MLM, 400, "malformed", "POST", "/embed", body={}, words=["inputs", "missing"])
        self.expect(MLM, 400, "malformed", "POST", "/embed", body={"inputs": "a", "normalize": "yes"},
                    words=["normalize"])
        self.expect(MLM, 400, "malformed", "POST", "/fill-mask", body={"inputs": "a <mask>", "top_k": "3"},
                    words=["top_k"])
        self.expect(MLM, 400, "malformed", "POST", "/fill-mask", body={"inputs": ["a <mask>"]}, words=["inputs"])

    def test_401(self):
        body = {"inputs": "7 1"}
        self.expect(KEY, 401, "unauthorized", "POST", "/predict", body=body, words=["Authorization"])
        self.expect(KEY, 401, "unauthorized", "POST", "/predict", body=body,
                    headers={"Authorization": "Bearer s3cret-kez"}, words=["wrong"])
        self.expect(KEY, 401, "unauthorized", "POST", "/predict", body=body, headers={"Authorization": "s3cret-key"})
        self.expect(KEY, 401, "unauthorized", "GET", "/info")
        self.expect(KEY, 401, "unauthorized", "GET", "/metrics")
        st, j = su.request(KEY.port, "POST", "/predict", body=body, headers={"Authorization": "Bearer s3cret-key"})
        self.assertEqual(st, 200, j)
        self.assertEqual(su.request(KEY.port, "GET", "/health")[0], 200)  # open: for load balancers
        self.assertEqual(su.request(KEY.port, "GET", "/")[0], 200)        # the page asks for the key

    def test_404_405(self):
        self.expect(MLM, 404, "not_found", "GET", "/nope", words=["/nope"])
        self.expect(MLM, 404, "not_found", "POST", "/v2/embed", body={"inputs": "a"})
        j = self.expect(MLM, 405, "method_not_allowed", "GET", "/embed", words=["POST"])
        self.expect(MLM, 405, "method_not_allowed", "POST", "/health", body={}, words=["GET"])
        self.expect(MLM, 405, "method_not_allowed", "DELETE", "/predict")

    def test_413(self):
        self.expect(MLM, 413, "payload_too_large", "POST", "/embed",
                    raw=b'{"inputs": "' + b"a " * (5 * 1024 * 1024) + b'"}', words=["bytes"])
        self.expect(MLM, 413, "payload_too_large", "POST", "/embed", body={"inputs": ["the cat"] * 33},
                    words=["33", "32"])
        # 32 texts of ~20 tokens: over --max-batch-tokens 256.
        self.expect(MLM, 413, "payload_too_large", "POST", "/embed",
                    body={"inputs": ["the cat sees the bird ."] * 32},
                    words=["tokens", "256"])
        # The server is still fine.
        self.assertEqual(post(MLM, "/embed", {"inputs": "the cat"})[0], 200)

    def test_422(self):
        self.expect(MLM, 422, "empty", "POST", "/embed", body={"inputs": ""})
        self.expect(MLM, 422, "empty", "POST", "/embed", body={"inputs": []})
        self.expect(MLM, 422, "empty", "POST", "/embed", body={"inputs": ["a", "  "]}, words=["[1]"])
        self.expect(MLM, 422, "validation", "POST", "/embed", raw=b'{"inputs": "caf\xe9 au lait"}', words=["UTF-8"])
        self.expect(MLM, 422, "validation", "POST", "/embed", body={"inputs": "a", "pooling": "max"},
                    words=["pooling", "max"])
        long_text = " ".join(["the cat sees the bird ."] * 10)
        self.expect(MLM, 422, "validation", "POST", "/embed", body={"inputs": ["a", long_text]},
                    words=["inputs[1]", "truncate"])
        st, e = post(MLM, "/embed", {"inputs": long_text, "truncate": True})
        self.assertEqual(st, 200, e)
        self.expect(MLM, 422, "validation", "POST", "/fill-mask", body={"inputs": "no mask here"}, words=["<mask>"])
        self.expect(MLM, 422, "validation", "POST", "/fill-mask", body={"inputs": "a <mask>", "top_k": 0},
                    words=["top_k"])
        self.expect(MLM, 422, "not_supported", "POST", "/predict", body={"inputs": "the cat"},
                    words=["classification"])
        self.expect(CLS, 422, "validation", "POST", "/predict", body={"inputs": "1 2 x"})

    def test_slow_loris_and_disconnects(self):
        """A client that stalls mid-request is dropped after --timeout (2 s) without stalling others;
        clients that vanish mid-request leave the server serving."""
        slow = socket.create_connection(("127.0.0.1", MLM.port))
        slow.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 100\r\n\r\n{\"inputs\"")
        t0 = time.time()
        self.assertEqual(post(MLM, "/embed", {"inputs": "the cat"})[0], 200)  # not stalled by it
        self.assertLess(time.time() - t0, 1.5)
        slow.settimeout(10)
        try:
            data = slow.recv(65536)
        except (ConnectionResetError, socket.timeout):
            data = b""
        dropped_after = time.time() - t0
        slow.close()
        self.assertNotIn(b"200 OK", data)
        self.assertLess(dropped_after, 8, "the stalled client was not dropped")
        # Headers never finished.
        slow2 = socket.create_connection(("127.0.0.1", MLM.port))
        slow2.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Le")
        slow2.settimeout(10)
        t0 = time.time()
        try:
            slow2.recv(65536)
        except (ConnectionResetError, socket.timeout):
            pass
        self.assertLess(time.time() - t0, 8)
        slow2.close()
        rss0 = MLM.rss_kib()
        for i in range(60):
            s = socket.create_connection(("127.0.0.1", MLM.port))
            s.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n{\"inputs\": \"the c")
            if i % 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
            s.close()
        for _ in range(20):
            self.assertEqual(post(MLM, "/embed", {"inputs": "the cat"})[0], 200)
        self.assertLess(MLM.rss_kib() - rss0, 16 * 1024, "60 vanished clients grew the server by 16 MiB")


class Lifecycle(unittest.TestCase):
    def test_503_while_loading(self):
        s = su.Server(f"{ROOT}/cls", "--load-delay-ms", "1500")
        try:
            st, j = su.request(s.port, "GET", "/health")
            self.assertEqual((st, j["error_type"]), (503, "unhealthy"))
            self.assertIn("loading", j["error"])
            st, j = su.request(s.port, "POST", "/predict", body={"inputs": "1 7"})
            self.assertEqual((st, j["error_type"]), (503, "unhealthy"))
            self.assertEqual(su.request(s.port, "GET", "/info")[0], 503)
            self.assertEqual(su.request(s.port, "GET", "/metrics")[0], 200)  # served while loading
            statuses = s.wait_ready()
            self.assertEqual(statuses[-1], 200)
            self.assertEqual(su.request(s.port, "POST", "/predict", body={"inputs": "1 7"})[0], 200)
        finally:
            self.assertEqual(s.stop(), 0)

    def test_second_signal_exits_at_once(self):
        s = su.Server(f"{ROOT}/cls", "--compute-delay-ms", "20000")
        s.wait_ready()
        t = threading.Thread(target=lambda: self.assertRaises(Exception, su.request, s.port, "POST", "/predict",
                                                              body={"inputs": "1 7"}))
        t.start()
        time.sleep(0.3)
        t0 = time.time()
        s.terminate()
        time.sleep(0.3)
        self.assertIsNone(s.proc.poll())  # draining: the request is still computing
        s.proc.send_signal(su.signal.SIGINT)
        self.assertEqual(s.wait(10), 1)
        self.assertLess(time.time() - t0, 5)
        t.join(30)
        self.assertIn("second signal", s.output())

    def test_bf16(self):
        with open("/proc/cpuinfo") as f:
            has_bf16 = "avx512_bf16" in f.read()
        s = su.Server(f"{ROOT}/mlm", "--bf16")
        if not has_bf16:
            code = s.wait(30)
            self.assertEqual(code, 1, s.output())
            self.assertIn("AVX512_BF16", s.output())
            return
        try:
            s.wait_ready()
            _, want = post(MLM, "/embed", {"inputs": TEXTS})
            st, got = su.request(s.port, "POST", "/embed", body={"inputs": TEXTS})
            self.assertEqual(st, 200, got)
            # bf16 operands: 8 bits of mantissa; unit vectors agree to about 1e-2.
            np.testing.assert_allclose(np.array(got), np.array(want), atol=3e-2)
        finally:
            self.assertEqual(s.stop(), 0)


class NoTokenizer(unittest.TestCase):
    def test_model_file_without_tokenizer(self):
        _, info = su.request(MLM.port, "GET", "/info")
        s = su.Server(info["model_file"])
        try:
            s.wait_ready()
            st, j = su.request(s.port, "POST", "/embed", body={"inputs": "the cat"})
            self.assertEqual((st, j["error_type"]), (422, "not_supported"))
            self.assertIn("tokenizer", j["error"])
        finally:
            self.assertEqual(s.stop(), 0)

    def test_bad_options_exit_1(self):
        for args, words in ((["--model", f"{ROOT}/mlm", "--api-key-file", f"{ROOT}/no-key.txt"], ["no-key.txt"]),
                            (["--model", f"{ROOT}/mlm", "--port", str(MLM.port)], ["cannot listen", str(MLM.port)])):
            p = su.subprocess.run([su.BIN, "serve", *args], stdout=su.subprocess.PIPE, stderr=su.subprocess.STDOUT,
                                  text=True, timeout=30)
            self.assertEqual(p.returncode, 1, p.stdout)
            for w in words:
                self.assertIn(w, p.stdout)

    def test_bad_model_exits_1(self):
        s = su.Server(f"{ROOT}/does-not-exist")
        code = s.wait(30)
        self.assertEqual(code, 1, s.output())
        self.assertIn("does-not-exist", s.output())


if __name__ == "__main__":
    unittest.main(verbosity=2)

"""`linformer serve` under load (ctest serve_load): 64 concurrent clients with zero failed
requests and a bounded memory growth, 429s (not failures) when the queue is full, a shutdown under
load that finishes what is in flight and exits 0, and a restart on the same port that serves again.
The load runs LINFORMER_SERVE_LOAD_SECONDS seconds (default 6; the issue's full run: 30)."""
import http.client
import json
import os
import random
import shutil
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

ROOT = None
SECONDS = float(os.environ.get("LINFORMER_SERVE_LOAD_SECONDS", "6"))
# Resident memory after the load run, over that after the first 100 requests. 0: not checked (the
# sanitizer build, whose quarantine keeps freed memory resident, sets that).
RSS_BOUND_MIB = int(os.environ.get("LINFORMER_SERVE_RSS_BOUND_MIB", "32"))


def setUpModule():
    global ROOT
    ROOT = su.tempdir("linformer_test_serve_load_")
    su.make_models(ROOT)


def tearDownModule():
    shutil.rmtree(ROOT, ignore_errors=True)


def random_text(rng, sentences=1):
    """Texts of about 15 to 100 tokens: longer than max_len 32 are cut ("truncate": true)."""
    return " ".join(f"{rng.choice(su.GRAMMAR_SUBJ)} {rng.choice(su.GRAMMAR_VERB)} {rng.choice(su.GRAMMAR_OBJ)} ."
                    for _ in range(sentences))


class Load(unittest.TestCase):
    def test_64_clients(self):
        s = su.Server(f"{ROOT}/mlm", "--http-threads", "80", threads=2)
        try:
            s.wait_ready()
            rng = random.Random(1)
            for _ in range(100):
                self.assertEqual(su.request(s.port, "POST", "/embed", body={"inputs": random_text(rng), "truncate": True})[0],
                                 200)
            rss_100 = s.rss_kib()
            failures, counts, lock, slowest = [], [0], threading.Lock(), [(0.0, "")]
            stop_at = time.time() + SECONDS

            def client(seed):
                r = random.Random(seed)
                conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
                n = 0
                while time.time() < stop_at:
                    route, body = r.choice([("/embed", {"inputs": [random_text(r, r.randint(1, 3)) for _ in range(r.randint(1, 4))],
                                                        "truncate": True}),
                                            ("/v1/embeddings", {"input": r.choice(su.GRAMMAR_SUBJ) + " " + r.choice(su.GRAMMAR_VERB)}),
                                            ("/tokenize", {"inputs": random_text(r)}),
                                            ("/fill-mask", {"inputs": "the cat <mask> the bird ."})])
                    try:
                        t0 = time.time()
                        st, j = su.request(s.port, "POST", route, body=body, conn=conn)
                        with lock:
                            slowest[0] = max(slowest[0], (time.time() - t0, route))
                        if st != 200:
                            failures.append((route, st, j))
                    except Exception as e:  # noqa: BLE001 -- any failure counts
                        failures.append((route, "exception", repr(e)))
                        conn.close()
                        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=30)
                    n += 1
                conn.close()
                with lock:
                    counts[0] += n

            threads = [threading.Thread(target=client, args=(i,)) for i in range(64)]
            t0 = time.time()
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            elapsed = time.time() - t0
            rss_end = s.rss_kib()
            print(f"load: 64 clients, {counts[0]} requests in {elapsed:.1f} s ({counts[0] / elapsed:.0f}/s), "
                  f"{len(failures)} failed; RSS after 100: {rss_100 / 1024:.1f} MiB, after {counts[0] + 100}: "
                  f"{rss_end / 1024:.1f} MiB; slowest request {slowest[0][0]:.2f} s ({slowest[0][1]})")
            self.assertEqual(failures[:5], [])
            # Every client got answers (how many depends on how busy the machine is).
            self.assertGreaterEqual(counts[0], 64 * 2)
            if RSS_BOUND_MIB > 0:
                self.assertLess(rss_end - rss_100, RSS_BOUND_MIB * 1024,
                                f"memory grew by more than {RSS_BOUND_MIB} MiB under load")
            st, metrics = su.request(s.port, "GET", "/metrics")
            batches = [l for l in metrics.splitlines() if l.startswith("linformer_batch_requests_count")]
            reqs = [l for l in metrics.splitlines() if l.startswith("linformer_batch_requests_sum")]
            self.assertTrue(batches and reqs, metrics)
            # The batcher gathered requests: fewer forward passes than embedding requests.
            self.assertLess(float(batches[0].split()[-1]), float(reqs[0].split()[-1]))
        finally:
            self.assertEqual(s.stop(), 0)

    def test_queue_full_gives_429(self):
        s = su.Server(f"{ROOT}/mlm", "--max-concurrent-requests", "2", "--compute-delay-ms", "150")
        try:
            s.wait_ready()
            results = []

            def one():
                results.append(su.request(s.port, "POST", "/embed", body={"inputs": "the cat"}))

            threads = [threading.Thread(target=one) for _ in range(16)]
            for th in threads:
                th.start()
            for th in threads:
                th.join()
            statuses = sorted(r[0] for r in results)
            self.assertEqual(set(statuses), {200, 429}, statuses)
            for st, j in results:
                if st == 429:
                    self.assertEqual(j["error_type"], "overloaded")
                    self.assertIn("--max-concurrent-requests", j["error"])
            self.assertGreaterEqual(statuses.count(200), 2)
            self.assertEqual(su.request(s.port, "POST", "/embed", body={"inputs": "the cat"})[0], 200)  # recovers
        finally:
            self.assertEqual(s.stop(), 0)

    def test_shutdown_under_load_then_restart(self):
        s = su.Server(f"{ROOT}/cls", "--compute-delay-ms", "300")
        s.wait_ready()
        results = []

        def one(i):
            try:
                results.append(su.request(s.port, "POST", "/predict", body={"inputs": ["1 7", "2 3"][i % 2]}))
            except Exception as e:  # noqa: BLE001
                results.append(("exception", repr(e)))

        threads = [threading.Thread(target=one, args=(i,)) for i in range(8)]
        for th in threads:
            th.start()
        # SIGTERM once all eight are in the server (queued or computing) or answered. A request
        # leaves the in-flight gauge before its answer reaches the client: never counted twice.
        deadline = time.time() + 20
        while time.time() < deadline:
            m = su.request(s.port, "GET", "/metrics")[1]
            in_flight = sum(float(l.split()[-1]) for l in m.splitlines() if l.startswith("linformer_requests_in_flight "))
            if in_flight + len(results) >= 8:
                break
            time.sleep(0.01)
        t0 = time.time()
        s.terminate()
        time.sleep(0.1)
        # Draining: no new connections (refused), or a 503 if one slipped in before the socket closed.
        try:
            st, j = su.request(s.port, "POST", "/predict", body={"inputs": "1 7"}, timeout=5)
            self.assertEqual((st, j["error_type"]), (503, "unhealthy"))
        except ConnectionRefusedError:
            pass
        code = s.stop()
        for th in threads:
            th.join()
        self.assertEqual(code, 0, s.output())
        self.assertIn("draining", s.output())
        self.assertIn("stopped", s.output())
        self.assertLess(time.time() - t0, 30)
        self.assertEqual(sorted(str(r[0]) for r in results), ["200"] * 8, results)
        # A new server on the same port serves again.
        s2 = su.Server(f"{ROOT}/cls", port=s.port)
        try:
            s2.wait_ready()
            st, j = su.request(s2.port, "POST", "/predict", body={"inputs": "1 7"})
            self.assertEqual(st, 200, j)
        finally:
            self.assertEqual(s2.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)

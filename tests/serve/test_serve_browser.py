"""The server's page in a real browser (ctest serve_browser): headless Chromium (Debian's
`chromium`) driven by puppeteer-core (npm, installed by scripts/setup.sh into
BUILD/browser-test/) loads GET /, types a text, presses Classify / Fill mask / Attention map and
the test checks what the page shows against the server's own JSON answers. Skipped (exit 77,
with the reason) when Chromium, node or puppeteer-core is missing. LINFORMER_PAGE_SCREENSHOT=DIR
keeps screenshots."""
import json
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import serve_util as su  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.environ.get("LINFORMER_BROWSER_TEST_DIR", "")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NODE = shutil.which("node")
SHOTS = os.environ.get("LINFORMER_PAGE_SCREENSHOT", "")


def missing():
    if not CHROMIUM:
        return "no chromium on PATH (apt-get install chromium)"
    if not NODE:
        return "no node on PATH (apt-get install nodejs)"
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "puppeteer-core")):
        return f"no puppeteer-core in {NODE_DIR}/node_modules (scripts/setup.sh installs it: cd {NODE_DIR} && npm install puppeteer-core@25)"
    return None


def page(url, mode, text, *extra, shot=""):
    env = dict(os.environ, NODE_PATH=os.path.join(NODE_DIR, "node_modules"))
    p = subprocess.run([NODE, os.path.join(HERE, "page_test.js"), CHROMIUM, url, mode, text, *extra, shot],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120, env=env)
    lines = [l for l in p.stdout.splitlines() if l.startswith("PAGE ")]
    if p.returncode != 0 or not lines:
        raise AssertionError(f"page_test.js exited {p.returncode}:\n{p.stdout}")
    return json.loads(lines[-1][5:])


class Page(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = su.tempdir("linformer_test_serve_browser_")
        su.make_models(cls.root)
        cls.cls = su.Server(f"{cls.root}/cls")
        cls.mlm = su.Server(f"{cls.root}/mlm")
        cls.cls.wait_ready()
        cls.mlm.wait_ready()

    @classmethod
    def tearDownClass(cls):
        codes = [cls.cls.stop(), cls.mlm.stop()]
        shutil.rmtree(cls.root, ignore_errors=True)
        assert codes == [0, 0], codes

    def shot(self, name):
        return os.path.join(SHOTS, name) if SHOTS else ""

    def test_classify(self):
        text = "1 2 7 3 4"
        out = page(f"http://127.0.0.1:{self.cls.port}/", "classify", text, "0", "0", shot=self.shot("serve_page_classify.png"))
        self.assertEqual(out["errors"], [])
        self.assertEqual(out["status"], "")
        _, want = su.request(self.cls.port, "POST", "/predict", body={"inputs": text, "truncate": True})
        self.assertEqual(out["label"], want["label"])
        shown = {label: float(p.rstrip("%")) for label, p in out["rows"]}
        self.assertEqual(set(shown), {"no", "yes"})
        for label, p in want["probs"].items():
            self.assertAlmostEqual(shown[label], 100 * p, delta=0.006)
        self.assertIn("labels: no, yes", out["info"])

    def test_fill_mask_and_attention(self):
        text = "the cat <mask> the bird ."
        url = f"http://127.0.0.1:{self.mlm.port}/"
        out = page(url, "fillmask", text, "0", "0", shot=self.shot("serve_page_fill_mask.png"))
        self.assertEqual(out["errors"], [])
        _, want = su.request(self.mlm.port, "POST", "/fill-mask", body={"inputs": text, "top_k": 5})
        self.assertEqual([r[0] for r in out["rows"]], [c["token"] for c in want["masks"][0]["candidates"]])
        out = page(url, "attention", text, "1", "1", shot=self.shot("serve_page_attention.png"))
        self.assertEqual(out["errors"], [])
        _, att = su.request(self.mlm.port, "POST", "/attention", body={"inputs": text, "layer": 1, "head": 1})
        self.assertIn(f"layer 1, head 1: {att['n']} queries x {att['cols']} projected keys", out["caption"])
        self.assertGreater(out["cells"], att["n"] * att["cols"])  # every cell is at least a pixel
        # Classify is off for a model without a classification head; an error shows in #status.
        out = page(url, "fillmask", "no mask here", "0", "0")
        self.assertIn("422", out["status"])


if __name__ == "__main__":
    why = missing()
    if why:
        print(f"SKIPPED: {why}")
        sys.exit(77)
    unittest.main(verbosity=2)

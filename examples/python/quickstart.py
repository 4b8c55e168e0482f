#!/usr/bin/python3
"""The complete example of docs/python.md: train a tokenizer and pretrain a (tiny) Linformer on
your own text, fine-tune it as a classifier, then load the run folders to embed, classify and
fill masks. Runs in a few seconds on generated text (ctest runs it: python_example_quickstart).

    /usr/bin/python3 examples/python/quickstart.py [WORK_DIR]
"""

import json
import random
import shutil
import sys
import tempfile
from pathlib import Path

import linformer

work = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="linformer_quickstart_"))
work.mkdir(parents=True, exist_ok=True)
for run in ("mlm", "cls"):  # every run starts fresh (pretrain and finetune refuse a folder holding a run)
    shutil.rmtree(work / run, ignore_errors=True)
linformer.set_num_threads(2)

# ---- some text: your corpus goes here (one sentence per line, an empty line between documents)
rng = random.Random(0)
animals = ["the cat", "a dog", "the horse"]
people = ["my friend", "the teacher", "the old man"]
subjects = animals + people
verbs = ["sees", "likes", "finds", "follows", "calls", "helps"]
objects = ["the bird", "a red ball", "the small house", "her brother", "the garden", "a green apple"]


def sentences(n):
    return [f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} ." for _ in range(n)]


(work / "train.txt").write_text("\n".join(sentences(400)) + "\n")
(work / "valid.txt").write_text("\n".join(sentences(50)) + "\n")

# ---- a tokenizer and token files (`linformer tokenizer train` / `encode`)
tok = linformer.Tokenizer.train(str(work / "train.txt"), vocab_size=40, out=str(work / "tok.model"))
tok.encode_corpus(str(work / "train.txt"), str(work / "train.tokens"))
tok.encode_corpus(str(work / "valid.txt"), str(work / "valid.tokens"))
print("tokens of a sentence:", tok.encode("the cat sees the bird ."))

# ---- pretraining (`linformer pretrain`): the command's options, as keywords
config = {"vocab_size": 40, "max_len": 48, "d_model": 64, "n_heads": 2, "d_ff": 128, "n_layers": 2,
          "attention": "linformer", "k": [16]}


def progress(line):
    if "valid_loss" in line:
        print(f"  step {line['step']}: train loss {line['train_loss']:.3f}, valid loss {line['valid_loss']:.3f}")
    return True  # False would stop the run (cleanly: a checkpoint is saved; Ctrl-C does the same)


summary = linformer.pretrain(config=config, train=str(work / "train.tokens"), valid=str(work / "valid.tokens"),
                             tokenizer=str(work / "tok.model"), out=str(work / "mlm"), steps=60, batch_size=8,
                             lr=2e-3, warmup=6, eval_every=20, eval_batches=2, log_every=10, seed=1,
                             callback=progress)
print(f"pretrained {summary['steps_done']} steps: valid loss {summary['initial_valid_loss']:.3f} -> "
      f"{summary['final_valid_loss']:.3f}")

# ---- the pretrained model: fill-mask and embeddings
mlm = linformer.load(str(work / "mlm"))  # the run folder: latest checkpoint + tokenizer.model
for cand in mlm.fill_mask("the cat <mask> the bird .", top_k=3)[0]:
    print(f"  <mask> = {cand['token']!r}: {cand['prob']:.3f}")
vectors = mlm.embed(["the cat sees the bird .", "a dog likes a red ball ."], pooling="mean", normalize=True)
print("embeddings:", vectors.shape, "cosine similarity:", float(vectors[0] @ vectors[1]))

# ---- a classification task (docs/tasks.md): is the subject an animal or a person?
task = work / "task"
task.mkdir(exist_ok=True)
(task / "task.json").write_text(json.dumps({"name": "subject", "labels": ["person", "animal"],
                                            "tokenizer": "sentencepiece", "source": "example", "licence": "none"}))
for split, n in (("train", 300), ("valid", 60), ("test", 60)):
    rows = [("animal" if any(s.startswith(a) for a in animals) else "person") + "\t" + s for s in sentences(n)]
    (task / f"{split}.tsv").write_text("\n".join(rows) + "\n")

# ---- fine-tuning from the pretrained run (`linformer finetune`): options as a dict this time
ft = linformer.finetune({"model": str(work / "mlm"), "task": str(task), "out": str(work / "cls"),
                         "steps": 60, "batch_size": 16, "lr": 3e-3, "warmup": 6, "eval_every": 20,
                         "log_every": 10, "seed": 2})
print(f"fine-tuned {ft['steps_done']} steps: valid accuracy {ft['final_valid_accuracy']:.3f}")

# ---- classify new texts with the fine-tuned run folder (`linformer predict`)
clf = linformer.load(str(work / "cls"))
texts = ["the horse finds a green apple .", "my friend calls her brother ."]
for text, r in zip(texts, clf.classify(texts)):
    print(f"  {text!r}: {r['label']} ({r['probs'][r['label']]:.3f})")
print("test split:", {k: round(v, 3) for k, v in clf.evaluate(str(task), "test").items()
                      if k in ("accuracy", "macro_f1")})

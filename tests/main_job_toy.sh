#!/usr/bin/env bash
# The main job (scripts/main.sh) at toy size: every step runs (a generated corpus instead of the
# download, a 40-piece tokenizer, a tiny model, 40 steps, short inputs for "why Linformer"), and
# the summary carries every figure it promises (a number, not "?").
#   tests/main_job_toy.sh BUILD_DIR
set -euo pipefail
BUILD_DIR="$1"
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/linformer_main_toy.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

# A small corpus: sentences of a tiny grammar (enough for a 40-piece tokenizer), documents apart.
/usr/bin/python3 - "$WORK/data" <<'PY'
import os, random, sys
out = sys.argv[1]
os.makedirs(out)
rng = random.Random(1)
nouns = ["cat", "dog", "bird", "State", "people", "law", "nation", "house", "budget", "union", "senate", "debt", "plan", "court", "farmer", "army"]
verbs = ["sees", "likes", "helps", "serves", "protects", "reduces", "passes", "follows"]
def doc(n):
    return "\n".join(f"the {rng.choice(nouns)} {rng.choice(verbs)} the {rng.choice(nouns)} ." for _ in range(n))
for name, docs in (("train.txt", 40), ("valid.txt", 6)):
    with open(os.path.join(out, name), "w") as f:
        f.write("\n\n".join(doc(12) for _ in range(docs)) + "\n")
PY
cat > "$WORK/config.json" <<'J'
{"vocab_size": 40, "max_len": 64, "d_model": 16, "n_heads": 2, "d_ff": 32, "n_layers": 1,
 "attention": "linformer", "k": [8], "dropout": 0, "attention_dropout": 0}
J
MAIN_SKIP_SETUP=1 MAIN_DATA="$WORK/data" MAIN_CONFIG="$WORK/config.json" MAIN_VOCAB=40 MAIN_RUN="$WORK/run" \
  MAIN_STEPS=40 MAIN_THREADS=1 MAIN_WHY_N=64,256 MAIN_WHY_K=16 MAIN_WHY_BUDGET_GB=0.0001 \
  bash "$ROOT/scripts/main.sh" --build-dir "$BUILD_DIR" > "$WORK/out.txt" 2>&1 ||
  { cat "$WORK/out.txt"; echo "main_job_toy: main.sh failed"; exit 1; }

summary="$WORK/run/summary.txt"
[[ -s "$summary" ]] || { cat "$WORK/out.txt"; echo "main_job_toy: no $summary"; exit 1; }
cat "$summary"
fail=0
need() {  # need REGEX WHAT
  if ! grep -Eq "$1" "$summary"; then echo "main_job_toy: the summary lacks $2 (/$1/)"; fail=1; fi
}
num='[0-9][0-9.,]*'
need "top-1 $num% \\(unigram $num%\\), top-5 $num% \\(unigram $num%\\)" "the masked-token accuracies and the unigram's"
need "perplexity: +$num \\(unigram $num; before training $num\\)" "the perplexities"
need "expected word in the top 5 for [0-3] of 3 sentences" "the fill-mask count"
t="$num m?s"
need "n = 64: Linformer: $t, $num MB; full attention: $t, $num MB \(${num}x the time, ${num}x the memory\)" "the long-input reading with both kinds"
need "n = 256: Linformer: $t, $num MB; full attention: not run: .*this job allows .*would take about $t" "full attention refused by the budget, with its estimated time"
need "training speed: $num tokens/s" "the training speed"
need "curves: .*curves.svg" "the picture"
[[ -s "$WORK/run/curves.svg" ]] && grep -q "Masked-token accuracy" "$WORK/run/curves.svg" ||
  { echo "main_job_toy: curves.svg missing or without the accuracy panel"; fail=1; }
exit $fail

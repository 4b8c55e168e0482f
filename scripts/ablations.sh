#!/usr/bin/env bash
# The paper's ablations (its Figure 3) at small scale on the default corpus, each written as a
# table and a validation-perplexity chart to docs/results/ablation_<group>.{md,svg}:
#   k           projected length k = 32, 64, 128, 256 at n = 512, and full attention
#   sharing     the four sharing modes (none, headwise, kv, layerwise) at k = 64, n = 512
#   length      n = 128 ... 2048 at k = 64, the same tokens per batch (so the same work per step
#               if cost is linear in n)
#   nonuniform  k = [96, 32] (smaller k in the higher layer) against k = 64 in both layers
#               (the same sum of k, so about the same cost)
#   seeds       k = 64, n = 512 with seeds 2 and 3: how far the seed alone moves the result
# Every run: 2 layers, d 128, 4 heads, FFN 512, dropout 0.1, 4096 tokens per batch, AdamW lr 1e-3
# with 10 % warm-up and linear decay, seed 1; validation over the whole validation split.
# Runs are kept in runs/ablations/<name>/ and reused by later groups and later invocations with
# the same recipe (delete the folder to redo one). Commentary: docs/results/ablations.md.
#
#   bash scripts/ablations.sh [--steps N] [--threads T] [--groups k,sharing,length,nonuniform,seeds]
#
# Default budget: 300 steps; a Linformer run takes 3-5 minutes on one thread, full attention ~7
# (the whole script: about 65 minutes on one thread).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=300 threads=0 groups="k,sharing,length,nonuniform,seeds"
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --groups) groups="$2"; shift 2 ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ablations.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for g in ${groups//,/ }; do
  case "$g" in k|sharing|length|nonuniform|seeds) ;; *) echo "ablations.sh: unknown group '$g'" >&2; exit 2 ;; esac
done

bin=${LINFORMER_BIN:-build/linformer}
bash scripts/prepare_sotu.sh
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
data=data/sotu
out=runs/ablations
mkdir -p "$out"
tokens_per_batch=4096

# run NAME SEQ_LEN ATTENTION_JSON [SEED]: trains one model (seed 1 unless given) unless a finished
# run with the same recipe exists.
run() {
  local name="$1" n="$2" attn="$3" seed="${4:-1}"
  local dir="$out/$name" batch=$((tokens_per_batch / n))
  local config="{\"vocab_size\": 8000, \"max_len\": $n, \"d_model\": 128, \"n_heads\": 4, \"d_ff\": 512, \"n_layers\": 2, \"dropout\": 0.1, \"attention_dropout\": 0.1, $attn}"
  local recipe="$config steps=$steps batch=$batch seq=$n threads=$threads"
  [ "$seed" = 1 ] || recipe="$recipe seed=$seed"
  if [ -f "$dir/recipe.txt" ] && [ "$(cat "$dir/recipe.txt")" = "$recipe" ]; then
    echo "== $name: done earlier ($dir)"; return
  fi
  rm -rf "${dir:?}" "$dir.config.json"
  echo "$config" > "$dir.config.json"
  echo "== $name: n $n, batch $batch, $steps steps: $attn"
  "$bin" --threads "$threads" pretrain --config "$dir.config.json" --train "$data/train.tokens" \
    --valid "$data/valid.tokens" --out "$dir" --steps "$steps" --batch-size "$batch" --seq-len "$n" \
    --lr 1e-3 --warmup $((steps / 10)) --eval-every $((steps / 5)) --eval-batches 0 --save-every "$steps" \
    --log-every 10 --seed "$seed"
  mv "$dir.config.json" "$dir/config.input.json"
  echo "$recipe" > "$dir/recipe.txt"  # written last: marks the run finished
}

# plot GROUP TITLE BASELINE NAME...: the table and chart of one group.
plot() {
  local group="$1" title="$2" base="$3"; shift 3
  local specs=() name
  for name in "$@"; do specs+=("$name=$out/$name"); done
  /usr/bin/python3 scripts/plot_metrics.py --out "docs/results/ablation_$group" --title "$title" --baseline "$base" \
    --command "bash scripts/ablations.sh --steps $steps --threads $threads --groups $group" "${specs[@]}"
}

# cost_table MD NAME=N...: appends the training cost per sequence against n (from metrics.jsonl:
# the median tokens/s of the train lines) to the group's table.
cost_table() {
  local md="$1"; shift
  /usr/bin/python3 - "$md" "$out" "$@" <<'PY'
import json, statistics, sys
md, out, runs = sys.argv[1], sys.argv[2], sys.argv[3:]
rows = []
for spec in runs:
    name, n = spec.split("=")
    tps = [m["tokens_per_s"] for m in map(json.loads, open(f"{out}/{name}/metrics.jsonl")) if "tokens_per_s" in m]
    rows.append((name, int(n), statistics.median(tps)))
base = rows[0]
lines = ["", "Training cost against n (median of the logged tokens/s; the batch holds 4096 tokens at every n,",
         "so constant tokens/s means a cost per sequence linear in n):", "",
         "| run | n | tokens/s | ms per sequence | per sequence vs n = %d | n vs %d |" % (base[1], base[1]),
         "|---|---|---|---|---|---|"]
for name, n, tps in rows:
    ms = 1000 * n / tps
    lines.append(f"| {name} | {n} | {tps:.0f} | {ms:.1f} | {ms / (1000 * base[1] / base[2]):.2f}x | {n / base[1]:.0f}x |")
with open(md, "a") as f:
    f.write("\n".join(lines) + "\n")
print("\n".join(lines))
PY
}

lin() { echo "\"attention\": \"linformer\", \"k\": $1, \"sharing\": \"${2:-headwise}\""; }

for g in ${groups//,/ }; do
  case "$g" in
    k)
      run full 512 '"attention": "full"'
      for k in 32 64 128 256; do run "k$k" 512 "$(lin $k)"; done
      plot k "Ablation: projected length k at n = 512" full full k32 k64 k128 k256 ;;
    sharing)
      run k64 512 "$(lin 64)"
      for s in none kv layerwise; do run "k64-$s" 512 "$(lin 64 $s)"; done
      plot sharing "Ablation: sharing of the projections, k = 64, n = 512" k64 k64-none k64 k64-kv k64-layerwise ;;
    length)
      run k64 512 "$(lin 64)"
      for n in 128 256 1024 2048; do run "k64-n$n" "$n" "$(lin 64)"; done
      plot length "Ablation: sequence length n at k = 64 (4096 tokens per batch)" k64 k64-n128 k64-n256 k64 k64-n1024 k64-n2048
      cost_table docs/results/ablation_length.md k64-n128=128 k64-n256=256 k64=512 k64-n1024=1024 k64-n2048=2048 ;;
    nonuniform)
      run k64 512 "$(lin 64)"
      run k96-32 512 "$(lin '[96, 32]')"
      plot nonuniform "Ablation: nonuniform k ([96, 32]) against uniform k = 64, n = 512" k64 k64 k96-32 ;;
    seeds)
      run k64 512 "$(lin 64)"
      for seed in 2 3; do run "k64-seed$seed" 512 "$(lin 64)" "$seed"; done
      plot seeds "Seed-to-seed spread: k = 64, n = 512, seeds 1, 2, 3" k64 k64 k64-seed2 k64-seed3 ;;
  esac
done

#!/usr/bin/env bash
# The paper's central comparison at small scale (issue: pretraining, item 8): full attention
# against Linformer (k = 32, 64, 128 at n = 512, headwise sharing; and k = 64 layerwise-shared)
# with identical model size, data, seed, schedule and step budget on the default corpus.
# Writes docs/results/pretrain_comparison.{md,svg}.
#
#   bash scripts/compare_attention.sh [--steps N] [--batch-size B] [--threads T] [--only NAME]
# Runs take about 10-20 minutes each on 2 cores at the default budget.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

steps=800 batch=8 threads=0 only=""
while [ $# -gt 0 ]; do
  case "$1" in
    --steps) steps="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --only) only="$2"; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
    *) echo "compare_attention.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

bin=${LINFORMER_BIN:-build/linformer}
bash scripts/prepare_sotu.sh
data=data/sotu

out=runs/compare
mkdir -p "$out/configs"
common='"vocab_size": 8000, "max_len": 512, "d_model": 128, "n_heads": 4, "d_ff": 512, "n_layers": 2, "dropout": 0.1, "attention_dropout": 0.1'
declare -A attn=(
  [full]='"attention": "full"'
  [linformer-k32]='"attention": "linformer", "k": 32, "sharing": "headwise"'
  [linformer-k64]='"attention": "linformer", "k": 64, "sharing": "headwise"'
  [linformer-k128]='"attention": "linformer", "k": 128, "sharing": "headwise"'
  [linformer-k64-layerwise]='"attention": "linformer", "k": 64, "sharing": "layerwise"'
)
names=(full linformer-k32 linformer-k64 linformer-k128 linformer-k64-layerwise)
for name in "${names[@]}"; do
  [ -z "$only" ] || [ "$only" = "$name" ] || continue
  echo "{${common}, ${attn[$name]}}" > "$out/configs/$name.json"
  rm -rf "${out:?}/$name"
  echo "== $name ($steps steps, batch $batch x 512)"
  "$bin" --threads "$threads" pretrain --config "$out/configs/$name.json" --train "$data/train.tokens" \
    --valid "$data/valid.tokens" --out "$out/$name" --steps "$steps" --batch-size "$batch" --seq-len 512 \
    --lr 1e-3 --warmup $((steps / 10)) --eval-every $((steps / 10)) --eval-batches 0 --save-every "$steps" --seed 1
done

runs=()
for name in "${names[@]}"; do [ -f "$out/$name/metrics.jsonl" ] && runs+=("$name=$out/$name"); done
/usr/bin/python3 scripts/plot_metrics.py --out docs/results/pretrain_comparison \
  --title "MLM pretraining on SOTU, n = 512: full attention vs Linformer" --baseline full \
  --command "bash scripts/compare_attention.sh --steps $steps --batch-size $batch" "${runs[@]}"

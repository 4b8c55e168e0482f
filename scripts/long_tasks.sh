#!/usr/bin/env bash
# The fine-tuning results of docs/results/ (issue: long-sequence tasks): Linformer and full
# attention trained from scratch with the same settings on Fashion-MNIST pixel sequences (n = 786)
# and LRA ListOps (n up to 2,001), plus the Linformer run that fits a one-hour CPU budget.
#
#   bash scripts/long_tasks.sh [--tasks fashion-mnist,listops] [--runs NAME,...] [--threads T]
#
# Runs (each one process; several can run side by side, one thread each, as we did):
#   fashion-mnist: fm-lin-4000, fm-full-4000 (same settings), fm-lin-12000 (the one-hour run)
#   listops:       lo-lin-3600 (the one-hour run), lo-full-3600 (same settings; about 5x slower),
#                  lo-lin-g2000, lo-full-g2000 (same settings, batches grouped by length),
#                  lo-lin-g4000, lo-linmean-g2000 (grouped: longer; mean projection),
#                  lo-lin4-b32-3000 (4 layers, batches of 32, two threads)
# Each run writes runs/long/NAME/ (the run folder), NAME.log, NAME.time (/usr/bin/time -v: CPU
# time and peak memory), NAME-test.json (`linformer eval --split test`). Existing finished runs are
# skipped. Data: data/fashion-mnist and data/listops, prepared when missing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

tasks="fashion-mnist,listops" only="" threads=1
while [ $# -gt 0 ]; do
  case "$1" in
    --tasks) tasks="$2"; shift 2 ;;
    --runs) only="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "long_tasks.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
bin=${LINFORMER_BIN:-build/linformer}
out=runs/long
mkdir -p "$out"
export OMP_WAIT_POLICY=passive  # idle threads sleep: several runs share the cores

# model configs: tiny encoders, 2 layers, d 64, 4 heads, FFN 256, mean pooling, no dropout
model() {  # NAME VOCAB MAX_LEN ATTENTION [K] [LAYERS (default 2)]
  local extra=""
  [ "$4" = linformer ] && extra=", \"k\": [$5], \"sharing\": \"headwise\""
  cat > "$out/$1.json" <<EOF
{"vocab_size": $2, "max_len": $3, "d_model": 64, "n_heads": 4, "d_ff": 256, "n_layers": ${6:-2},
 "attention": "$4"$extra, "pooling": "mean", "dropout": 0.0}
EOF
}

run() {  # NAME TASK CONFIG STEPS OPTIONS...
  local name=$1 task=$2 cfg=$3 steps=$4
  shift 4
  if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then return; fi
  if [ -f "$out/$name-test.json" ]; then echo "$name: done already ($out/$name-test.json)"; return; fi
  rm -rf "${out:?}/$name"
  echo "$name: training ($out/$name.log)"
  /usr/bin/time -v "$bin" finetune --model none --config "$out/$cfg.json" --task "$task" --out "$out/$name" \
    --steps "$steps" --threads "$threads" "$@" > "$out/$name.log" 2> "$out/$name.time"
  "$bin" eval --model "$out/$name" --split test --json "$out/$name-test.json" --threads "$threads" \
    > "$out/$name.eval.log"
  grep -h "accuracy" "$out/$name.eval.log" | head -1
}

if [[ ",$tasks," == *",fashion-mnist,"* ]]; then
  [ -f data/fashion-mnist/task.json ] || "$bin" task fashion-mnist --out data/fashion-mnist
  model fm-lin 261 786 linformer 64
  model fm-full 261 786 full
  fm="--batch-size 16 --lr 1e-3 --warmup 200 --log-every 20 --seed 1"
  run fm-lin-4000 data/fashion-mnist fm-lin 4000 $fm --eval-every 1000 --save-every 1000
  run fm-full-4000 data/fashion-mnist fm-full 4000 $fm --eval-every 1000 --save-every 1000
  run fm-lin-12000 data/fashion-mnist fm-lin 12000 $fm --eval-every 2000 --save-every 2000
fi

if [[ ",$tasks," == *",listops,"* ]]; then
  [ -f data/listops/task.json ] || "$bin" task listops --out data/listops --seed 1
  model lo-lin 20 2048 linformer 128
  model lo-full 20 2048 full
  lo="--batch-size 16 --lr 1e-3 --warmup 300 --eval-every 400 --save-every 400 --log-every 20 --seed 1"
  run lo-lin-3600 data/listops lo-lin 3600 $lo
  run lo-full-3600 data/listops lo-full 3600 $lo
  # Batches of similar lengths (--group-by-length): far less padding, so full attention's run
  # fits in about an hour; the same settings for both kinds.
  run lo-lin-g2000 data/listops lo-lin 2000 $lo --group-by-length
  run lo-full-g2000 data/listops lo-full 2000 $lo --group-by-length
  run lo-lin-g4000 data/listops lo-lin 4000 $lo --group-by-length  # Linformer's jump comes later
  # A mean over windows of 16 positions instead of the learned projection E.
  sed 's/"sharing": "headwise"/"sharing": "headwise", "projection": "mean"/' "$out/lo-lin.json" > "$out/lo-linmean.json"
  run lo-linmean-g2000 data/listops lo-linmean 2000 $lo --group-by-length
  # Deeper and longer: 4 layers, random batches of 32, 3,000 steps (one epoch), two threads.
  model lo-lin4 20 2048 linformer 128 4
  lo32="--batch-size 32 --lr 1e-3 --warmup 300 --eval-every 500 --save-every 500 --log-every 20 --seed 1"
  threads=2 run lo-lin4-b32-3000 data/listops lo-lin4 3000 $lo32
fi

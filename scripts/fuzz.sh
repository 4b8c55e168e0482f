#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, ASan + UBSan) and runs each for a while.
#
#   bash scripts/fuzz.sh [--seconds S | --replay] [--targets a,b,...] [--build-dir DIR] [--no-build] [--jobs N]
#
# --seconds S   fuzzing time per target (default 60)
# --runs N      also stop a target after N executions (whichever comes first; for long runs
#               toward a number of executions: --seconds 86400 --runs 10000000)
# --replay      no fuzzing: run every target once over its seed corpus (a quick regression check)
# --targets     comma-separated subset of: safetensors model_file config token_file task ids_file
# --build-dir   CMake build folder (default build-fuzz; configured with CC=clang CXX=clang++
#               -DLINFORMER_FUZZ=ON -DLINFORMER_TESTS=OFF -DCMAKE_BUILD_TYPE=RelWithDebInfo)
# --no-build    use the targets already built there
# --jobs N      build parallelism (default 2)
#
# Each target starts from its seed corpus fuzz/corpus/<target>/ (read only; regenerate it with
# python3 fuzz/make_corpus.py) plus the inputs it found in earlier runs, kept in
# DIR/corpus/<target>/, and uses the dictionary fuzz/dict/<target>.dict. Crashes, leaks, timeouts
# and out-of-memory inputs are written to DIR/artifacts/<target>/ (reproduce one with
# `DIR/fuzz/fuzz_<target> FILE`; FUZZ_VERBOSE=1 prints why an input is rejected).
# Prints executions, executions per second, corpus size and findings per target; the exit status
# is 1 if any target found something (or failed to run), 2 for a setup problem.
# Debian packages: clang libclang-rt-14-dev libomp-14-dev (plus the project's own, scripts/setup.sh);
# as root the missing ones are installed with apt-get, otherwise the command is printed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ORIG_ARGS=("$@")
SECONDS_PER_TARGET=60
BUILD="$ROOT/build-fuzz"
BUILD_IT=1
REPLAY=0
RUNS=-1
JOBS=2
ALL_TARGETS=(safetensors model_file config token_file task ids_file)
TARGETS=("${ALL_TARGETS[@]}")

die() { echo "fuzz.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) SECONDS_PER_TARGET="${2:?--seconds needs a value}"; shift 2 ;;
    --seconds=*) SECONDS_PER_TARGET="${1#*=}"; shift ;;
    --targets) IFS=, read -r -a TARGETS <<< "${2:?--targets needs a value}"; shift 2 ;;
    --targets=*) IFS=, read -r -a TARGETS <<< "${1#*=}"; shift ;;
    --build-dir) BUILD="$(realpath -m "${2:?--build-dir needs a value}")"; shift 2 ;;
    --build-dir=*) BUILD="$(realpath -m "${1#*=}")"; shift ;;
    --no-build) BUILD_IT=0; shift ;;
    --runs) RUNS="${2:?--runs needs a value}"; shift 2 ;;
    --runs=*) RUNS="${1#*=}"; shift ;;
    --replay) REPLAY=1; shift ;;
    --jobs) JOBS="${2:?--jobs needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
[[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ && "$SECONDS_PER_TARGET" -ge 1 ]] || die "--seconds must be a positive integer"
[[ "$RUNS" == -1 || ( "$RUNS" =~ ^[0-9]+$ && "$RUNS" -ge 1 ) ]] || die "--runs must be a positive integer"
for t in "${TARGETS[@]}"; do
  [[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || die "unknown target '$t' (known: ${ALL_TARGETS[*]})"
done

# --- tools -------------------------------------------------------------------------------------
if [[ $BUILD_IT -eq 1 ]]; then
  missing=()
  command -v clang++ >/dev/null || missing+=(clang)
  if command -v clang++ >/dev/null; then
    rt="$(clang++ -print-resource-dir 2>/dev/null)/lib/linux/libclang_rt.fuzzer-x86_64.a"
    [[ -f "$rt" ]] || missing+=("libclang-rt-$(clang++ -dumpversion | cut -d. -f1)-dev")
    echo 'int main(){}' | clang++ -fopenmp -x c++ - -o /dev/null 2>/dev/null \
      || missing+=("libomp-$(clang++ -dumpversion | cut -d. -f1)-dev")
  else
    missing+=(libclang-rt-14-dev libomp-14-dev)
  fi
  if [[ ${#missing[@]} -gt 0 ]]; then
    echo "fuzz.sh: missing Debian packages: ${missing[*]}" >&2
    [[ -z "${FUZZ_SH_INSTALLED:-}" ]] || die "still missing after apt-get install: ${missing[*]}"
    if [[ $(id -u) -ne 0 ]]; then
      echo "  not root, so not installing them; run:" >&2
      echo "  sudo apt-get update && sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
      exit 2
    fi
    # As root (CI), install them like scripts/setup.sh does.
    export DEBIAN_FRONTEND=noninteractive
    apt-get update && apt-get install -y --no-install-recommends "${missing[@]}" || die "apt-get install failed"
    # clang was perhaps missing: now that it is there, the runtime packages follow its version.
    FUZZ_SH_INSTALLED=1 exec bash "$0" "${ORIG_ARGS[@]}"
  fi

  # --- build -----------------------------------------------------------------------------------
  t0=$(date +%s)
  if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
    CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DLINFORMER_FUZZ=ON -DLINFORMER_TESTS=OFF \
      -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD.configure.log" 2>&1 \
      || { cat "$BUILD.configure.log" >&2; die "cmake configure failed"; }
    rm -f "$BUILD.configure.log"
  fi
  build_targets=()
  for t in "${TARGETS[@]}"; do build_targets+=("fuzz_$t"); done
  cmake --build "$BUILD" -j "$JOBS" --target "${build_targets[@]}" || die "build failed"
  echo "fuzz.sh: built in $(( $(date +%s) - t0 )) s"
fi

# --- run ---------------------------------------------------------------------------------------
export OMP_NUM_THREADS=1
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

status=0
summary=()
for t in "${TARGETS[@]}"; do
  bin="$BUILD/fuzz/fuzz_$t"
  [[ -x "$bin" ]] || { echo "fuzz.sh: $bin is not built" >&2; status=1; summary+=("$t|-|-|-|-|not built"); continue; }
  corpus="$BUILD/corpus/$t"
  artifacts="$BUILD/artifacts/$t"
  log="$BUILD/logs/fuzz_$t.log"
  mkdir -p "$corpus" "$artifacts" "$(dirname "$log")"
  dict=()
  [[ -f "$ROOT/fuzz/dict/$t.dict" ]] && dict=(-dict="$ROOT/fuzz/dict/$t.dict")
  before=$(find "$artifacts" -type f | wc -l)
  # -rss_limit_mb / -malloc_limit_mb: an input that makes a parser allocate over 2 GB is a finding.
  # -timeout: one input taking over 10 s is a finding. -max_len: the parsers see whole files;
  # 64 KiB leaves room for long lines and many tensors while keeping executions fast.
  common=(-timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -max_len=65536 -print_final_stats=1
          -artifact_prefix="$artifacts/")
  if [[ $REPLAY -eq 1 ]]; then
    echo "=== fuzz_$t: replaying fuzz/corpus/$t (log $log)"
    "$bin" -runs=0 "${common[@]}" "$ROOT/fuzz/corpus/$t" >"$log" 2>&1
  else
    echo "=== fuzz_$t: ${SECONDS_PER_TARGET} s (log $log)"
    "$bin" -max_total_time="$SECONDS_PER_TARGET" -runs="$RUNS" "${common[@]}" "${dict[@]}" "$corpus" "$ROOT/fuzz/corpus/$t" \
      >"$log" 2>&1
  fi
  rc=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  added=$(sed -n 's/^stat::new_units_added: *//p' "$log" | tail -1)
  cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1 | cut -d' ' -f2)
  if [[ $REPLAY -eq 1 ]]; then units=$(find "$ROOT/fuzz/corpus/$t" -type f | wc -l); else units=$(find "$corpus" -type f | wc -l); fi
  after=$(find "$artifacts" -type f | wc -l)
  finding="none"
  if [[ $rc -ne 0 || $after -gt $before ]]; then
    status=1
    kind=$(grep -m1 -oE 'ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer): .*|runtime error: .*|FUZZ_CHECK failed: .*|terminate called .*' "$log" \
           | head -1 | sed -E 's/ on (address|unknown address).*//' | cut -c1-120)
    finding="exit $rc: ${kind:-see log}; newest artifact: $(ls -t "$artifacts" | head -1)"
    grep -m1 -B2 -A25 -E 'ERROR: |runtime error|FUZZ_CHECK|terminate called' "$log" | cut -c1-200 >&2
  fi
  echo "    executions ${execs:-?}, ${rate:-?}/s, coverage ${cov:-?} edges, corpus $units (+${added:-?} new), findings: $finding"
  summary+=("$t|${execs:-?}|${rate:-?}|${cov:-?}|$units|$finding")
done

echo
if [[ $REPLAY -eq 1 ]]; then echo "fuzz.sh summary (seed corpus replay):"
else echo "fuzz.sh summary (${SECONDS_PER_TARGET} s per target):"; fi
printf '  %-12s %12s %8s %6s %7s  %s\n' target executions exec/s cov corpus findings
for row in "${summary[@]}"; do
  IFS='|' read -r t e r c u f <<< "$row"
  printf '  %-12s %12s %8s %6s %7s  %s\n' "$t" "$e" "$r" "$c" "$u" "$f"
done
exit $status

#!/usr/bin/env bash
# Builds everything with AddressSanitizer + UndefinedBehaviorSanitizer (g++, -DLINFORMER_SANITIZE=ON)
# and runs the whole test suite under them.
#
#   bash scripts/sanitize.sh [--build-dir DIR] [--jobs N] [--no-build] [--exclude REGEX] [-- CTEST_ARGS...]
#
# --build-dir   CMake build folder (default build-asan; RelWithDebInfo: -O2 -g, for readable reports)
# --jobs N      build parallelism (default 2)
# --no-build    run the tests already built there
# --exclude R   skip the tests whose name matches R (ctest -E)
# Anything after -- goes to ctest (e.g. -R test_safetensors).
#
# Every sanitizer report is fatal: ASAN_OPTIONS=detect_leaks=1:halt_on_error=1,
# UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1, LeakSanitizer suppressions from fuzz/lsan.supp
# (see docs/reliability.md). The Python parity tests run the sanitized dump executables as
# subprocesses, which works: Python itself is not instrumented. The exit status is ctest's
# (2 for a build problem).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="$ROOT/build-asan"
JOBS=2
BUILD_IT=1
EXCLUDE=()
CTEST_EXTRA=()
die() { echo "sanitize.sh: $*" >&2; exit 2; }
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD="$(realpath -m "${2:?--build-dir needs a value}")"; shift 2 ;;
    --build-dir=*) BUILD="$(realpath -m "${1#*=}")"; shift ;;
    --jobs) JOBS="${2:?--jobs needs a value}"; shift 2 ;;
    --no-build) BUILD_IT=0; shift ;;
    --exclude) EXCLUDE=(-E "${2:?--exclude needs a value}"); shift 2 ;;
    --) shift; CTEST_EXTRA=("$@"); break ;;
    -h|--help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done

if [[ $BUILD_IT -eq 1 ]]; then
  t0=$(date +%s)
  if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
    cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLINFORMER_SANITIZE=ON \
      || die "cmake configure failed"
  fi
  cmake --build "$BUILD" -j "$JOBS" || die "build failed"
  echo "sanitize.sh: built in $(( $(date +%s) - t0 )) s"
fi

export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=1${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1${UBSAN_OPTIONS:+:$UBSAN_OPTIONS}"
export LSAN_OPTIONS="suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"

# Open MPI's runtime leaks at exit (libmpi's op tables, its dlopen'ed components, unloaded by then
# so LeakSanitizer cannot name them for a suppression). The MPI tests (CliMpi.*) therefore run in a
# second pass with leak detection off, ASan and UBSan still on; the code they share with one
# process is leak-checked by every other test (docs/reliability.md).
MPI_TESTS='^CliMpi\.'
t0=$(date +%s)
if [[ ${#EXCLUDE[@]} -gt 0 ]]; then EXCLUDE=(-E "${EXCLUDE[1]}|$MPI_TESTS"); else EXCLUDE=(-E "$MPI_TESTS"); fi
ctest --test-dir "$BUILD" --output-on-failure "${EXCLUDE[@]}" "${CTEST_EXTRA[@]}"
rc=$?
if [[ ${#CTEST_EXTRA[@]} -eq 0 ]]; then
  echo "sanitize.sh: the MPI tests, leak detection off (Open MPI's own leaks)"
  ASAN_OPTIONS="${ASAN_OPTIONS/detect_leaks=1/detect_leaks=0}" ctest --test-dir "$BUILD" --output-on-failure -R "$MPI_TESTS"
  rc2=$?
  [[ $rc -ne 0 ]] || rc=$rc2
fi
echo "sanitize.sh: tests took $(( $(date +%s) - t0 )) s, ctest exit status $rc"
exit $rc

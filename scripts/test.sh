#!/usr/bin/env bash
# Sets up everything (scripts/setup.sh: Debian packages, Release build) and runs the tests.
#
#   bash scripts/test.sh [--no-deps] [--build-dir DIR]
#
# The options are passed on to setup.sh. Tests run one at a time (ctest -j1): several of them
# use every core through OpenMP, and some time or compare runs, so running them side by side
# on a 2-core machine would only make them slower and noisier. Exit status: ctest's.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"

args=("$@")
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) BUILD_DIR="${2:-}"; shift; [[ $# -gt 0 ]] && shift ;;
    --build-dir=*) BUILD_DIR="${1#--build-dir=}"; shift ;;
    -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) shift ;;
  esac
done
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac

bash "$ROOT/scripts/setup.sh" "${args[@]+"${args[@]}"}"

echo "test: running ctest in $BUILD_DIR"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1

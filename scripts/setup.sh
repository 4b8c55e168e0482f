#!/usr/bin/env bash
# Sets up everything the project needs on Debian 12, then builds it (Release) into build/ and
# installs the Python package for /usr/bin/python3 (`import linformer` from any folder).
#
#   bash scripts/setup.sh [--no-deps] [--build-dir DIR]
#
#   --no-deps        skip the Debian package check (for machines set up some other way)
#   --build-dir DIR  build folder (default: build/ at the root of the repository)
#
# Idempotent: packages already installed are left alone (apt-get runs only when one is
# missing), and a second run only rebuilds what changed. As root it installs missing packages
# with apt-get; otherwise it prints the command to run and exits 1.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="$ROOT/build"
CHECK_DEPS=1

# Debian 12 packages (what each is for: DESIGN notes and README).
PACKAGES=(
  g++ cmake ninja-build pkg-config
  libdnnl-dev
  liblapack-dev
  libsentencepiece-dev sentencepiece
  libcli11-dev nlohmann-json3-dev libfmt-dev
  libgtest-dev libbenchmark-dev
  python3-torch python3-numpy
  pybind11-dev python3-dev python3-pytest  # the Python package (python/, docs/python.md) and its tests
  libopenblas0-openmp  # the BLAS of Debian's torch (else the reference BLAS: ~60x slower matmuls)
  nodejs npm
  libopenmpi-dev openmpi-bin
  dataset-fashion-mnist gzip
  libcpp-httplib-dev prometheus-cpp-dev  # `linformer serve`: HTTP server, Prometheus metrics
  chromium  # the server's page tested in a real browser (tests/serve/test_serve_browser.py)
)

say() { printf 'setup: %s\n' "$*"; }
die() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

usage() { sed -n '2,11p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-deps) CHECK_DEPS=0; shift ;;
    --build-dir)
      [[ $# -ge 2 && -n "$2" ]] || die "--build-dir needs a folder"
      BUILD_DIR="$2"; shift 2 ;;
    --build-dir=*) BUILD_DIR="${1#--build-dir=}"; [[ -n "$BUILD_DIR" ]] || die "--build-dir needs a folder"; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option: $1" ;;
  esac
done
# An absolute build folder, so that it means the same thing from wherever the script is run.
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$PWD/$BUILD_DIR" ;; esac

# --- 1. Debian packages ---------------------------------------------------------------------

# Prints the packages of PACKAGES that are neither installed nor provided by an installed
# package (e.g. a nodejs build that bundles npm provides "npm").
missing_packages() {
  local provided
  provided="$(dpkg-query -W -f='${db:Status-Abbrev}|${Package}, ${Provides}\n' 2>/dev/null |
    awk -F'|' '$1 ~ /^ii/ { n = split($2, a, /, */); for (i = 1; i <= n; i++) { sub(/ .*/, "", a[i]); sub(/:.*/, "", a[i]); if (a[i] != "") print a[i] } }' |
    sort -u)"
  local p
  for p in "${PACKAGES[@]}"; do
    grep -qxF -- "$p" <<<"$provided" || printf '%s\n' "$p"
  done
}

if [[ $CHECK_DEPS -eq 1 ]]; then
  if ! command -v dpkg-query >/dev/null 2>&1; then
    die "dpkg-query not found: this script installs Debian 12 packages. Install the equivalents of
  ${PACKAGES[*]}
then run it again with --no-deps."
  fi
  mapfile -t MISSING < <(missing_packages)
  if [[ ${#MISSING[@]} -eq 0 ]]; then
    say "all ${#PACKAGES[@]} Debian packages are installed"
  else
    say "missing Debian packages: ${MISSING[*]}"
    if [[ $(id -u) -ne 0 ]]; then
      {
        echo "setup: not root, so not installing them. Run:"
        echo "  sudo apt-get update && sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${MISSING[*]}"
        echo "then run this script again."
      } >&2
      exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    say "running apt-get update"
    apt-get update
    say "running apt-get install -y --no-install-recommends ${MISSING[*]}"
    apt-get install -y --no-install-recommends "${MISSING[@]}"
    mapfile -t STILL < <(missing_packages)
    [[ ${#STILL[@]} -eq 0 ]] || die "still missing after apt-get install: ${STILL[*]}"
    say "installed: ${MISSING[*]}"
  fi
else
  say "--no-deps: skipping the Debian package check"
fi

# --- 2. Configure and build (Release, Ninja) ------------------------------------------------

command -v cmake >/dev/null 2>&1 || die "cmake not found (install the package cmake, or run without --no-deps as root)"
command -v ninja >/dev/null 2>&1 || die "ninja not found (install the package ninja-build, or run without --no-deps as root)"

if [[ -f "$BUILD_DIR/CMakeCache.txt" ]] && ! grep -q '^CMAKE_GENERATOR:INTERNAL=Ninja$' "$BUILD_DIR/CMakeCache.txt"; then
  die "$BUILD_DIR was configured with another CMake generator; remove it or pass --build-dir DIR"
fi

JOBS="$(nproc 2>/dev/null || echo 2)"
say "configuring $BUILD_DIR (Release, Ninja)"
cmake -S "$ROOT" -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release
say "building with $JOBS jobs"
cmake --build "$BUILD_DIR" -j "$JOBS"

# --- 3. The Python package ------------------------------------------------------------------
# `cmake --install --component python` copies only the package (build/python/linformer/) into
# /usr/local/lib/python3.X/dist-packages, a folder Debian's /usr/bin/python3 imports from.
if [[ -d "$BUILD_DIR/python/linformer" ]]; then
  PY_DIR="$(cmake -L -N "$BUILD_DIR" 2>/dev/null | sed -n 's/^LINFORMER_PYTHON_INSTALL_DIR:STRING=//p')"
  PY_PREFIX="$(sed -n 's/^CMAKE_INSTALL_PREFIX:PATH=//p' "$BUILD_DIR/CMakeCache.txt")"
  case "$PY_DIR" in /*) ;; *) PY_DIR="$PY_PREFIX/$PY_DIR" ;; esac
  if mkdir -p "$PY_DIR" 2>/dev/null && [[ -w "$PY_DIR" ]]; then
    say "installing the Python package into $PY_DIR"
    cmake --install "$BUILD_DIR" --component python
    (cd / && /usr/bin/python3 -c "import linformer; print('setup: import linformer works (version', linformer.__version__ + ')')")
  else
    say "not installing the Python package ($PY_DIR is not writable); run as root:"
    say "  cmake --install $BUILD_DIR --component python"
  fi
else
  say "the Python package was not built (pybind11-dev or python3-dev missing)"
fi

# --- 4. The browser test's driver (npm) ----------------------------------------------------
# puppeteer-core (no browser download: it drives Debian's chromium) into BUILD/browser-test; the
# test skips with a message without it, so a failure here (no network) is not fatal.
if command -v npm >/dev/null 2>&1 && [[ ! -d "$BUILD_DIR/browser-test/node_modules/puppeteer-core" ]]; then
  say "installing puppeteer-core into $BUILD_DIR/browser-test (the page's browser test)"
  mkdir -p "$BUILD_DIR/browser-test"
  (cd "$BUILD_DIR/browser-test" && npm install --no-audit --no-fund puppeteer-core@25) ||
    say "npm install puppeteer-core failed: the browser test (ctest -R serve_browser) will be skipped"
fi
say "done: $BUILD_DIR/linformer"

#!/usr/bin/env bash
# The library as a product: installs the build into a fresh prefix, builds examples/inference
# against the INSTALLED package twice (CMake: find_package(linformer CONFIG) -> linformer::linformer,
# the shared library; pkg-config --static: the static library), and checks that both print the
# same hidden states, bit for bit, as `linformer forward` for the same ids.
#
#   check_installed_example.sh BUILD_DIR SOURCE_DIR
set -euo pipefail
BUILD="$(cd "$1" && pwd)"
SRC="$(cd "$2" && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"

cmake --install "$BUILD" --prefix "$prefix" >"$work/install.log"
libdir=$(dirname "$(find "$prefix" -name 'liblinformer.so' | head -1)")
[[ -f "$libdir/liblinformer.a" && -f "$libdir/cmake/linformer/linformerConfig.cmake" && -f "$libdir/pkgconfig/linformer.pc" ]] ||
  { echo "FAIL: the install is incomplete:"; find "$prefix" -maxdepth 4; exit 1; }
[[ -f "$prefix/include/linformer/inference.hpp" && ! -e "$prefix/include/linformer/datasets.hpp" ]] ||
  { echo "FAIL: public headers"; exit 1; }
echo "installed: $(cd "$prefix" && find . -type f | wc -l) files under a fresh prefix"

# 1. CMake package; nothing of the source or build tree on the example's paths.
cmake -S "$SRC/examples/inference" -B "$work/ex-cmake" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_PREFIX_PATH="$prefix" >"$work/ex-configure.log"
cmake --build "$work/ex-cmake" >"$work/ex-build.log"
if grep -E "^ *(INCLUDES|FLAGS|LINK_LIBRARIES|LINK_PATH) =.*($SRC/include|$BUILD/)" "$work/ex-cmake/build.ninja"; then
  echo "FAIL: the example's build reaches into the source or build tree"; exit 1
fi
ldd "$work/ex-cmake/hidden_states" | grep -q "$libdir/liblinformer.so" ||
  { echo "FAIL: the example does not use the installed shared library:"; ldd "$work/ex-cmake/hidden_states"; exit 1; }

# 2. pkg-config, static.
PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --modversion linformer
# shellcheck disable=SC2046
g++ -O2 "$SRC/examples/inference/hidden_states.cpp" -o "$work/hidden_states_static" \
  $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags linformer) \
  "$libdir/liblinformer.a" $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --static --libs-only-l --libs-only-other linformer | sed 's/-llinformer//')
if ldd "$work/hidden_states_static" | grep -q liblinformer; then echo "FAIL: static build links the shared library"; exit 1; fi

# 3. Same hidden states as `linformer forward`.
cd "$work"
cat >cfg.json <<'JSON'
{"vocab_size": 60, "max_len": 32, "d_model": 24, "n_heads": 2, "d_ff": 48, "n_layers": 2,
 "attention": "linformer", "k": [8], "sharing": "headwise"}
JSON
printf '5 6 7 8 9 10 11\n12 13 14\n20 21 22 23 24 25 26 27 28 29 30\n' >ids.txt
"$prefix/bin/linformer" init --config cfg.json --seed 3 --out m.safetensors >/dev/null
"$prefix/bin/linformer" forward --model m.safetensors --ids ids.txt --out out.safetensors >/dev/null
"$work/ex-cmake/hidden_states" m.safetensors ids.txt >shared.txt
"$work/hidden_states_static" m.safetensors ids.txt >static.txt
head -1 shared.txt
/usr/bin/python3 - "$SRC/tests/reference" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import numpy as np
from safetensors_io import load as read_safetensors
tensors, _ = read_safetensors("out.safetensors")
hidden, mask = tensors["hidden"], tensors["mask"]
for name in ("shared.txt", "static.txt"):
    rows = [l.split() for l in open(name) if not l.startswith("#")]
    want = [(b, t) for b in range(mask.shape[0]) for t in range(mask.shape[1]) if mask[b, t]]
    got = [(int(r[0]), int(r[1])) for r in rows]
    assert got == want, f"{name}: positions differ"
    vals = np.array([[float(v) for v in r[2:]] for r in rows], dtype=np.float32)
    ref = np.stack([hidden[b, t] for b, t in want])
    worst = float(np.max(np.abs(vals - ref)))
    print(f"{name}: {len(rows)} tokens x {vals.shape[1]}: worst |diff| against linformer forward = {worst:g}")
    assert np.array_equal(vals, ref), f"{name}: hidden states differ"
print("example: the installed library prints the same hidden states as linformer forward")
PY

#!/usr/bin/env bash
# The floors of the library (CMakeLists.txt, cmake/floors.cmake) are enforced by the build: each
# floor compiles against a view holding only its own and its lower floors' headers. This test
# proves it with the compiler itself, for every floor:
#   - every header the floor may see compiles when included from it (the view is complete);
#   - for every other floor, a header that one sees and this one does not (public or internal)
#     fails to compile with "No such file" (an include that runs up or sideways is rejected).
#
#   check_floors.sh CXX FLOORS_DIR     (FLOORS_DIR: build/floors)
set -uo pipefail
CXX="$1"
FLOORS="$2"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
fail=0
checked_ok=0
checked_rejected=0

# Headers a view offers: linformer/NAME.hpp and DIR/NAME.hpp (the floor's src folders), one per line.
headers_of() {
  (cd "$1" && find -L . -name '*.hpp' | sed 's|^\./||' | sort)
}

compile() {  # compile VIEW HEADER -> the compiler's output; status 0 when it compiled
  printf '#include "%s"\nint main() { return 0; }\n' "$2" >"$work/probe.cpp"
  "$CXX" -std=c++20 -fsyntax-only -fopenmp -I"$1" "$work/probe.cpp" 2>&1
}

floors=$(cd "$FLOORS" && ls)
for f in $floors; do
  view="$FLOORS/$f"
  mine="$work/$f.list"
  headers_of "$view" >"$mine"
  # Everything the floor sees compiles (only the public headers and the floor's own folders: a
  # lower floor's internal headers were compiled by that floor already).
  while read -r h; do
    if ! out=$(compile "$view" "$h"); then
      echo "FAIL floor $f: cannot include $h, which it should see:"; echo "$out" | head -5; fail=1
    else
      checked_ok=$((checked_ok + 1))
    fi
  done < <(grep '^linformer/' "$mine")
  for g in $floors; do
    [[ "$g" == "$f" ]] && continue
    theirs="$work/$g.theirs"
    headers_of "$FLOORS/$g" >"$theirs"
    # One public and one internal header that g sees and f does not.
    for pattern in '^linformer/' '^[^l]'; do
      h=$(comm -13 "$mine" "$theirs" | grep -m1 "$pattern" || true)
      [[ -z "$h" ]] && continue
      if out=$(compile "$view" "$h"); then
        echo "FAIL floor $f: including $h (floor $g) compiled; it must be rejected"; fail=1
      elif ! grep -q "$h: No such file" <<<"$out"; then
        echo "FAIL floor $f: including $h failed, but not as a missing file:"; echo "$out" | head -5; fail=1
      else
        checked_rejected=$((checked_rejected + 1))
      fi
    done
  done
done
echo "floors: $(wc -w <<<"$floors") floors; $checked_ok allowed includes compiled; $checked_rejected upward or sideways includes rejected"
[[ $checked_rejected -gt 0 ]] || { echo "FAIL: nothing was checked"; fail=1; }
exit $fail

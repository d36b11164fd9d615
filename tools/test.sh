#!/usr/bin/env bash
# Builds (when needed) and runs the whole test suite.
#   tools/test.sh             release build in ./build
#   tools/test.sh --sanitize  ASan + UBSan build in ./build-asan
#   tools/test.sh --valgrind  valgrind's memcheck over the release build's
#                             tests of suite memcheck (tests/meson.build)
# Prints every test's output (Check's summaries included) and ends with a
# "N passed, M failed" line over the test programs.
set -uo pipefail
cd "$(dirname "$0")/.."

dir=build
opts=()
mult=1
select=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-asan
  opts=(-Db_sanitize=address,undefined -Dbuildtype=debugoptimized -Db_lundef=false)
  mult=10
  export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
  export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
elif [ "${1:-}" = "--valgrind" ]; then
  command -v valgrind >/dev/null || { echo "tools/test.sh: valgrind is not installed"; exit 1; }
  select=(--setup memcheck --suite memcheck)
  mult=20 # Check's per-case timeouts too
fi

if [ ! -f "$dir/build.ninja" ]; then
  meson setup "$dir" "${opts[@]}" || exit 1
fi
ninja -C "$dir" || exit 1

log=$(mktemp)
CK_TIMEOUT_MULTIPLIER=$mult meson test -C "$dir" --print-errorlogs -v \
  --timeout-multiplier "$mult" "${select[@]}" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}

get() { awk -v k="$1" '$1 == k {print $2}' "$log" | tail -n 1; }
ok=$(get "Ok:"); fail=$(get "Fail:"); skip=$(get "Skipped:"); tmo=$(get "Timeout:")
rm -f "$log"
echo "skipped: ${skip:-0} (see SKIP lines above for the reasons)"
echo "${ok:-0} passed, $(( ${fail:-0} + ${tmo:-0} )) failed"
exit "$rc"

#!/usr/bin/env bash
# Sets up everything and runs the whole test suite twice: a normal build and
# an AddressSanitizer + UndefinedBehaviorSanitizer build, then the fuzz
# targets briefly over their corpora.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
"$here/scripts/deps.sh" --test

echo "== normal build"
"$here/scripts/build.sh" "$here/build"
(cd "$here/build" && ctest --output-on-failure -j2)

echo "== ASan + UBSan build"
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
"$here/scripts/build.sh" "$here/build-asan" -DSFU_SANITIZE=ON
(cd "$here/build-asan" && ctest --output-on-failure -j2)

echo "== fuzz targets (short run over the seed corpora)"
CC=clang "$here/scripts/build.sh" "$here/build-fuzz" -DSFU_FUZZ=ON -DSFU_TESTS=OFF
"$here/scripts/fuzz.sh" "$here/build-fuzz" "${SFU_FUZZ_SECONDS:-5}"
echo "== all tests passed"

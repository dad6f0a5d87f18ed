#!/usr/bin/env bash
# Runs every fuzz target in a build tree for N seconds over its corpus:
#   scripts/fuzz.sh BUILD_DIR [SECONDS]
# New inputs go to a scratch directory; the committed corpus is only read.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
dir=$1; secs=${2:-20}
for bin in "$dir"/tests/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); name=${name#fuzz_}
  scratch=$(mktemp -d)
  echo "fuzz $name: ${secs}s"
  "$bin" -max_total_time="$secs" -print_final_stats=0 "$scratch" \
    "$here/tests/fuzz/corpus/$name" 2>&1 | tail -2
  rm -rf "$scratch"
done

#!/usr/bin/env bash
# Runs the fuzz targets of a build tree (built with -DSFU_FUZZ=ON).
#
#   scripts/fuzz.sh BUILD_DIR [SECONDS]
#       every target for SECONDS (default 20) over its corpus; new inputs go
#       to a scratch directory, the committed corpus is only read (the test
#       suite's short run).
#   scripts/fuzz.sh --long BUILD_DIR [RUNS] [MAX_SECONDS] [TARGET...]
#       every target (or those named) for RUNS executions (default 10
#       million) or MAX_SECONDS (default 1800), whichever comes first; then
#       the inputs it found are merged into the committed corpus, keeping
#       only those that add coverage (libFuzzer -merge=1). Prints, per
#       target, executions, seconds, executions per second, coverage and
#       corpus size before and after; a crash stops the script with the
#       reproducer's path (crash-*, leak-*, timeout-*, oom-* in the current
#       directory).
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)

if [ "${1:-}" != "--long" ]; then
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
  exit 0
fi

shift
dir=$1; runs=${2:-10000000}; maxs=${3:-1800}
shift $(( $# < 3 ? $# : 3 ))
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  for bin in "$dir"/tests/fuzz/fuzz_*; do
    [ -x "$bin" ] && targets+=("$(basename "$bin" | sed 's/^fuzz_//')")
  done
fi
printf '%-10s %12s %8s %10s %8s %8s %8s\n' target execs seconds execs/s cov corpus0 corpus1
for name in "${targets[@]}"; do
  bin=$dir/tests/fuzz/fuzz_$name
  corpus=$here/tests/fuzz/corpus/$name
  mkdir -p "$corpus"
  before=$(find "$corpus" -type f | wc -l)
  scratch=$(mktemp -d)
  log=$(mktemp)
  t0=$(date +%s)
  if ! "$bin" -runs="$runs" -max_total_time="$maxs" -print_final_stats=1 \
       "$scratch" "$corpus" >"$log" 2>&1; then
    tail -40 "$log" >&2
    echo "fuzz $name: FAILED (reproducer above)" >&2
    exit 1
  fi
  secs=$(( $(date +%s) - t0 ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | sed 's/cov: //')
  "$bin" -merge=1 "$corpus" "$scratch" >/dev/null 2>&1
  after=$(find "$corpus" -type f | wc -l)
  printf '%-10s %12s %8s %10s %8s %8s %8s\n' "$name" "${execs:-?}" "$secs" \
    "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "${cov:-?}" "$before" "$after"
  rm -rf "$scratch" "$log"
done

#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/. `smoke` runs each briefly (CI); `long SECONDS` runs each
# for that long. Seeds come from the tcpdump corpus in ../shared when present.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-smoke}
secs=${2:-600}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "SKIP fuzz: cargo-fuzz not installed (scripts/setup.sh installs it)"
  # In CI a skipped check is a failure.
  if [ "${CI:-}" = true ]; then exit 1; fi
  exit 0
fi
targets=$(cargo fuzz list --fuzz-dir fuzz)
seed_dir=""
if [ -d ../shared/corpus/tcpdump-tests ]; then seed_dir=../shared/corpus/tcpdump-tests
elif [ "${CI:-}" = true ]; then echo "fuzz: ../shared/corpus/tcpdump-tests missing (needed for seeds in CI)" >&2; exit 1; fi
for t in $targets; do
  mkdir -p "fuzz/corpus/$t"
  if [ "$mode" = smoke ]; then limit=(-runs=20000 -max_total_time=30); else limit=(-max_total_time="$secs"); fi
  seeds=()
  case "$t" in capture_reader|sanitize_*) [ -n "$seed_dir" ] && seeds=("$seed_dir") ;; esac
  echo "== fuzz $t (${limit[*]})"
  cargo fuzz run --fuzz-dir fuzz -s none "$t" "fuzz/corpus/$t" "${seeds[@]}" -- "${limit[@]}" -max_len=65536 2>&1 | tail -n 3
done
echo "fuzz: all targets ran without a crash"

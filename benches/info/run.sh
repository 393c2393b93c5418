#!/usr/bin/env bash
# Benchmark of `netspectra info` against capinfos, tcpdump and cat on the same generated capture,
# in the same run, page cache warm. Prints throughput, packets/s, peak RSS and the ratios.
#   SIZE=1G RUNS=5 benches/info/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
source benches/lib.sh
SIZE=${SIZE:-1G}
RUNS=${RUNS:-5}
mkdir -p bench-data
f=bench-data/info-$SIZE.pcap
cargo build --release --locked -p netspectra >/dev/null 2>&1
bin=${CARGO_TARGET_DIR:-target}/release/netspectra
[ -s "$f" ] || $bin gen -o "$f" --size "$SIZE" --seed 42 >/dev/null
bytes=$(stat -c %s "$f")
packets=$(capinfos -c -M -T -r "$f" | awk -F'\t' '{print $2}')
warm_from_disk "$f" # page cache warm, in the state of a file read from disk

printf '%s: %d bytes, %d packets\n\n' "$f" "$bytes" "$packets"
printf '%-34s %9s %10s %12s %9s %8s\n' tool seconds MB/s packets/s RSS_MB vs_ours
declare -A secs rss
run() {
  local label=$1; shift
  measure "$RUNS" "$label" -- "$@"
  secs[$label]=$MEASURE_SECS
  rss[$label]=$MEASURE_RSS_KB
}
run "netspectra info" $bin info "$f"
run "capinfos -c" capinfos -c "$f"
run "tcpdump -r F -w /dev/null" tcpdump -r "$f" -w /dev/null
run "cat F > /dev/null" cat "$f"
ours=${secs["netspectra info"]}
for l in "netspectra info" "capinfos -c" "tcpdump -r F -w /dev/null" "cat F > /dev/null"; do
  s=${secs[$l]}
  awk -v l="$l" -v s="$s" -v b="$bytes" -v p="$packets" -v r="${rss[$l]}" -v o="$ours" 'BEGIN {
    printf "%-34s %9.3f %10.0f %12.0f %9.1f %7.2fx\n", l, s, b/s/1e6, p/s, r/1024, s/o }'
done
echo
echo "vs_ours = tool seconds / netspectra seconds (above 1: netspectra is faster)"

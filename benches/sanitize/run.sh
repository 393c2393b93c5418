#!/usr/bin/env bash
# Benchmark of `netspectra sanitize` against its peers on the same generated capture, same run.
#
#   benches/sanitize/run.sh [SIZE] [DATA_DIR]      (defaults: 1G, ./bench-data/sanitize)
#
# Generates the input once with `netspectra gen` (microsecond pcap, which every peer reads),
# then times with /usr/bin/time (each command RUNS times, default 3, fastest shown): all stages
# (pipelined, and single-threaded with --threads 1); dedup alone vs `editcap -d` (window 5), editcap
# with a 1000-frame window (ours with the same window) and a Python dpkt streaming baseline;
# anonymize alone vs `tcprewrite --seed` and pktanon (sample profile, full snaplen). Prints
# seconds (wall and CPU), MB/s of input, peak RSS and the ratio of the peer's wall time to ours.
# Finally checks that peak RSS stays flat from a 100 MB to a SIZE input.
set -euo pipefail

SIZE=${1:-1G}
DATA=${2:-./bench-data/sanitize}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
NS=${NETSPECTRA:-${CARGO_TARGET_DIR:-$ROOT/target}/release/netspectra}
mkdir -p "$DATA"

if [ ! -x "$NS" ]; then
  (cd "$ROOT" && cargo build --release -p netspectra)
fi

IN="$DATA/in-$SIZE.pcap"
SMALL="$DATA/in-100M.pcap"
[ -s "$IN" ] || "$NS" gen -o "$IN" --size "$SIZE" --seed 1 --format pcap-us --dup 0.05 >/dev/null
[ -s "$SMALL" ] || "$NS" gen -o "$SMALL" --size 100M --seed 1 --format pcap-us --dup 0.05 >/dev/null
KEY="$DATA/key.hex"
[ -s "$KEY" ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$KEY"
# Output on tmpfs so that the disk's write-back speed does not decide the result.
OUT=${OUT:-/dev/shm/netspectra-sanitize-bench.pcap}
BYTES=$(stat -c %s "$IN")
MB=$(awk -v b="$BYTES" 'BEGIN { printf "%.1f", b / 1e6 }')
echo "input: $IN ($MB MB, $(capinfos -c -M "$IN" | awk '/Number of packets/ {print $4}') packets)"
echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs"
echo

declare -A WALL
RUNS=${RUNS:-3}
echo "each command runs $RUNS times (RUNS=N); the run with the lowest wall time is shown"
# measure NAME CMD...: runs RUNS times, prints the fastest run's wall s, CPU s (user+sys), MB/s
# and peak RSS MB (RSS: the largest of the runs).
measure() {
  local name=$1
  shift
  local best="" bwall=0 buser=0 bsys=0 maxrss=0 i wall user sys rss
  for ((i = 0; i < RUNS; i++)); do
    rm -f "$OUT"
    sync
    /usr/bin/time -o "$DATA/time.txt" -f "%e %U %S %M" "$@" >/dev/null 2>"$DATA/stderr.txt" || {
      echo "$name failed:"; cat "$DATA/stderr.txt"; WALL[$name]=0; return 0; }
    read -r wall user sys rss <"$DATA/time.txt"
    if [ -z "$best" ] || awk -v a="$wall" -v b="$bwall" 'BEGIN { exit !(a < b) }'; then
      best=1; bwall=$wall; buser=$user; bsys=$sys
    fi
    [ "$rss" -gt "$maxrss" ] && maxrss=$rss
  done
  WALL[$name]=$bwall
  awk -v n="$name" -v w="$bwall" -v u="$buser" -v s="$bsys" -v r="$maxrss" -v b="$BYTES" 'BEGIN {
    printf "%-36s %7.2f s wall %7.2f s cpu %7.0f MB/s wall %7.0f MB/s cpu %7.1f MB RSS\n", n, w, u + s, b / 1e6 / w, b / 1e6 / (u + s + 1e-9), r / 1024 }'
}

ratio() {
  [ "${WALL[$1]}" != 0 ] && [ "${WALL[$2]}" != 0 ] || return 0
  awk -v a="${WALL[$1]}" -v b="${WALL[$2]}" -v n1="$1" -v n2="$2" 'BEGIN { printf "  ratio %s / %s = %.1fx\n", n1, n2, a / b }'
}

echo "== all stages (dedup + anonymize + mask), writing the output"
measure "netspectra sanitize (all)" "$NS" sanitize "$IN" -o "$OUT" --key-file "$KEY"
measure "netspectra (all) --threads 1" "$NS" sanitize "$IN" -o "$OUT" --key-file "$KEY" --threads 1
measure "cat (I/O floor)" sh -c "cat '$IN' > '$OUT'"
echo
echo "== dedup"
measure "netspectra --dedup (unlimited)" "$NS" sanitize "$IN" -o "$OUT" --dedup
measure "netspectra --dedup --dedup-window 5" "$NS" sanitize "$IN" -o "$OUT" --dedup --dedup-window 5
measure "editcap -d (window 5)" editcap -d "$IN" "$OUT"
ratio "editcap -d (window 5)" "netspectra --dedup (unlimited)"
measure "netspectra --dedup-window 1000" "$NS" sanitize "$IN" -o "$OUT" --dedup --dedup-window 1000
measure "editcap -D 1000" editcap -D 1000 "$IN" "$OUT"
ratio "editcap -D 1000" "netspectra --dedup-window 1000"
measure "python dpkt + set (unlimited)" "${PYTHON:-/usr/bin/python3}" "$ROOT/benches/sanitize/dedup_dpkt.py" "$IN" "$OUT"
ratio "python dpkt + set (unlimited)" "netspectra --dedup (unlimited)"
echo
echo "== anonymize"
measure "netspectra --anonymize" "$NS" sanitize "$IN" -o "$OUT" --anonymize --key-file "$KEY"
measure "tcprewrite --seed" tcprewrite --seed=42 -i "$IN" -o "$OUT"
ratio "tcprewrite --seed" "netspectra --anonymize"
if command -v pktanon >/dev/null; then
  PROFILE=/usr/share/doc/pktanon/examples/profiles/profile.xml
  measure "pktanon (sample profile)" pktanon -s 262144 -c "$PROFILE" "$IN" "$OUT"
  ratio "pktanon (sample profile)" "netspectra --anonymize"
else
  echo "pktanon not installed (Debian package pktanon)"
fi
echo
echo "== mask"
measure "netspectra --mask" "$NS" sanitize "$IN" -o "$OUT" --mask
measure "editcap -s 96 (truncation)" editcap -s 96 "$IN" "$OUT"
echo
echo "== peak RSS flatness (all stages)"
BYTES=$(stat -c %s "$SMALL")
measure "netspectra (all) 100M input" "$NS" sanitize "$SMALL" -o "$OUT" --key-file "$KEY"
BYTES=$(stat -c %s "$IN")
measure "netspectra (all) $SIZE input" "$NS" sanitize "$IN" -o "$OUT" --key-file "$KEY"
rm -f "$OUT"

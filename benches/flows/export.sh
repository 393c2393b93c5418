#!/usr/bin/env bash
# IPFIX export benchmark: softflowd and `netspectra flows --export` read the same capture and send
# IPFIX to their own nfcapd on 127.0.0.1, in the same run, one after the other (page cache warm):
#
#   benches/flows/export.sh [CAPTURE]     # default /tmp/netspectra-bench-flows/m1.pcap
#   RUNS=5 benches/flows/export.sh        # runs per tool (default 3; median wall, max RSS)
#   EXPORT_RATE=20000 benches/flows/export.sh   # the paced run's --export-rate (default 20000)
#
#   softflowd -r FILE -n 127.0.0.1:PORT -v 10 -m 1000000 -d -c none
#   netspectra flows FILE -q --no-records --json --export ipfix://127.0.0.1:PORT
#   netspectra flows ... --export-rate $EXPORT_RATE     (paced: datagrams per second)
#
# Prints per tool: wall seconds (median of RUNS) and peak RSS (max) from /usr/bin/time -v, the
# wall-time ratio softflowd/netspectra, the records each tool says it sent, and the records the
# collector stored (nfdump -o null over nfcapd's files) and its socket dropped (/proc/net/udp),
# so collector losses show. Each run gets a fresh nfcapd (default socket buffer) that is waited
# on until its receive queue is empty and then stopped with SIGTERM (it writes its file then).
# softflowd runs with `-c none`: with a control socket, softflowd 1.1.0 blocks in accept()
# before reading a file; `-m 1000000` keeps its table from evicting (as benches/flows/run.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
BIN=${BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/netspectra}
FILE=${1:-/tmp/netspectra-bench-flows/m1.pcap}
RUNS=${RUNS:-3}
EXPORT_RATE=${EXPORT_RATE:-20000}
[ -s "$FILE" ] || { echo "no capture $FILE (make one: netspectra gen -o FILE --packets 1000000 --seed 42)" >&2; exit 2; }
for t in softflowd nfcapd nfdump /usr/bin/time python3; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -x "$BIN" ] || (cd "$repo" && cargo build --release -p netspectra)
work=$(mktemp -d)
NFPID=
cleanup() { if [ -n "$NFPID" ]; then kill -TERM "$NFPID" 2>/dev/null || true; fi; rm -rf "$work"; }
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
# udp_line PORT -> the line of the socket bound to 127.0.0.1:PORT in /proc/net/udp (column 5:
# tx_queue:rx_queue in hex, last column: datagrams dropped)
udp_line() { grep -i " 0100007F:$(printf '%04X' "$1") " /proc/net/udp || true; }

start_collector() { # DIR PORT
  mkdir -p "$1"
  nfcapd -b 127.0.0.1 -p "$2" -w "$1" >"$1.log" 2>&1 &
  NFPID=$!
  for _ in $(seq 500); do [ -n "$(udp_line "$2")" ] && return; sleep 0.01; done
  echo "nfcapd did not start on port $2" >&2; exit 1
}
stop_collector() { # PORT -> sets DROPS (runs in this shell: `wait` needs nfcapd as its child)
  local line rx drops=0
  for _ in $(seq 500); do
    line=$(udp_line "$1"); [ -z "$line" ] && break
    rx=$((16#$(awk '{split($5, q, ":"); print q[2]}' <<<"$line")))
    drops=$(awk '{print $NF}' <<<"$line")
    [ "$rx" -eq 0 ] && break
    sleep 0.01
  done
  sleep 0.2
  kill -TERM "$NFPID"; wait "$NFPID" 2>/dev/null || true; NFPID=
  DROPS=$drops
}
stored() { # DIR -> flow records nfcapd stored
  nfdump -R "$1" -o null 2>/dev/null | awk -F'[ ,]+' '/^Summary: total flows:/ {print $4}'
}

# bench LABEL KIND CMD... ; KIND is softflowd or netspectra; the port goes where CMD says @PORT@
bench() {
  local label=$1 kind=$2; shift 2
  local walls=() rss=0 sent stored_n port dir args
  for r in $(seq "$RUNS"); do
    port=$(free_port); dir="$work/$kind-$r-$RANDOM"
    args=("${@//@PORT@/$port}")
    start_collector "$dir" "$port"
    /usr/bin/time -v "${args[@]}" >"$dir.out" 2>"$dir.err" || { echo "FAILED: $label"; tail -5 "$dir.err"; exit 1; }
    stop_collector "$port"
    stored_n=$(stored "$dir")
    time_v_report "$dir.err"
    if [ "$kind" = softflowd ]; then
      sent=$(sed -n 's/^Flows exported: .*(\([0-9]*\) records).*/\1/p' "$dir.out")
    else
      sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["ipfix"]["records"])' "$dir.out")
    fi
    walls+=("$TIME_WALL"); [ "$TIME_RSS_KB" -gt "$rss" ] && rss=$TIME_RSS_KB
    printf "  %-30s run %d: %6.2f s %7.1f MB  sent %8s records, collector stored %8s, socket drops %s\n" \
      "$label" "$r" "$TIME_WALL" "$(echo "$TIME_RSS_KB / 1024" | bc -l)" "$sent" "$stored_n" "$DROPS"
  done
  WALL=$(median "${walls[@]}")
  RSS_MB=$(echo "$rss / 1024" | bc -l)
}

warm_from_disk "$FILE"
echo "== IPFIX export: $FILE ($(stat -c %s "$FILE") bytes), $RUNS runs each, $(date -u +%FT%TZ)"
bench "softflowd -v 10" softflowd softflowd -r "$FILE" -n 127.0.0.1:@PORT@ -v 10 -m 1000000 -d -c none -p "$work/sf.pid"
SF_WALL=$WALL SF_RSS=$RSS_MB
bench "netspectra --export" netspectra "$BIN" flows "$FILE" -q --no-records --json --export ipfix://127.0.0.1:@PORT@
NS_WALL=$WALL NS_RSS=$RSS_MB
bench "netspectra --export-rate $EXPORT_RATE" netspectra "$BIN" flows "$FILE" -q --no-records --json --export ipfix://127.0.0.1:@PORT@ --export-rate "$EXPORT_RATE"
NP_WALL=$WALL NP_RSS=$RSS_MB
echo
printf "  %-30s %8s %8s %14s\n" tool wall_s rss_MB "softflowd/this"
printf "  %-30s %8.2f %8.1f %14s\n" "softflowd -v 10" "$SF_WALL" "$SF_RSS" "1.00x"
printf "  %-30s %8.2f %8.1f %13.2fx\n" "netspectra --export" "$NS_WALL" "$NS_RSS" "$(echo "$SF_WALL / $NS_WALL" | bc -l)"
printf "  %-30s %8.2f %8.1f %13.2fx\n" "netspectra --export-rate $EXPORT_RATE" "$NP_WALL" "$NP_RSS" "$(echo "$SF_WALL / $NP_WALL" | bc -l)"

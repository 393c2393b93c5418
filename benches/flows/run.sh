#!/usr/bin/env bash
# Flow benchmark: netspectra flows vs softflowd, argus, nfpcapd and tshark -z conv,ip on the
# same generated captures, page cache warm, in one run: m1 (~1M packets) and g1 (~1 GB) with the
# generator's default mix (many short flows: ~14 packets per flow), and b1 (~1M packets, mostly
# long bulk transfers: ~66 packets per flow, bulk-gen.yaml).
#
#   benches/flows/run.sh                 # all three files
#   SIZES=m1 benches/flows/run.sh        # only the 1M-packet file
#   SKIP_TSHARK=1 benches/flows/run.sh   # tshark takes ~30 s per GB
#
# Every command runs RUNS times (default 3; tshark once) and the fastest run is printed.
# Prints, per file and tool: wall seconds, CPU seconds (user+sys), packets/s by wall and by
# CPU time, peak RSS, and the CPU-time ratio to `netspectra flows` with 10 views on 1 thread.
# CPU time is the fairer measure on a shared machine; wall time is printed too. A `dd` row gives
# the floor: the time to copy the file out of the page cache on one thread.
# softflowd runs with `-c none`: with a control socket, softflowd 1.1.0 blocks in accept()
# before reading a file.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
BIN=${BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/netspectra}
DATA=${BENCH_DIR:-/tmp/netspectra-bench-flows}
SIZES=${SIZES:-"m1 g1 b1"}
mkdir -p "$DATA"
[ -x "$BIN" ] || (cd "$repo" && cargo build --release -p netspectra)

gen() { # name args...
  local n=$1; shift
  [ -s "$DATA/$n.pcap" ] || "$BIN" gen -o "$DATA/$n.pcap" --seed 42 --truth "$DATA/$n.json" "$@" >/dev/null
}
gen m1 --packets 1000000
gen g1 --size 1G
gen b1 --packets 1000000 --config "$here/bulk-gen.yaml"

# measure LABEL PACKETS CMD... -> one table row (fastest of RUNS runs, default 3; tshark once);
# the fastest run's stdout (our --json summary, if any) goes to $DATA/last.out
measure() {
  local label=$1 pk=$2; shift 2
  local runs=${RUNS:-3} wall user sys kb cpu rss
  case "$label" in tshark*) runs=1 ;; esac
  best_of "$runs" "$DATA/last.out" "$DATA/last.err" -- "$@" || {
    echo "  $label: FAILED ($(tail -1 "$DATA/last.err"))"; return; }
  read -r wall user sys kb <<<"$BEST_TIME"
  cpu=$(echo "$user + $sys" | bc -l)
  rss=$(echo "$kb / 1024" | bc -l)
  printf "  %-34s %8.2f %8.2f %9.2f %9.2f %9.1f" "$label" "$wall" "$cpu" \
    "$(echo "$pk/$wall/1000000" | bc -l)" "$(echo "$pk/$cpu/1000000" | bc -l)" "$rss"
  if [ -n "${REF_CPU:-}" ]; then printf " %8.2fx" "$(echo "$cpu/$REF_CPU" | bc -l)"; fi
  echo
  LAST_CPU=$cpu; LAST_RSS=$rss
}

for n in $SIZES; do
  f="$DATA/$n.pcap"
  pk=$(python3 -c "import json;print(json.load(open('$DATA/$n.json'))['packets'])")
  size=$(stat -c %s "$f")
  warm_from_disk "$f"
  echo
  echo "== $n: $f ($pk packets, $((size / 1000000)) MB)"
  printf "  %-34s %8s %8s %9s %9s %9s %9s\n" tool wall_s cpu_s Mpps_wall Mpps_cpu rss_MB cpu/ours
  out="$DATA/out"; rm -rf "$out"
  REF_CPU=
  measure "netspectra flows 1t 10 views" "$pk" "$BIN" flows "$f" -q --json -c "$here/views10.yaml" -o "$out"
  REF_CPU=$LAST_CPU
  cp "$DATA/last.out" "$DATA/summary-$n.json"
  rm -rf "$out"
  measure "netspectra flows 1t 1 view" "$pk" "$BIN" flows "$f" -q --json -c "$here/views1.yaml" -o "$out"; rm -rf "$out"
  measure "netspectra flows 2t 10 views" "$pk" "$BIN" flows "$f" -q --json -t 2 -c "$here/views10.yaml" -o "$out"; rm -rf "$out"
  measure "netspectra flows 1t records only" "$pk" "$BIN" flows "$f" -q --json --no-default-views --records "$DATA/flows.jsonl"
  measure "netspectra flows 1t table only" "$pk" "$BIN" flows "$f" -q --json --no-records
  # The floor on this machine: one thread copying the file out of the page cache, no framing
  # or decoding (its Mpps column is the most that one reader thread could deliver).
  measure "read floor: dd bs=2M" "$pk" dd if="$f" of=/dev/null bs=2M
  measure "softflowd -r" "$pk" softflowd -r "$f" -n 127.0.0.1:2055 -m 1000000 -d -c none -p "$DATA/sf.pid"
  rm -rf "$DATA/argus.out"
  measure "argus -r" "$pk" sh -c 'rm -f "$2" && exec argus -r "$1" -w "$2"' sh "$f" "$DATA/argus.out"
  rm -rf "$DATA/nf"; mkdir -p "$DATA/nf"
  measure "nfpcapd -r" "$pk" nfpcapd -r "$f" -w "$DATA/nf"
  if [ -z "${SKIP_TSHARK:-}" ]; then
    measure "tshark -q -z conv,ip" "$pk" tshark -n -q -z conv,ip -r "$f"
  fi
  python3 - "$DATA/summary-$n.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
t = s["table"]
print(f"  flows {s['flows']}, peak live flows {t['peak_live']}, flow table bytes at end "
      f"{s['table_bytes']} ({s['table_bytes'] / max(t['peak_live'], 1):.0f} B per peak live flow)")
PY
done

#!/usr/bin/env bash
# Live-capture benchmark over a veth pair between two network namespaces (root only).
#
# For each sender rate (64-byte frames, `netspectra replay --pps R` from namespace A), runs each
# capturer in namespace B and reports the kernel drop ratio; then prints the highest rate with zero
# drops and the drop ratio at the top rate the sender reaches. Also compares
# `netspectra replay --topspeed` (one thread and `--threads $RTHREADS`) with
# `tcpreplay --topspeed` on the same file.
#
#   sudo benches/capture/run.sh                # defaults
#   RATES="100000 300000" DUR=2 sudo -E benches/capture/run.sh
#
# Env: NETSPECTRA (binary; default: release build of this tree), RATES (pps list; "top" = as fast
# as the sender goes; "" skips the capture table), DUR (seconds per step, default 2), OUT_DIR
# (capture files; default a tmpfs folder so the disk is not what is measured), TCPDUMP_B (tcpdump
# -B KiB; default: its default), STHREADS (sender threads for the capture table, default 1; 2 puts
# the capturers under CPU pressure from a faster sender), RTHREADS (replay --threads for the threaded replay row; default
# the number of cores), RCPUS (its --cpus list; default none = not pinned).
# The namespaces and veths are created with unique names and always removed.
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then echo "SKIP: needs root (network namespaces, AF_PACKET)"; exit 0; fi
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
if [ -z "${NETSPECTRA:-}" ]; then
  (cd "$ROOT" && cargo build --release -q -p netspectra)
  NETSPECTRA="${CARGO_TARGET_DIR:-$ROOT/target}/release/netspectra"
fi
B="$NETSPECTRA"
RATES="${RATES-50000 100000 200000 300000 500000 750000 1000000 top}"
RTHREADS="${RTHREADS:-$(nproc)}"
STHREADS="${STHREADS:-1}"
RCPUS="${RCPUS:-}"
DUR="${DUR:-2}"
OUT_DIR="${OUT_DIR:-/dev/shm/netspectra-capture-bench-$$}"
mkdir -p "$OUT_DIR"

ID="$$"
NSA="nsbench${ID}a"; NSB="nsbench${ID}b"; IFA="vbn${ID}a"; IFB="vbn${ID}b"
cleanup() {
  # A run stopped half-way may leave a capturer or sender inside: end it before the namespace.
  for ns in "$NSA" "$NSB"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  ip netns del "$NSA" 2>/dev/null || true
  ip netns del "$NSB" 2>/dev/null || true
  rm -rf "$OUT_DIR"
}
trap cleanup EXIT INT TERM
for ns in "$NSA" "$NSB"; do
  ip netns add "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
done
ip link add "$IFA" netns "$NSA" type veth peer name "$IFB" netns "$NSB"
ip -n "$NSA" link set "$IFA" up
ip -n "$NSB" link set "$IFB" up

FILE="$OUT_DIR/frames64.pcap"
NFILE=200000
python3 "$HERE/gen_frames.py" "$FILE" "$NFILE" --size 64 --flows 256

echo "# load before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) cores; kernel $(uname -r)"

# replay RATE -> prints "pps_achieved packets"
replay() {
  local rate="$1" loops args
  if [ "$rate" = top ]; then
    loops=$(( (DUR * 1000000 + NFILE - 1) / NFILE )); args=(--topspeed)
  else
    loops=$(( (rate * DUR + NFILE - 1) / NFILE )); args=(--pps "$rate")
  fi
  ip netns exec "$NSA" "$B" replay -i "$IFA" "$FILE" "${args[@]}" --loop "$loops" --threads "$STHREADS" --json |
    python3 -c 'import json,sys; v=json.load(sys.stdin); print(int(v["pps"]), v["packets"])'
}

# CPU seconds (user+system) a process used so far, from /proc (read just before stopping it).
cpu_of() {
  awk -v t="$(getconf CLK_TCK)" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null || echo 0
}

# drive PID RATE: with the capturer PID started in the background, waits for it to settle,
# replays at RATE, stops it with SIGINT; leaves the capturer's CPU seconds while the sender ran
# (startup excluded) in $OUT_DIR/last_cpu and the replay's "pps packets" in $OUT_DIR/last_rate.
drive() {
  local pid=$1; sleep 0.7
  local c0; c0=$(cpu_of "$pid")
  replay "$2" >"$OUT_DIR/last_rate"
  sleep 0.5; python3 -c "import sys; print(float(sys.argv[2])-float(sys.argv[1]))" "$c0" "$(cpu_of "$pid")" >"$OUT_DIR/last_cpu"; kill -INT "$pid"; wait "$pid" || true
}

# Each capturer prints "received dropped" (kernel counters) after the run.
cap_netspectra() {
  ip netns exec "$NSB" "$B" capture -i "$IFB" -w "$OUT_DIR/ns.pcap" --json >"$OUT_DIR/ns.json" 2>/dev/null &
  drive $! "$1"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["kernel_received"], v["kernel_drops"])' "$OUT_DIR/ns.json"
}
# run_tcpdump RATE [ARGS...]: tcpdump on b's interface with extra ARGS; its stdout is discarded.
run_tcpdump() {
  local rate=$1; shift
  local bopt=(); [ -n "${TCPDUMP_B:-}" ] && bopt=(-B "$TCPDUMP_B")
  ip netns exec "$NSB" tcpdump -i "$IFB" -n -s 262144 "${bopt[@]}" "$@" >/dev/null 2>"$OUT_DIR/td.err" &
  drive $! "$rate"
  local recv drop
  recv=$(sed -n 's/^\([0-9]*\) packets\{0,1\} received by filter.*/\1/p' "$OUT_DIR/td.err")
  drop=$(sed -n 's/^\([0-9]*\) packets\{0,1\} dropped by kernel.*/\1/p' "$OUT_DIR/td.err")
  echo "${recv:-0} ${drop:-0}"
}
cap_tcpdump() { run_tcpdump "$1" -w "$OUT_DIR/td.pcap"; }
# tcpdump doing per-packet work: decoding and printing every packet (to /dev/null), the peer of
# `flows -i`, which also analyses every packet.
cap_tdprint() { run_tcpdump "$1"; }
HAVE_FLOWS=0
if "$B" flows --help 2>/dev/null | grep -q -- '--interface'; then HAVE_FLOWS=1; fi
cap_flows() {
  rm -rf "$OUT_DIR/flows"
  ip netns exec "$NSB" "$B" flows -i "$IFB" -o "$OUT_DIR/flows" --json --quiet >"$OUT_DIR/fl.json" 2>/dev/null &
  drive $! "$1"
  # flows reports packets processed; every frame sent reaches the socket (veth push-back makes
  # the sender retry), so drops = sent - processed.
  local got; got=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["input_packets"])' "$OUT_DIR/fl.json" 2>/dev/null || echo "")
  local sent; sent=$(cut -d' ' -f2 "$OUT_DIR/last_rate")
  if [ -z "$got" ]; then echo "NA NA"; else echo "$sent $(( sent > got ? sent - got : 0 ))"; fi
}

# The probe with its default analyses (flows + HTTP) writing every stream to files (issue 18):
# drops = kernel drops it reports (packets the kernel counted but never handed over).
HAVE_PROBE=0
if "$B" probe --help >/dev/null 2>&1; then HAVE_PROBE=1; fi
cap_probe() {
  rm -rf "$OUT_DIR/probe"
  ip netns exec "$NSB" "$B" probe -i "$IFB" --out "$OUT_DIR/probe" --json -q >"$OUT_DIR/pr.json" 2>/dev/null &
  drive $! "$1"
  python3 -c 'import json,sys; v=json.load(open(sys.argv[1])); print(v["packets"] + v["kernel_drops"], v["kernel_drops"])' "$OUT_DIR/pr.json" 2>/dev/null || echo "NA NA"
}

TOOLS=(netspectra tcpdump); [ "$HAVE_FLOWS" = 1 ] && TOOLS+=(flows)
[ "$HAVE_PROBE" = 1 ] && TOOLS+=(probe)
TOOLS+=(tdprint)
declare -A ZERO TOPRATIO
if [ -n "$RATES" ]; then
printf "%-10s %-12s %-12s %14s %12s %10s %12s\n" rate tool sent_pps kernel_recv dropped drop_% cpu_ns/pkt
for rate in $RATES; do
  for tool in "${TOOLS[@]}"; do
    out=$(cap_"$tool" "$rate")
    recv=${out% *}; drop=${out#* }
    sent_pps=$(cut -d' ' -f1 "$OUT_DIR/last_rate")
    if [ "$recv" = NA ]; then pct=NA; else
      pct=$(python3 -c "import sys; r,d=int(sys.argv[1]),int(sys.argv[2]); print('%.3f'%(100*d/r if r else 0))" "$recv" "$drop"); fi
    sent_n=$(cut -d' ' -f2 "$OUT_DIR/last_rate")
    cpuns=$(python3 -c "import sys; c,n=float(sys.argv[1]),int(sys.argv[2]); print('%.0f'%(c*1e9/n if n else 0))" "$(cat "$OUT_DIR/last_cpu")" "$sent_n")
    printf "%-10s %-12s %-12s %14s %12s %10s %12s\n" "$rate" "$tool" "$sent_pps" "$recv" "$drop" "$pct" "$cpuns"
    if [ "$drop" = 0 ]; then
      prev=${ZERO[$tool]:-0}; [ "$sent_pps" -gt "$prev" ] && ZERO[$tool]=$sent_pps
    fi
    [ "$rate" = top ] && TOPRATIO[$tool]="$pct% at $sent_pps pps"
  done
done
echo
echo "# highest sender rate with zero kernel drops / drop ratio at the top sender rate"
for tool in "${TOOLS[@]}"; do
  printf "%-12s zero-drop up to %8s pps; top: %s\n" "$tool" "${ZERO[$tool]:-none}" "${TOPRATIO[$tool]:-n/a}"
done
echo
fi

echo "# replay --topspeed (1 and $RTHREADS threads) vs tcpreplay --topspeed, same file ($NFILE x 64-byte frames, x5), nothing capturing"
loops=5
TF="$OUT_DIR/time"
nsrep() {  # nsrep TIMEFILE EXTRA_ARGS... -> wall pps
  local tf="$1"; shift
  ip netns exec "$NSA" /usr/bin/time -o "$tf" -f "%U %S" "$B" replay -i "$IFA" "$FILE" --topspeed --loop $loops --json "$@" |
    python3 -c 'import json,sys; print(int(json.load(sys.stdin)["pps"]))'
}
ns=$(nsrep "$TF.ns")
nst=$(nsrep "$TF.nst" --threads "$RTHREADS" ${RCPUS:+--cpus "$RCPUS"})
tr=$(ip netns exec "$NSA" /usr/bin/time -o "$TF.tr" -f "%U %S" tcpreplay -q -i "$IFA" --topspeed --loop $loops "$FILE" 2>&1 |
  sed -n 's/.*Rated: .* \([0-9.]*\) pps.*/\1/p' | cut -d. -f1)
N=$((NFILE * loops))
percpu() { python3 -c "import sys; u,s=map(float,open(sys.argv[1]).read().split()[-2:]); print('%.0f'%(int(sys.argv[2])/max(u+s,1e-9)))" "$1" "$N"; }
ratio() { python3 -c "import sys; print('%.2f'%(int(sys.argv[1])/max(1,int(sys.argv[2] or 0))))" "$1" "${2:-0}"; }
printf "%-30s %12s %22s\n" tool wall_pps "pps_per_cpu_second"
printf "%-30s %12s %22s\n" "netspectra replay" "$ns" "$(percpu "$TF.ns")"
printf "%-30s %12s %22s\n" "netspectra replay --threads $RTHREADS" "$nst" "$(percpu "$TF.nst")"
printf "%-30s %12s %22s\n" tcpreplay "${tr:-NA}" "$(percpu "$TF.tr")"
printf "ratio (wall) replay / tcpreplay              %8s\n" "$(ratio "$ns" "$tr")"
printf "ratio (wall) replay --threads %s / tcpreplay  %8s\n" "$RTHREADS" "$(ratio "$nst" "$tr")"
printf "ratio (wall) replay --threads %s / replay     %8s\n" "$RTHREADS" "$(ratio "$nst" "$ns")"
echo "(pps per CPU-second: packets / (user+sys) of the sender; on veth the receive side runs in the"
echo " sender's system time too, so this is the whole per-packet cost of sending on this box)"
echo "# load after: $(cut -d' ' -f1-3 /proc/loadavg)"

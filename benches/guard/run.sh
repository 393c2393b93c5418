#!/usr/bin/env bash
# Guard benchmarks (root; not a timed test). Prints markdown tables with ratios.
#
#   cargo build --release -p netspectra -p netspectra-guard --example guard_bench
#   sudo benches/guard/run.sh            # DUR=5 seconds per measurement, ROUNDS=3 by default
#
# 1. BPF_PROG_TEST_RUN per-packet cost (guard_bench testrun, repeat 1e6).
# 2. kernel.bpf_stats_enabled run_time_ns/run_cnt under real traffic (reset to 0 afterwards).
# 3. End to end over a veth pair between two namespaces created here: iperf3 TCP throughput,
#    sockperf UDP ping-pong p50 latency, 64-byte UDP flood sent with `netspectra replay
#    --topspeed` (falls back to iperf3 -u -l 18 when replay is missing), for: no program, an
#    empty TC program (the hook's own cost), the guard (10k rules, 100k sessions) in ROUNDS
#    alternating rounds (medians), then once each nftables 1000-rule netdev chain and set-based.
# 4. Map memory (bpftool map show, bytes_memlock) with 100k sessions + 10k / 100k rules.
set -euo pipefail
cd "$(dirname "$0")/../.."

T=${CARGO_TARGET_DIR:-target}
BIN=${NETSPECTRA:-$T/release/netspectra}
GB=${GUARD_BENCH:-$T/release/examples/guard_bench}
DUR=${DUR:-5}
REPEAT=${REPEAT:-1000000}
[ "$(id -u)" -eq 0 ] || { echo "run as root (namespaces, BPF, nftables)" >&2; exit 1; }
for t in "$BIN" "$GB"; do [ -x "$t" ] || { echo "missing $t: build it first (see header)" >&2; exit 1; }; done
for t in iperf3 sockperf nft bpftool jq python3; do command -v $t >/dev/null || { echo "missing $t: run scripts/setup.sh" >&2; exit 1; }; done

ID=$$
A=gbA$ID; B=gbB$ID; VA=gvA$ID; VB=gvB$ID
WORK=$(mktemp -d /tmp/guard-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  # `inB sockperf server &` records the subshell's pid, not the server's: end whatever still
  # runs inside the namespaces, or the servers outlive the run and load later benchmarks.
  for ns in "$A" "$B"; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  done
  sleep 0.3
  sysctl -qw kernel.bpf_stats_enabled=0 || true
  ip netns del "$A" 2>/dev/null || true
  ip netns del "$B" 2>/dev/null || true
  rm -rf "/sys/fs/bpf/netspectra/$VB" "/run/netspectra/$VB.json" "$WORK"
}
trap cleanup EXIT

inA() { ip netns exec "$A" "$@"; }
inB() { ip netns exec "$B" "$@"; }

ip netns add "$A"; ip netns add "$B"
ip link add "$VA" netns "$A" type veth peer name "$VB" netns "$B"
inA ip addr add 10.77.0.1/24 dev "$VA"; inB ip addr add 10.77.0.2/24 dev "$VB"
for ns in "$A" "$B"; do ip -n "$ns" link set lo up; done
inA ip link set "$VA" up; inB ip link set "$VB" up
MAC_A=$(inA cat /sys/class/net/$VA/address); MAC_B=$(inB cat /sys/class/net/$VB/address)

inB sockperf server -i 10.77.0.2 -p 11111 >/dev/null 2>&1 & PIDS+=($!)
sleep 0.5

# 64-byte frames (60 + FCS), 256 UDP flows to the discard port (no listener: counted as NoPorts)
python3 - "$MAC_A" "$MAC_B" "$WORK/flood.pcap" <<'EOF'
import struct, sys
src, dst, out = bytes.fromhex(sys.argv[1].replace(':','')), bytes.fromhex(sys.argv[2].replace(':','')), sys.argv[3]
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b)//2), b)); s = (s >> 16) + (s & 0xffff); s += s >> 16
    return (~s) & 0xffff
with open(out, 'wb') as f:
    f.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(256):
        udp = struct.pack('!HHHH', 10000 + i, 9, 8 + 18, 0) + b'\xab' * 18
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i, 0x4000, 64, 17, 0, bytes([10,77,0,1]), bytes([10,77,0,2]))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        fr = dst + src + b'\x08\x00' + ip + udp
        f.write(struct.pack('<IIII', 0, i, len(fr), len(fr)) + fr)
EOF

"$GB" policy 10000 > "$WORK/p10k.yaml"
"$GB" policy 100000 > "$WORK/p100k.yaml"

tput() {
  inB iperf3 -s -1 >/dev/null 2>&1 & local s=$!; sleep 0.3
  inA iperf3 -c 10.77.0.2 -t "$DUR" -J > "$WORK/iperf.json" 2>/dev/null || true
  wait $s 2>/dev/null || true
  jq -r '.end.sum_received.bits_per_second / 1e7 | round / 100' "$WORK/iperf.json" 2>/dev/null || echo 0
}
lat() {
  inA sockperf ping-pong -i 10.77.0.2 -p 11111 -m 64 -t "$DUR" 2>&1 | awk '/percentile 50.000/ {print $NF}'
}
noports() { inB awk '/^Udp: [0-9]/ {print $3 + $2}' /proc/net/snmp; }
flood() {
  # fixed duration: replay runs DUR seconds (SIGINT), the rate is what reached UDP in namespace B
  local before after t0 t1
  before=$(noports); t0=$(date +%s.%N)
  rm -f "$WORK/replay.json"
  if "$BIN" replay --help >/dev/null 2>&1; then
    inA timeout -s INT "$DUR" "$BIN" replay -i "$VA" "$WORK/flood.pcap" --topspeed --loop 100000000 --json > "$WORK/replay.json" 2>/dev/null || true
  else
    inA iperf3 -c 10.77.0.2 -u -l 18 -b 0 -t "$DUR" >/dev/null 2>&1 || true
  fi
  t1=$(date +%s.%N); after=$(noports)
  python3 -c "print(f'{($after - $before) / ($t1 - $t0) / 1e6:.3f}')"
}

declare -A R
flood_sent() { R[$1,sent]=$(jq -r '(.pps // 0) / 1e6 | . * 1000 | round / 1000' "$WORK/replay.json" 2>/dev/null || echo "-"); }
mem() { local tot=0 per="" b; for m in guard_config sessions dst_lpm rule_lpm exact nodes port_class counters events frags; do  # + clock_cache (not pinned, 16 B per CPU)
  b=$(bpftool map show pinned "/sys/fs/bpf/netspectra/$VB/$m" -j | jq '.bytes_memlock'); tot=$((tot + b)); per="$per $m=$((b / 1024))K"; done
  echo "$tot|$per"; }
measure() {
  local name=$1
  R[$name,tput]=$(tput); R[$name,lat]=$(lat); R[$name,flood]=$(flood); flood_sent "$name"
  echo "  $name: ${R[$name,tput]} Gbit/s, p50 ${R[$name,lat]} us, flood ${R[$name,flood]} Mpps delivered" >&2
}
median() { python3 -c "import statistics, sys; print(f'{statistics.median(map(float, sys.argv[1:])):.3f}')" "$@"; }

start_guard() {
  local policy=$1 sessions=$2 max=${3:-131072}
  nsenter --net=/var/run/netns/"$B" "$BIN" guard run -i "$VB" --policy "$policy" --max-sessions "$max" 2>"$WORK/guard.err" & GUARD_PID=$!
  PIDS+=($GUARD_PID)
  for _ in $(seq 1 600); do [ -e "/run/netspectra/$VB.json" ] && break; sleep 0.1; done
  [ -e "/run/netspectra/$VB.json" ] || { cat "$WORK/guard.err" >&2; exit 1; }
  [ "$sessions" -gt 0 ] && "$GB" fill "$VB" "$sessions" 2>/dev/null
  return 0
}
stop_guard() { kill -INT "$GUARD_PID"; wait "$GUARD_PID" 2>/dev/null || true; }
# The empty classifier (returns TC_ACT_OK) attached like the guard: what the TC hook itself costs.
start_empty() {
  nsenter --net=/var/run/netns/"$B" "$GB" empty "$VB" "$WORK/empty.o" 2>"$WORK/empty.err" & EMPTY_PID=$!
  PIDS+=($EMPTY_PID)
  for _ in $(seq 1 100); do grep -q attached "$WORK/empty.err" 2>/dev/null && return 0; sleep 0.1; done
  cat "$WORK/empty.err" >&2; exit 1
}
stop_empty() { kill -INT "$EMPTY_PID"; wait "$EMPTY_PID" 2>/dev/null || true; }
prog_stats() { bpftool prog show id "$1" -j | jq -r '"\(.run_time_ns // 0) \(.run_cnt // 0)"'; }
guard_prog_id() {
  local sid; sid=$(bpftool map show pinned "/sys/fs/bpf/netspectra/$VB/sessions" -j | jq .id)
  bpftool prog show -j | jq --argjson m "$sid" '[.[] | select(.name=="guard_tc" and ((.map_ids // []) | index($m) != null))][0].id'
}

echo "## 1. BPF_PROG_TEST_RUN" >&2
echo
echo "### BPF_PROG_TEST_RUN (repeat $REPEAT; an empty TC program measures ~25 ns on this machine: harness overhead)"
"$GB" testrun "$REPEAT" 2>"$WORK/testrun.err"
cat "$WORK/testrun.err" | sed 's/^/    /'
TRIV="$WORK/empty.o"
printf '#include <linux/bpf.h>\n#include <bpf/bpf_helpers.h>\nSEC("classifier") int empty(struct __sk_buff *s) { return 0; }\nchar LICENSE[] SEC("license") = "GPL";\n' > "$WORK/empty.c"
clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -c "$WORK/empty.c" -o "$TRIV"
bpftool prog load "$TRIV" "/sys/fs/bpf/gbtriv$ID" type classifier
head -c 64 /dev/zero > "$WORK/f64"
echo
echo "empty TC program (harness baseline): $(bpftool prog run pinned /sys/fs/bpf/gbtriv$ID data_in "$WORK/f64" repeat "$REPEAT" | sed -n 's/.*average): //p')"
rm -f "/sys/fs/bpf/gbtriv$ID"

echo "## 2. bpf_stats under real traffic" >&2
echo
echo "### kernel.bpf_stats_enabled: guard_tc run_time_ns / run_cnt under a 64-byte UDP flood (256 flows, cache hits) and iperf3 TCP"
echo
echo "| sessions in map | traffic | runs | ns/run |"
echo "|---:|---|---:|---:|"
for n in 1000 100000; do
  start_guard "$WORK/p10k.yaml" $((n - 256))
  PID=$(guard_prog_id)
  sysctl -qw kernel.bpf_stats_enabled=1
  read -r t0 c0 < <(prog_stats "$PID"); flood >/dev/null; read -r t1 c1 < <(prog_stats "$PID")
  echo "| $n | 64 B UDP flood | $((c1 - c0)) | $(python3 -c "print(f'{($t1-$t0)/max(1,$c1-$c0):.1f}')") |"
  read -r t0 c0 < <(prog_stats "$PID"); tput >/dev/null; read -r t1 c1 < <(prog_stats "$PID")
  echo "| $n | iperf3 TCP (TSO super-packets: one run per skb) | $((c1 - c0)) | $(python3 -c "print(f'{($t1-$t0)/max(1,$c1-$c0):.1f}')") |"
  sysctl -qw kernel.bpf_stats_enabled=0
  stop_guard
done

echo "## 3. end to end" >&2
# Throughput, latency and the flood differ by a few percent between setups, about as much as the
# machine drifts within a run, so no program, the empty program and the guard take turns in
# ROUNDS rounds and the median of each is compared (nftables, far off, runs once).
setup_on() { case $1 in empty) start_empty ;; guard) start_guard "$WORK/p10k.yaml" 100000 ;; esac; }
setup_off() { case $1 in empty) stop_empty ;; guard) stop_guard ;; esac; }
declare -A S
for r in $(seq 1 "${ROUNDS:-3}"); do
  for n in none empty guard; do
    setup_on $n
    S[$n,tput]+=" $(tput)"; S[$n,lat]+=" $(lat)"; S[$n,flood]+=" $(flood)"; flood_sent $n
    if [ "$n" = guard ] && [ "$r" = 1 ]; then M=$(mem); R[guard,mem]=${M%%|*}; R[guard,maps]=${M#*|}; fi
    setup_off $n
    echo "  round $r $n: ${S[$n,tput]##* } Gbit/s, p50 ${S[$n,lat]##* } us, flood ${S[$n,flood]##* } Mpps" >&2
  done
done
for n in none empty guard; do
  for m in tput lat flood; do
    # shellcheck disable=SC2086
    R[$n,$m]=$(median ${S[$n,$m]}); R[$n,$m,all]=${S[$n,$m]# }
  done
done

# nftables: 1000 rules that never match the benchmark traffic, evaluated in order
{
  echo "table netdev gbench {"
  echo "  chain in { type filter hook ingress device \"$VB\" priority 0; policy accept;"
  for i in $(seq 0 999); do
    proto=$([ $((i % 5)) -eq 0 ] && echo udp || echo tcp)
    echo "    ip saddr 198.18.$((i / 256)).$((i % 256)) $proto dport $((1000 + i)) drop"
  done
  echo "  }"
  echo "}"
} > "$WORK/chain.nft"
inB nft -f "$WORK/chain.nft"
measure nft_chain
inB nft delete table netdev gbench
{
  echo "table netdev gbench {"
  echo "  set blk { type ipv4_addr . inet_proto . inet_service; flags interval; }"
  echo "  chain in { type filter hook ingress device \"$VB\" priority 0; policy accept;"
  echo "    ip saddr . ip protocol . th dport @blk drop"
  echo "  }"
  echo "}"
  echo -n "add element netdev gbench blk { "
  for i in $(seq 0 999); do
    proto=$([ $((i % 5)) -eq 0 ] && echo udp || echo tcp)
    echo -n "198.18.$((i / 256)).$((i % 256)) . $proto . $((1000 + i))"; [ $i -lt 999 ] && echo -n ", "
  done
  echo " }"
} > "$WORK/set.nft"
inB nft -f "$WORK/set.nft"
measure nft_set
inB nft delete table netdev gbench

start_guard "$WORK/p100k.yaml" 100000
M=$(mem); R[g100k,mem]=${M%%|*}; R[g100k,maps]=${M#*|}
stop_guard
start_guard "$WORK/p100k.yaml" 100000 110000
M=$(mem); R[g100ks,mem]=${M%%|*}; R[g100ks,maps]=${M#*|}
stop_guard

ratio() { python3 -c "a,b=float('${1:-0}' or 0),float('${2:-0}' or 0); print(f'{a/b:.3f}' if b else '-')"; }
echo
echo "### End to end over veth (DUR=${DUR}s each; 2 cores shared by sender and receiver)"
echo
echo "| setup | iperf3 TCP Gbit/s | ratio | sockperf p50 us | delta us | 64 B flood delivered Mpps | ratio | flood sent Mpps |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for n in none empty guard nft_chain nft_set; do
  d=$(python3 -c "print(f'{float(\"${R[$n,lat]:-0}\") - float(\"${R[none,lat]:-0}\"):+.3f}')")
  echo "| $n | ${R[$n,tput]} | $(ratio "${R[$n,tput]}" "${R[none,tput]}") | ${R[$n,lat]} | $d | ${R[$n,flood]} | $(ratio "${R[$n,flood]}" "${R[none,flood]}") | ${R[$n,sent]:--} |"
done
echo
echo "none, empty and guard: medians of ${ROUNDS:-3} alternating rounds; every round:"
echo
for n in none empty guard; do
  echo "- $n: TCP ${R[$n,tput,all]} Gbit/s; p50 ${R[$n,lat,all]} us; flood ${R[$n,flood,all]} Mpps"
done
echo
echo "guard / empty program (the guard's own cost beyond the hook's): TCP $(ratio "${R[guard,tput]}" "${R[empty,tput]}"), flood $(ratio "${R[guard,flood]}" "${R[empty,flood]}")"
echo
echo "### Map memory (bytes_memlock from bpftool map show)"
echo
mib() { python3 -c "b=${1:-0}; print(f'{b/1048576:.2f} MiB ({b/1e6:.2f} MB)')"; }
echo "| policy | sessions (--max-sessions) | total | per map (KiB) |"
echo "|---|---:|---:|---|"
echo "| 10k rules | 100k (131072) | $(mib "${R[guard,mem]}") | ${R[guard,maps]} |"
echo "| 100k rules | 100k (131072) | $(mib "${R[g100k,mem]}") | ${R[g100k,maps]} |"
echo "| 100k rules | 100k (110000) | $(mib "${R[g100ks,mem]}") | ${R[g100ks,maps]} |"

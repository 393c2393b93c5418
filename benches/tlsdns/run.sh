#!/usr/bin/env bash
# Benchmark `netspectra tls` and `netspectra dns` against tshark on the same generated captures,
# and the probe's cost of TLS and DNS on top of flows and HTTP (one decode per packet).
#
# Usage: benches/tlsdns/run.sh [SIZE] [SMALL_SIZE]     (defaults 1G and 100M)
# Environment: NETSPECTRA (binary, default ${CARGO_TARGET_DIR:-target}/release/netspectra),
# BENCH_DIR (default /tmp/netspectra-bench-tlsdns), SEED (default 42), RUNS (default 3),
# BIG_TSHARK=1 (tshark on the big capture too: about 2 minutes per tshark run).
#
# Both captures come from benches/tlsdns/mix.yaml (TLS, QUIC and DNS heavy). tshark is ~100x
# slower, so it and ours are compared on the SMALL capture (same traffic, same run); ours and
# the probe also run on the big one. Prints one line per run: wall seconds (fastest of RUNS;
# tshark runs once), CPU seconds, peak RSS, records found, and the ratio to the first line.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
BIN=${NETSPECTRA:-${CARGO_TARGET_DIR:-target}/release/netspectra}
DIR=${BENCH_DIR:-/tmp/netspectra-bench-tlsdns}
SEED=${SEED:-42}
SIZE=${1:-1G}
SMALL=${2:-100M}
MIX=$(cd "$(dirname "$0")" && pwd)/mix.yaml
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p netspectra" >&2; exit 1; }

gen() { # name size
    local f="$DIR/$1.pcap"
    if [ ! -s "$f" ]; then
        "$BIN" gen -o "$f" --config "$MIX" --size "$2" --seed "$SEED" --truth "$DIR/$1.json" >&2
    fi
    warm_from_disk "$f"
}

# "wall cpu rss_mb" of the fastest of N runs of a command (stdout to $DIR/out).
timed() { # runs cmd...
    local n=$1; shift
    best_of "$n" "$DIR/out" "$DIR/err" -- "$@" || { tail -3 "$DIR/err" >&2; echo "0 0 0"; return; }
    read -r w u s kb <<<"$BEST_TIME"
    python3 -c "print(f'{$w:.3f} {$u+$s:.3f} {$kb/1024:.1f}')"
}

line() { # label wall cpu rss records base_wall
    python3 - "$@" <<'PY'
import sys
label, wall, cpu, rss, recs, base = sys.argv[1:7]
ratio = float(wall) / float(base) if float(base) > 0 else 0
print(f"{label:<58} {float(wall):8.3f} s wall {float(cpu):8.3f} s CPU {float(rss):8.1f} MB  records {recs:>8}  {ratio:7.1f}x ours")
PY
}

count() { python3 -c "import json;print(json.load(open('$DIR/out'))['records'])"; }

gen big "$SIZE"
gen small "$SMALL"
RUNS=${RUNS:-3}
mb() { du -m "$1" | cut -f1; }

echo "== TLS vs tshark: $(mb "$DIR/small.pcap") MB"
read -r w c r < <(timed "$RUNS" "$BIN" tls "$DIR/small.pcap" -o /dev/null --summary json -q)
base=$w
line "netspectra tls" "$w" "$c" "$r" "$(count)" "$base"
read -r w c r < <(timed 1 tshark -n -r "$DIR/small.pcap" -Y 'tls.handshake.type==1' -T fields \
    -e tls.handshake.extensions_server_name)
line "tshark -Y tls.handshake.type==1 -T fields -e ..._server_name" "$w" "$c" "$r" "$(wc -l <"$DIR/out")" "$base"

echo "== DNS vs tshark: $(mb "$DIR/small.pcap") MB"
read -r w c r < <(timed "$RUNS" "$BIN" dns "$DIR/small.pcap" -o /dev/null --summary json -q)
base=$w
line "netspectra dns" "$w" "$c" "$r" "$(count)" "$base"
read -r w c r < <(timed 1 tshark -n -r "$DIR/small.pcap" -Y dns -T fields \
    -e dns.id -e dns.qry.name -e dns.qry.type -e dns.flags.rcode)
line "tshark -Y dns -T fields (id, qname, qtype, rcode)" "$w" "$c" "$r" "$(wc -l <"$DIR/out")" "$base"

echo "== big capture: $(mb "$DIR/big.pcap") MB"
read -r w c r < <(timed "$RUNS" "$BIN" tls "$DIR/big.pcap" -o /dev/null --summary json -q)
base=$w
line "netspectra tls" "$w" "$c" "$r" "$(count)" "$base"
if [ -n "${BIG_TSHARK:-}" ]; then
    read -r w c r < <(timed 1 tshark -n -r "$DIR/big.pcap" -Y 'tls.handshake.type==1' -T fields \
        -e tls.handshake.extensions_server_name)
    line "tshark -Y tls.handshake.type==1 -T fields -e ..._server_name" "$w" "$c" "$r" "$(wc -l <"$DIR/out")" "$base"
fi
read -r w c r < <(timed "$RUNS" "$BIN" dns "$DIR/big.pcap" -o /dev/null --summary json -q)
base=$w
line "netspectra dns" "$w" "$c" "$r" "$(count)" "$base"
if [ -n "${BIG_TSHARK:-}" ]; then
    read -r w c r < <(timed 1 tshark -n -r "$DIR/big.pcap" -Y dns -T fields \
        -e dns.id -e dns.qry.name -e dns.qry.type -e dns.flags.rcode)
    line "tshark -Y dns -T fields (id, qname, qtype, rcode)" "$w" "$c" "$r" "$(wc -l <"$DIR/out")" "$base"
fi

echo "== probe on the big capture, files sink in $DIR/probe-out"
probe() { # name analyses-yaml
    printf 'analyses:\n%b\nsinks:\n  - type: files\n    dir: %s\n' "$2" "$DIR/probe-out" >"$DIR/$1.yaml"
    timed "$RUNS" sh -c 'rm -rf "$1" && exec "$2" probe -q --config "$3" --read "$4"' sh \
        "$DIR/probe-out" "$BIN" "$DIR/$1.yaml" "$DIR/big.pcap"
}
read -r w c r < <(probe flows "  flows: {}")
base=$w
line "probe: flows" "$w" "$c" "$r" "-" "$base"
read -r w c r < <(probe fh "  flows: {}\n  http: {}")
line "probe: flows + http" "$w" "$c" "$r" "-" "$base"
read -r w c r < <(probe all "  flows: {}\n  http: {}\n  tls: {}\n  dns: {}")
line "probe: flows + http + tls + dns" "$w" "$c" "$r" "-" "$base"

#!/usr/bin/env bash
# Benchmark one probe pass (flows with the default views + HTTP, one decode per packet) against
# `netspectra flows` then `netspectra http` on the same generated capture.
#
# Usage: benches/probe/run.sh [SIZE]     (default 1G)
# Environment: NETSPECTRA (binary, default ${CARGO_TARGET_DIR:-target}/release/netspectra),
# BENCH_DIR (default /tmp/netspectra-bench-probe), SEED (default 42), RUNS (default 3),
# THREADS (default 1).
#
# Prints wall and CPU seconds (fastest of RUNS), peak RSS, and the probe's wall time against
# the sum of the two commands (goal <= 0.6) and against the slower of them (goal <= 1.1).
set -euo pipefail
# shellcheck source=../lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
BIN=${NETSPECTRA:-${CARGO_TARGET_DIR:-target}/release/netspectra}
DIR=${BENCH_DIR:-/tmp/netspectra-bench-probe}
SEED=${SEED:-42}
SIZE=${1:-1G}
RUNS=${RUNS:-3}
T=${THREADS:-1}
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p netspectra" >&2; exit 1; }
F="$DIR/g.pcap"
[ -s "$F" ] || "$BIN" gen -o "$F" --size "$SIZE" --seed "$SEED" --truth "$DIR/g.json" >&2
warm_from_disk "$F"

timed() { # cmd... -> "wall cpu rss_mb"
    best_of "$RUNS" /dev/null "$DIR/err" -- "$@" || { tail -3 "$DIR/err" >&2; exit 1; }
    read -r w u s kb <<<"$BEST_TIME"
    python3 -c "print(f'{$w:.3f} {$u+$s:.3f} {$kb/1024:.1f}')"
}

echo "capture: $(du -m "$F" | cut -f1) MB, $(python3 -c "import json;print(json.load(open('$DIR/g.json'))['packets'])") packets; --threads $T"
read -r fw fc fr < <(timed sh -c 'rm -rf "$1" && exec "$2" flows "$3" -q --threads "$4" -o "$1"' sh "$DIR/f" "$BIN" "$F" "$T")
read -r hw hc hr < <(timed "$BIN" http "$F" -q --threads "$T" --summary none -o "$DIR/h.jsonl")
read -r pw pc pr < <(timed sh -c 'rm -rf "$1" && exec "$2" probe -q --threads "$4" --read "$3" --out "$1"' sh "$DIR/p" "$BIN" "$F" "$T")
python3 - "$fw" "$fc" "$fr" "$hw" "$hc" "$hr" "$pw" "$pc" "$pr" <<'PY'
import sys
fw, fc, fr, hw, hc, hr, pw, pc, pr = map(float, sys.argv[1:])
row = lambda n, w, c, r: print(f"{n:<40} {w:8.3f} s wall {c:8.3f} s CPU {r:8.1f} MB")
row("netspectra flows (default views)", fw, fc, fr)
row("netspectra http", hw, hc, hr)
row("flows then http", fw + hw, fc + hc, max(fr, hr))
row("netspectra probe (flows + http)", pw, pc, pr)
print(f"probe / (flows + http) = {pw / (fw + hw):.2f}   (goal <= 0.6)")
print(f"probe / slower of the two = {pw / max(fw, hw):.2f}   (goal <= 1.1)")
PY

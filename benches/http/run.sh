#!/usr/bin/env bash
# Benchmark `netspectra http` against httpry and tshark on the same generated captures.
#
# Usage: benches/http/run.sh [SIZE] [SMALL_SIZE]     (defaults 1G and 100M)
# Environment: NETSPECTRA (binary, default ${CARGO_TARGET_DIR:-target}/release/netspectra), BENCH_DIR (default
# /tmp/netspectra-bench-http), SEED (default 42), TSHARK_SLICE (MB of the big file tshark reads,
# default 100: tshark is ~100x slower, its time is scaled up and the report says so).
#
# Prints, per tool and file: seconds (fastest of RUNS=3 runs; tshark runs once), MB/s, packets/s,
# peak RSS, requests/responses found.
set -euo pipefail
# shellcheck source=../lib.sh
. "$(cd "$(dirname "$0")" && pwd)/../lib.sh"
SIZE=${1:-1G}
SMALL=${2:-100M}
BIN=${NETSPECTRA:-${CARGO_TARGET_DIR:-target}/release/netspectra}
DIR=${BENCH_DIR:-/tmp/netspectra-bench-http}
SEED=${SEED:-42}
SLICE_MB=${TSHARK_SLICE:-100}
mkdir -p "$DIR"
[ -x "$BIN" ] || { echo "build first: cargo build --release -p netspectra" >&2; exit 1; }

gen() { # name size
    local f="$DIR/$1.pcap"
    if [ ! -s "$f" ]; then
        "$BIN" gen -o "$f" --size "$2" --seed "$SEED" --truth "$DIR/$1.json" >&2
    fi
    warm_from_disk "$f" # every tool reads from memory, in the state of a file read from disk
}

# Runs a command RUNS times (default 3) and prints "seconds peak_kb" of the fastest run, whose
# stdout is left in $DIR/out (benches/lib.sh best_of); a failed run prints its time as 0.
timed() {
    local s kb
    if best_of "${RUNS:-3}" "$DIR/out" "$DIR/err" -- "$@"; then
        read -r s _ _ kb <<<"$BEST_TIME"
        echo "$s $kb"
    else
        echo "0 0"
    fi
}

row() { # tool file seconds kb requests responses [note]
    local bytes packets
    bytes=$(stat -c %s "$2")
    packets=$(python3 -c "import json;print(json.load(open('${2%.pcap}.json'))['packets'])")
    python3 - "$@" "$bytes" "$packets" <<'PY'
import sys
tool, f, secs, kb, req, resp = sys.argv[1:7]
note = sys.argv[7] if len(sys.argv) > 9 else ""
bytes_, packets = float(sys.argv[-2]), float(sys.argv[-1])
secs = max(float(secs), 1e-3)
print(f"{tool:<26} {f.split('/')[-1]:<12} {secs:8.2f} s {bytes_/secs/1e6:9.0f} MB/s {packets/secs/1e6:7.2f} Mpps "
      f"{int(kb)/1024:8.1f} MB RSS  req {req:>8} resp {resp:>8} {note}")
PY
}

run_ours() { # file threads
    read -r s kb < <(timed "$BIN" http "$1" -o /dev/null --summary json -q --threads "$2")
    local req resp
    req=$(python3 -c "import json;print(json.load(open('$DIR/out'))['requests'])")
    resp=$(python3 -c "import json;print(json.load(open('$DIR/out'))['responses'])")
    row "netspectra http -t$2" "$1" "$s" "$kb" "$req" "$resp"
    echo "$s" > "$DIR/ours-$2-$(basename "$1")"
}

run_httpry() { # file
    # httpry appends to an existing log: start each run with none.
    read -r s kb < <(timed sh -c 'rm -f "$2" && exec httpry -q -r "$1" -o "$2"' sh "$1" "$DIR/httpry.log")
    local req resp
    req=$(grep -c '	>	' "$DIR/httpry.log" || true)
    resp=$(grep -c '	<	' "$DIR/httpry.log" || true)
    row "httpry" "$1" "$s" "$kb" "$req" "$resp"
    echo "$s" > "$DIR/httpry-$(basename "$1")"
}

run_tshark() { # file [slice_mb]
    local f=$1 scale=1 note=""
    if [ -n "${2:-}" ]; then
        # tshark on the first N MB only, time scaled by the byte ratio.
        local slice="$DIR/slice.pcap"
        head -c $(( $2 * 1024 * 1024 )) "$f" > "$slice.raw"
        # Cut at a record boundary (editcap drops a truncated last record with a warning).
        editcap -F pcap "$slice.raw" "$slice" 2>/dev/null || true
        scale=$(python3 -c "import os;print(os.path.getsize('$f')/os.path.getsize('$slice'))")
        note="(first ${2} MB, time x${scale:0:5})"
        f=$slice
    fi
    read -r s kb < <(RUNS=1 timed tshark -r "$f" -Y "http.request || http.response" -T fields \
        -e frame.time_epoch -e ip.src -e ip.dst -e http.request.method -e http.host \
        -e http.request.uri -e http.response.code -e http.user_agent)
    local req resp
    req=$(awk -F'\t' '$4!=""' "$DIR/out" | wc -l)
    resp=$(awk -F'\t' '$7!=""' "$DIR/out" | wc -l)
    s=$(python3 -c "print($s*$scale)")
    row "tshark -Y http" "$1" "$s" "$kb" "$req" "$resp" "$note"
    echo "$s" > "$DIR/tshark-$(basename "$1")"
}

echo "netspectra http benchmark: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $(date -u)"
gen small "$SMALL"
gen big "$SIZE"
for name in small big; do
    f="$DIR/$name.pcap"
    python3 -c "import json;t=json.load(open('$DIR/$name.json'));print(f\"# $name: {t['file_bytes']/1e6:.0f} MB, {t['packets']} packets, truth {t['http']['requests']} requests / {t['http']['responses']} responses\")"
    cat "$f" > /dev/null
    s=$( { /usr/bin/time -f "%e" cat "$f" > /dev/null; } 2>&1 )
    echo "cat: $s s"
    run_ours "$f" 1
    run_ours "$f" 2
    run_httpry "$f"
    if [ "$name" = big ]; then run_tshark "$f" "$SLICE_MB"; else run_tshark "$f"; fi
    python3 - "$DIR" "$name.pcap" <<'PY'
import sys
d, n = sys.argv[1], sys.argv[2]
r = lambda k: float(open(f"{d}/{k}-{n}").read())
o1 = r("ours-1")
print(f"ratios ({n}): httpry/ours-1t = {r('httpry')/o1:.2f}x, tshark/ours-1t = {r('tshark')/o1:.0f}x, ours-1t/ours-2t = {o1/r('ours-2'):.2f}x")
PY
done

#!/usr/bin/env bash
# ClickHouse export benchmark: `netspectra flows --export clickhouse://...` (records inserted
# while the capture is read) against the two-step way, `netspectra flows --records FILE` then
# a bulk load of that file with clickhouse-client (the peer: ClickHouse's own loader), into a
# private clickhouse-server on loopback ports started here and stopped at the end.
#
#   benches/flows/clickhouse.sh [CAPTURE]     # default /tmp/netspectra-bench-flows/m1.pcap
#   RUNS=5 benches/flows/clickhouse.sh        # runs per way (default 3; median wall, max RSS)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
# shellcheck source=../lib.sh
. "$here/../lib.sh"
BIN=${BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/netspectra}
FILE=${1:-/tmp/netspectra-bench-flows/m1.pcap}
RUNS=${RUNS:-3}
[ -s "$FILE" ] || { echo "no capture $FILE (netspectra gen -o FILE --packets 1000000 --seed 42)" >&2; exit 2; }
for t in /usr/sbin/clickhouse-server clickhouse-client /usr/bin/time; do
  command -v "$t" >/dev/null || { echo "missing $t (scripts/setup.sh installs it)" >&2; exit 2; }
done
[ -x "$BIN" ] || (cd "$repo" && cargo build --release -p netspectra)
work=$(mktemp -d)
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP=$(port) TCP=$(port) INTER=$(port)
/usr/sbin/clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
  --path="$work/data/" --tmp_path="$work/tmp/" --user_files_path="$work/uf/" \
  --format_schema_path="$work/fs/" --http_port="$HTTP" --tcp_port="$TCP" \
  --interserver_http_port="$INTER" --listen_host=127.0.0.1 --logger.log="$work/ch.log" \
  --logger.errorlog="$work/ch.err" --logger.console=0 >/dev/null 2>&1 &
CH=$!
trap 'kill $CH 2>/dev/null || true; wait $CH 2>/dev/null || true; rm -rf "$work"' EXIT
q() { clickhouse-client --port "$TCP" --query "$1"; }
for _ in $(seq 300); do q "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
warm_from_disk "$FILE"

# measure LABEL CMD... -> wall seconds (median) and peak RSS
measure() {
  local label=$1; shift
  local walls=() rss=0
  for r in $(seq "$RUNS"); do
    q "TRUNCATE TABLE IF EXISTS bench.flows" >/dev/null 2>&1 || true
    /usr/bin/time -v bash -c "$*" >"$work/out" 2>"$work/err" || { echo "FAILED: $label"; tail -5 "$work/err"; exit 1; }
    time_v_report "$work/err"
    walls+=("$TIME_WALL"); [ "$TIME_RSS_KB" -gt "$rss" ] && rss=$TIME_RSS_KB
  done
  WALL=$(median "${walls[@]}")
  ROWS=$(q "SELECT count() FROM bench.flows")
  printf "  %-44s %7.2f s %8.1f MB  rows %s\n" "$label" "$WALL" "$(echo "$rss/1024" | bc -l)" "$ROWS"
}

echo "== ClickHouse export: $FILE, $RUNS runs each, $(date -u +%FT%TZ)"
measure "netspectra flows --export clickhouse://" \
  "$BIN flows $FILE -q --no-records --export clickhouse://127.0.0.1:$HTTP/bench.flows"
DIRECT=$WALL
# The peer way: write the records, load the file with clickhouse-client into the same table
# (the direct runs created it; each run starts from an empty table).
measure "flows --records + clickhouse-client load" \
  "$BIN flows $FILE -q --records $work/f.jsonl && \
   clickhouse-client --port $TCP --input_format_skip_unknown_fields=1 --query 'INSERT INTO bench.flows FORMAT JSONEachRow' < $work/f.jsonl"
TWO=$WALL
printf "  two-step / direct: %.2fx\n" "$(echo "$TWO / $DIRECT" | bc -l)"

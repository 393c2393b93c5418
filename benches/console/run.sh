#!/usr/bin/env bash
# Console benchmark (issue 20): FLOWS generated flow records (and FLOWS/10 HTTP records) in the
# embedded store and, when clickhouse-server is installed, in a private ClickHouse on loopback;
# p50/p99 of four questions through the API and run directly; then the page's load time in
# headless Chromium. Usage: FLOWS=10000000 RUNS=20 benches/console/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
FLOWS=${FLOWS:-10000000}
RUNS=${RUNS:-20}
data=${DATA:-bench-data/console}
mkdir -p "$data"
cargo build --release --locked -p netspectra-console --example console_bench
bench=target/release/examples/console_bench

echo "== embedded store: $FLOWS flows"
/usr/bin/time -f "fill+bench wall %e s, peak RSS %M KB" "$bench" "$data/store.db" "$FLOWS" "$RUNS"
ls -la "$data/store.db"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== page load in Chromium (overview, last hour of data)"
SERVE=1 "$bench" "$data/store.db" "$FLOWS" > "$data/console.txt" &
pids+=($!)
for _ in $(seq 100); do grep -q http "$data/console.txt" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$data/console.txt")
home=$(mktemp -d)
chrome() {
  HOME=$home XDG_CONFIG_HOME=$home/c XDG_CACHE_HOME=$home/k chromium --headless --no-sandbox \
    --disable-gpu --no-first-run --virtual-time-budget=120000 --dump-dom "$1" 2>/dev/null
}
for i in 1 2 3; do
  t0=$(date +%s.%N); chrome "about:blank" > /dev/null; t1=$(date +%s.%N)
  chrome "$url" > "$data/page.html"; t2=$(date +%s.%N)
  grep -q 'data-loaded="overview"' "$data/page.html" || { echo "page did not load"; exit 1; }
  echo "run $i: chromium blank $(echo "$t1 - $t0" | bc) s, overview loaded $(echo "$t2 - $t1" | bc) s"
done
rm -rf "$home"

if [ -x /usr/sbin/clickhouse-server ]; then
  echo "== ClickHouse: $FLOWS flows"
  ch=$(mktemp -d)
  port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
  http=$(port); tcp=$(port); inter=$(port)
  /usr/sbin/clickhouse-server --config-file=/etc/clickhouse-server/config.xml -- \
    --path="$ch/data/" --tmp_path="$ch/tmp/" --user_files_path="$ch/uf/" --format_schema_path="$ch/fs/" \
    --http_port="$http" --tcp_port="$tcp" --interserver_http_port="$inter" --listen_host=127.0.0.1 \
    --logger.log="$ch/log" --logger.errorlog="$ch/err" --logger.console=0 > /dev/null 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -s "http://127.0.0.1:$http/?query=SELECT%201" | grep -q 1 && break; sleep 0.2; done
  "$bench" "clickhouse://127.0.0.1:$http/bench" "$FLOWS" "$RUNS"
  kill "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true
  rm -rf "$ch"
fi

#!/usr/bin/env bash
# The probe's direct ClickHouse sink (issue 18): flow rows per second sustained into one private
# clickhouse-server (loopback, data in a temporary folder, stopped by PID), and the latency from a
# flow's last packet to its row being visible at a steady rate (DNS exchanges, one short UDP flow
# each; udp timeout 1 s), p50 and p99.
#
#   benches/probe/clickhouse.sh                                  # 100,000 flows/s for 10 s
#   BENCH_FLOWS_PER_SEC=50000 BENCH_SECS=20 BENCH_EXPIRE_EVERY=250ms benches/probe/clickhouse.sh
#
# Needs clickhouse-server (scripts/setup.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cd "$here/../.."
cargo test --release -p netspectra --test probe_clickhouse_bench -- --ignored --nocapture \
  --test-threads 1

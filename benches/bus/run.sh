#!/usr/bin/env bash
# Scale-out benchmark (issue 19): flow records per second through probe -> NATS JetStream
# (3 nodes, stream replicas 3) -> netspectra collect (1, then 2) -> ClickHouse (2 shards x 2
# replicas, ZooKeeper), against the probe's direct ClickHouse sink on the same capture; end-to-end
# latency (a flow's last packet fed -> its row visible in the Distributed table) at a steady
# 2,000 packets/s; JetStream bytes stored per flow record. Every server is started on loopback
# ports in a temporary folder and stopped by PID (the harness of crates/cli/tests/bus.rs).
#
#   benches/bus/run.sh                       # 1,000,000 packets (~70 k flows)
#   BENCH_PACKETS=300000 benches/bus/run.sh  # smaller
#
# Needs nats-server, clickhouse-server, zookeeper and a JRE (scripts/setup.sh).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$repo"
BENCH_PACKETS=${BENCH_PACKETS:-1000000} \
  cargo test --release -p netspectra --test bus -- --ignored bench_bus --nocapture --test-threads 1

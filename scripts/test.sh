#!/usr/bin/env bash
# Sets up the machine (system packages) and runs every check CI runs: format, lints, all tests
# (privileged netns/AF_PACKET/BPF tests run when root, and skip with a message otherwise),
# and a short smoke run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
cargo test --workspace --locked

echo "== cargo test, Parquet output (feature parquet)"
cargo clippy -p netspectra-sinks --features parquet --all-targets --locked -- -D warnings
cargo test -p netspectra-sinks --features parquet --locked

echo "== fuzz smoke run"
scripts/fuzz.sh smoke

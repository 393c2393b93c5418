#!/usr/bin/env bash
# Sets up the machine (system packages) and runs every check CI runs: format, lints, all tests
# (privileged netns/AF_PACKET/BPF tests run when root, and skip with a message otherwise),
# and a short smoke run of every fuzz target.
set -euo pipefail
cd "$(dirname "$0")/.."
# Cargo gives compilers /dev/null as standard input. If /dev/null has become a plain file (an
# older `netspectra ... -o /dev/null` renamed its output over it; fixed since), rustc reads
# whatever was written there as a program and cargo fails before building anything. Say so,
# and as root put the device back.
if [ ! -c /dev/null ]; then
  echo "test.sh: /dev/null is not a character device ($(stat -c %F /dev/null 2>/dev/null))" >&2
  if [ "$(id -u)" -eq 0 ]; then
    rm -f /dev/null && mknod -m 666 /dev/null c 1 3 && echo "test.sh: /dev/null re-created" >&2
  else
    exit 1
  fi
fi

# Nothing here reads the terminal; a stray stdin must not reach a compiler.
exec </dev/null

scripts/setup.sh

# CI builds once from a clean clone: incremental state would only double the disk used.
if [ "${CI:-}" = "true" ]; then
  export CARGO_INCREMENTAL=0
fi

echo "== cargo fmt --check"
cargo fmt --all -- --check

echo "== cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== cargo test"
# The free disk decides some servers' limits (JetStream's storage): say it in the log.
df -h . "${TMPDIR:-/tmp}" | sed 's/^/   /'
# Every test binary runs even after a failure, so that one CI log shows every failing test.
cargo test --workspace --locked --no-fail-fast

echo "== cargo test, Parquet output (feature parquet)"
cargo clippy -p netspectra-sinks --features parquet --all-targets --locked -- -D warnings
cargo test -p netspectra-sinks --features parquet --locked

echo "== fuzz smoke run"
scripts/fuzz.sh smoke

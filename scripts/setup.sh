#!/usr/bin/env bash
# Installs everything NetSpectra's build, tests and benchmarks need. Idempotent: safe to re-run.
set -euo pipefail

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# Oracles and peers (tshark/capinfos/editcap, tcpdump, softflowd, httpry, tcprewrite, nfpcapd),
# build dependencies (libpcap for BPF filter compilation, clang + libbpf headers for the guard),
# namespace/network tools for the privileged integration tests, and the Prometheus project's
# Python parser that checks our metrics output; the servers of the monitoring tests:
# clickhouse-server (+ zookeeper and a JRE for replicated clusters), nats-server (JetStream bus),
# prometheus and prometheus-alertmanager (alert rules end to end), chromium (console page tests).
PKGS=(
  build-essential pkg-config libpcap-dev clang llvm libbpf-dev linux-libc-dev bpftool
  tshark tcpdump wireshark-common softflowd httpry tcpreplay nfdump argus-client argus-server
  iproute2 iperf3 nftables ethtool hyperfine time python3-dpkt gzip iputils-ping sockperf pktanon
  python3-prometheus-client clickhouse-server zookeeper default-jre-headless nats-server
  prometheus prometheus-alertmanager chromium
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages already installed"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "setup: cargo not found; install Rust (rustup) first" >&2
  exit 1
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz 0.13.2 (fuzz targets in fuzz/)"
  cargo install cargo-fuzz --version 0.13.2 --locked
fi
echo "setup: ok"

#!/usr/bin/env bash
# Sets up the machine, builds NetSpectra and runs the main jobs on the bundled sample capture
# (samples/sample.pcapng, made by `netspectra gen --seed 1`): a capinfos-style summary, flow
# records with a terminal summary, HTTP metadata, and a sanitized copy that is then verified.
# Output files go to ./demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p netspectra
bin="${CARGO_TARGET_DIR:-target}/release/netspectra"
sample=samples/sample.pcapng
out=demo-out
rm -rf "$out" && mkdir -p "$out"

echo "== netspectra info $sample"
$bin info "$sample"

echo; echo "== netspectra flows $sample -o $out/flows"
$bin flows "$sample" -o "$out/flows"
head -n 2 "$out/flows/flows.jsonl"

echo; echo "== netspectra http $sample -o $out/http.jsonl"
$bin http "$sample" -o "$out/http.jsonl"
head -n 2 "$out/http.jsonl"

echo; echo "== netspectra sanitize $sample -o $out/sanitized.pcapng, then --verify"
$bin sanitize "$sample" -o "$out/sanitized.pcapng" --passphrase demo
$bin sanitize --verify "$out/sanitized.pcapng" --original "$sample"

echo; echo "== one host, no server: netspectra probe --store, then netspectra console"
$bin probe --read "$sample" --store "$out/store.db" -q
$bin console --store "$out/store.db" --listen 127.0.0.1:0 > "$out/console.txt" &
console_pid=$!
trap 'kill "$console_pid" 2>/dev/null || true' EXIT
for _ in $(seq 50); do grep -q http "$out/console.txt" 2>/dev/null && break; sleep 0.1; done
url=$(grep -o 'http://[^ ]*' "$out/console.txt")
echo "console at $url (the demo stops it now; run it yourself to keep it):"
python3 -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' "${url}api/v1/summary"
kill "$console_pid"

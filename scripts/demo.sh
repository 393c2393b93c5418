#!/usr/bin/env bash
# Sets up the machine, builds NetSpectra and runs the main jobs on the bundled sample capture
# (samples/sample.pcapng, made by `netspectra gen --seed 1`): a capinfos-style summary, flow
# records with a terminal summary, and HTTP metadata. Output files go to ./demo-out/.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p netspectra
bin=target/release/netspectra
sample=samples/sample.pcapng
out=demo-out
rm -rf "$out" && mkdir -p "$out"

echo "== netspectra info $sample"
$bin info "$sample"

if $bin flows --help >/dev/null 2>&1; then
  echo; echo "== netspectra flows $sample -o $out/flows"
  $bin flows "$sample" -o "$out/flows"
fi
if $bin http --help >/dev/null 2>&1; then
  echo; echo "== netspectra http $sample -w $out/http.jsonl"
  $bin http "$sample" -w "$out/http.jsonl"
  head -n 2 "$out/http.jsonl"
fi

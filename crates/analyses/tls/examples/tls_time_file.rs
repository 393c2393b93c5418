//! Times TlsAnalyzer on a capture file, against reading and decoding alone: the hand comparison
//! of docs/TLS.md. `cargo run --release -p netspectra-tls --example tls_time_file -- FILE [RUNS]`
//! prints, for each run, the seconds of read + decode, then of read + decode + analyzer, and the
//! records (compare with `tshark -n -r FILE -Y 'tls.handshake.type==1' -T fields -e
//! tls.handshake.extensions_server_name`).

use netspectra_packet::{decode, DecodeOptions, PacketSource};
use netspectra_pcap::CaptureReader;
use netspectra_tls::{TlsAnalyzer, TlsConfig};
use std::time::Instant;

/// Reads the file once; with `analyze`, feeds every packet to the analyzer, taking records every
/// 4,096 packets as a pipeline would. Returns (seconds, packets, records).
fn run(file: &str, analyze: bool) -> (f64, u64, usize) {
    let mut r = CaptureReader::open(file).expect("open capture");
    let opts = DecodeOptions { inner: true };
    let mut a = TlsAnalyzer::new(TlsConfig::default());
    let (mut n, mut records, mut sink) = (0u64, 0usize, 0u64);
    let mut out = Vec::new();
    let t0 = Instant::now();
    while r
        .next_batch(&mut |b| {
            for p in b.iter() {
                let v = decode(p.data, p.link, p.vlan_tci, &opts);
                sink = sink.wrapping_add(v.payload_len as u64);
                n += 1;
                if analyze {
                    a.on_packet(&p, &v);
                    if n % 4096 == 0 {
                        a.expire(p.ts);
                        a.take_records(&mut out);
                        records += out.len();
                        out.clear();
                    }
                }
            }
        })
        .expect("read")
    {}
    a.finish();
    a.take_records(&mut out);
    records += out.len();
    std::hint::black_box(sink);
    (t0.elapsed().as_secs_f64(), n, records)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let file = args.get(1).expect("usage: tls_time_file FILE [RUNS]");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    for _ in 0..runs {
        let (base, n, _) = run(file, false);
        let (with, _, recs) = run(file, true);
        println!(
            "{n} packets: read+decode {base:.3} s, + TLS analyzer {with:.3} s ({:.2} Mpps), {recs} records",
            n as f64 / with / 1e6
        );
    }
}

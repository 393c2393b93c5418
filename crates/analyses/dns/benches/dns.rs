//! DnsAnalyzer cost per packet over generated captures (decode done beforehand, as the pipeline
//! does it once for every analysis): a DNS-heavy mix, where most packets are DNS, and a
//! TLS-heavy mix, where most packets only meet the content check.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netspectra_dns::{DnsAnalyzer, DnsConfig};
use netspectra_gen::{generate_to_vec, GenConfig, Mix};
use netspectra_packet::{
    decode, DecodeOptions, LinkType, Packet, PacketSource, PacketView, Timestamp,
};
use netspectra_pcap::CaptureReader;
use std::io::Cursor;

/// Frames of a generated capture with their decoded views.
fn load(mix: &str, packets: u64) -> Vec<(Timestamp, Vec<u8>, PacketView)> {
    let cfg = GenConfig {
        seed: 42,
        packets: Some(packets),
        mix: Mix::preset(mix).expect("preset"),
        ..GenConfig::default()
    };
    let (bytes, _) = generate_to_vec(&cfg).expect("generate");
    let mut r =
        CaptureReader::from_reader("mem", Box::new(Cursor::new(bytes)), None).expect("read");
    let mut out = Vec::new();
    let opts = DecodeOptions { inner: true };
    while r
        .next_batch(&mut |b| {
            for p in b.iter() {
                let v = decode(p.data, p.link, p.vlan_tci, &opts);
                out.push((p.ts, p.data.to_vec(), v));
            }
        })
        .expect("batch")
    {}
    out
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("dns_analyzer");
    g.sample_size(10);
    for mix in ["dns-heavy", "tls-heavy"] {
        let frames = load(mix, 200_000);
        g.throughput(Throughput::Elements(frames.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(mix), &frames, |b, frames| {
            b.iter(|| {
                let mut a = DnsAnalyzer::new(DnsConfig::default());
                let mut out = Vec::new();
                for (i, (ts, data, v)) in frames.iter().enumerate() {
                    let p = Packet::whole(*ts, LinkType::ETHERNET, data);
                    a.on_packet(&p, v);
                    if i % 4096 == 0 {
                        a.expire(*ts);
                        a.take_records(&mut out);
                        out.clear();
                    }
                }
                a.finish();
                a.take_records(&mut out);
                out.len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

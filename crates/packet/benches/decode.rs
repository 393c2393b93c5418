//! Decoder micro-benchmark: ns per frame for common frame shapes (etherparse's own
//! `SlicedPacket` over the same bytes is the peer, printed side by side), and `decode_all`
//! (outer and inner view from one walk), which must cost what `decode` costs on untunnelled
//! frames.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use etherparse::PacketBuilder;
use netspectra_packet::{decode, decode_all, DecodeOptions, LinkType};
use std::hint::black_box;

fn frames() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for i in 0..64u16 {
        let mut f = Vec::new();
        if i % 2 == 0 {
            PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4([10, 0, 0, i as u8], [10, 0, 1, 1], 64)
                .tcp(1024 + i, 443, 1, 1000)
                .write(&mut f, &[0u8; 512])
                .unwrap();
        } else {
            PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv6([i as u8; 16], [3; 16], 64)
                .udp(1024 + i, 53)
                .write(&mut f, &[0u8; 64])
                .unwrap();
        }
        out.push(f);
    }
    out
}

fn bench(c: &mut Criterion) {
    let fr = frames();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Elements(fr.len() as u64));
    g.bench_function("netspectra", |b| {
        b.iter(|| {
            let mut s = 0u32;
            for f in &fr {
                let v = decode(
                    black_box(f),
                    LinkType::ETHERNET,
                    None,
                    &DecodeOptions::default(),
                );
                s = s.wrapping_add(v.src_port as u32 + v.payload_len);
            }
            s
        })
    });
    g.bench_function("netspectra_decode_all", |b| {
        b.iter(|| {
            let mut s = 0u32;
            for f in &fr {
                let d = decode_all(black_box(f), LinkType::ETHERNET, None);
                let v = d.innermost();
                s = s.wrapping_add(v.src_port as u32 + v.payload_len);
            }
            s
        })
    });
    g.bench_function("etherparse_sliced_packet", |b| {
        b.iter(|| {
            let mut s = 0u32;
            for f in &fr {
                if let Ok(p) = etherparse::SlicedPacket::from_ethernet(black_box(f)) {
                    if let Some(etherparse::TransportSlice::Tcp(t)) = p.transport {
                        s = s.wrapping_add(t.source_port() as u32);
                    }
                }
            }
            s
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

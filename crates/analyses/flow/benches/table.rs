//! Flow table update cost per packet on synthetic decoded packets (no I/O, no decode).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use netspectra_flow::{FlowTable, TableConfig};
use netspectra_packet::{IpPair, L3Proto, PacketView};

fn views(n: usize, flows: u32) -> Vec<PacketView> {
    let mut x = 0x1234_5678u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let f = (x % flows as u64) as u32;
            let rev = x & (1 << 40) != 0;
            let (a, b) = (
                [10, (f >> 16) as u8, (f >> 8) as u8, f as u8],
                [192, 168, 0, 1],
            );
            let (s, d, sp, dp) = if rev {
                (b, a, 443, 1024 + (f % 50000) as u16)
            } else {
                (a, b, 1024 + (f % 50000) as u16, 443)
            };
            PacketView {
                l3: L3Proto::Ipv4,
                ip: Some(IpPair {
                    src: s.into(),
                    dst: d.into(),
                }),
                proto: 6,
                ip_len: 500,
                l4_offset: 34,
                src_port: sp,
                dst_port: dp,
                ..Default::default()
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("flow_table_update");
    for flows in [1_000u32, 100_000, 1_000_000] {
        let pk = views(1 << 20, flows);
        g.throughput(Throughput::Elements(pk.len() as u64));
        g.bench_with_input(BenchmarkId::from_parameter(flows), &pk, |b, pk| {
            let mut t = FlowTable::new(TableConfig::default(), true);
            let mut ts = 0i64;
            let mut d = Vec::new();
            b.iter(|| {
                for v in pk {
                    ts += 100;
                    t.update(ts, 554, v);
                }
                d.clear();
                t.take_deltas(&mut d);
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

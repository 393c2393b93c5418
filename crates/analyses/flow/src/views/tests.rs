use super::*;
use crate::config::{Field, ViewSpec};
use crate::table::{EndReason, FlowTable};
use crate::TableConfig;
use netspectra_packet::{IpPair, L3Proto, PacketView};

const SEC: i64 = 1_000_000_000;

fn view(a: u8, b: u8, sp: u16, dp: u16) -> PacketView {
    PacketView {
        l3: L3Proto::Ipv4,
        ip: Some(IpPair {
            src: [10, 0, 0, a].into(),
            dst: [10, 0, 1, b].into(),
        }),
        proto: 17,
        ip_len: 80,
        l4_offset: 34,
        src_port: sp,
        dst_port: dp,
        ..Default::default()
    }
}

fn sum(snaps: &[Snapshot], view: &str, col: &str) -> u64 {
    snaps
        .iter()
        .filter(|s| s.view == view)
        .flat_map(|s| (0..s.rows.len()).map(move |i| s.value(i, col).unwrap()))
        .sum()
}

/// Drives `workers` tables over the same synthetic traffic, with ticks every `tick`.
fn run(workers: usize, specs: Vec<ViewSpec>) -> (Vec<Snapshot>, Summary, u64) {
    run_with(workers, specs, None)
}

/// [`run`], with a reconfiguration to other views asked for before packet `reload.0`.
fn run_with(
    workers: usize,
    specs: Vec<ViewSpec>,
    mut reload: Option<(i64, Vec<ViewSpec>)>,
) -> (Vec<Snapshot>, Summary, u64) {
    let tick = Merger::base_tick(&specs).unwrap();
    let mut m = Merger::new(workers, specs);
    let mut tables: Vec<FlowTable> = (0..workers)
        .map(|_| FlowTable::new(TableConfig::default(), true))
        .collect();
    let mut snaps = Vec::new();
    let mut records = 0u64;
    let mut out = |o: Output| match o {
        Output::Snapshot(s) => snaps.push(s),
        Output::Ended(v) => records += v.len() as u64,
    };
    let mut next_tick = tick;
    let mut epoch = 0;
    let mut n = 0u64;
    for i in 0..20_000i64 {
        if reload.as_ref().is_some_and(|r| r.0 == i) {
            let (_, specs) = reload.take().unwrap();
            m.reconfigure(specs);
        }
        let ts = i * SEC / 100; // 200 s of traffic
        while ts >= next_tick {
            for (w, t) in tables.iter_mut().enumerate() {
                t.sweep(next_tick);
                let mut d = Vec::new();
                t.take_deltas(&mut d);
                let mut e = Vec::new();
                t.take_ended(&mut e);
                m.handle(WorkerMsg::Ended(e), &mut out);
                m.handle(
                    WorkerMsg::Deltas {
                        worker: w,
                        epoch,
                        deltas: d,
                    },
                    &mut out,
                );
            }
            // Ticks arrive in a shuffled worker order.
            for w in (0..workers).rev() {
                m.handle(
                    WorkerMsg::Tick {
                        worker: w,
                        epoch,
                        at: next_tick,
                    },
                    &mut out,
                );
            }
            epoch += 1;
            next_tick += tick;
        }
        let a = (i % 7) as u8;
        let b = (i % 5) as u8;
        let v = if i % 3 == 0 {
            view(a, b, 1000 + (i % 11) as u16, 53)
        } else {
            let mut r = view(a, b, 1000 + (i % 11) as u16, 53);
            let ip = r.ip.unwrap();
            r.ip = Some(IpPair {
                src: ip.dst,
                dst: ip.src,
            });
            std::mem::swap(&mut r.src_port, &mut r.dst_port);
            r
        };
        let w = (FlowKeyHash::of(&v) % workers as u64) as usize;
        tables[w].update(ts, 100 + (i % 50) as u32, &v);
        n += 1;
    }
    for (w, mut t) in tables.into_iter().enumerate() {
        t.flush_all(EndReason::EndOfInput);
        let mut d = Vec::new();
        t.take_deltas(&mut d);
        let mut e = Vec::new();
        t.take_ended(&mut e);
        m.handle(WorkerMsg::Ended(e), &mut out);
        m.handle(
            WorkerMsg::Deltas {
                worker: w,
                epoch,
                deltas: d,
            },
            &mut out,
        );
        let counters = *t.counters();
        m.handle(
            WorkerMsg::Done {
                worker: w,
                counters,
                decode: Default::default(),
                table_bytes: 0,
            },
            &mut out,
        );
    }
    assert!(m.finished());
    assert_eq!(m.summary(10).packets, n);
    (snaps, m.summary(10), records)
}

struct FlowKeyHash;
impl FlowKeyHash {
    fn of(v: &PacketView) -> u64 {
        netspectra_packet::FlowKey::from_view(v)
            .unwrap()
            .symmetric_hash()
    }
}

#[test]
fn snapshots_sum_to_totals_for_every_cadence_and_worker_count() {
    let mk = |name: &str, keys: Vec<Field>, iv: i64| {
        let mut v = ViewSpec::exact(name, keys);
        v.interval = iv;
        v
    };
    let specs = || {
        vec![
            mk("src", vec![Field::SrcIp(32, 128)], 10 * SEC),
            mk("dport", vec![Field::DstPort], 30 * SEC),
            mk(
                "pair24",
                vec![Field::SrcIp(24, 128), Field::DstIp(32, 128)],
                45 * SEC,
            ),
            mk("all", vec![], 200 * SEC),
        ]
    };
    let mut per_workers = Vec::new();
    for workers in [1, 3] {
        let (snaps, summary, records) = run(workers, specs());
        for name in ["src", "dport", "pair24", "all"] {
            assert_eq!(
                sum(&snaps, name, "packets"),
                summary.packets,
                "{name} packets"
            );
            assert_eq!(sum(&snaps, name, "bytes"), summary.bytes, "{name} bytes");
            assert_eq!(sum(&snaps, name, "flows"), records, "{name} flows");
        }
        // Windows are aligned to each view's cadence and never overlap.
        for s in &snaps {
            let iv = match s.view.as_str() {
                "src" => 10,
                "dport" => 30,
                "pair24" => 45,
                _ => 200,
            } * SEC;
            assert_eq!(s.start.rem_euclid(iv), 0, "{} {}", s.view, s.start);
            assert_eq!(s.end - s.start, iv);
        }
        let n_src = snaps.iter().filter(|s| s.view == "src").count();
        assert_eq!(n_src, 20);
        per_workers.push((sum(&snaps, "dport", "packets"), records));
    }
    assert_eq!(per_workers[0], per_workers[1]);
}

/// A reload at an interval boundary: a view kept across it counts every packet once, and a
/// view removed plus a view added together count every packet once too.
#[test]
fn a_reconfiguration_loses_nothing_and_counts_nothing_twice() {
    let mut kept = ViewSpec::exact("kept", vec![Field::SrcIp(32, 128)]);
    kept.interval = 10 * SEC;
    let mut old = ViewSpec::exact("old", vec![Field::DstPort]);
    old.interval = 20 * SEC;
    let mut new = ViewSpec::exact("new", vec![Field::DstPort, Field::Proto]);
    new.interval = 30 * SEC;
    for workers in [1, 3] {
        let (snaps, summary, _) = run_with(
            workers,
            vec![kept.clone(), old.clone()],
            Some((7_777, vec![kept.clone(), new.clone()])),
        );
        let n = summary.packets;
        assert_eq!(sum(&snaps, "kept", "packets"), n, "{workers} workers");
        let (o, w) = (sum(&snaps, "old", "packets"), sum(&snaps, "new", "packets"));
        assert!(o > 0 && w > 0, "{o} {w}");
        assert_eq!(o + w, n, "{workers} workers");
        // The old view's last window ends where the new one's first begins.
        let old_end = snaps
            .iter()
            .filter(|s| s.view == "old")
            .map(|s| s.end)
            .max();
        let new_start = snaps
            .iter()
            .filter(|s| s.view == "new")
            .map(|s| s.start)
            .min();
        assert_eq!(old_end, new_start);
    }
}

#[test]
fn distinct_metric_and_topk_view() {
    let mut d = ViewSpec::exact("scan", vec![Field::SrcIp(32, 128)]);
    d.metrics = vec![Metric::Flows, Metric::Distinct(Field::DstPort)];
    d.interval = 1000 * SEC;
    let mut t = ViewSpec::exact("heavy", vec![Field::SrcIp(32, 128)]);
    t.mode = ViewMode::TopK {
        k: 3,
        eps: 0.001,
        delta: 0.01,
        rank: Metric::Packets,
    };
    t.interval = 1000 * SEC;
    let (snaps, summary, _) = run(2, vec![d, t]);
    let scan: Vec<_> = snaps.iter().filter(|s| s.view == "scan").collect();
    assert_eq!(scan.len(), 1);
    // Each of the 7 sources talks to dst port 53 (forward) and the 10.0.1.x hosts reply from
    // 53 to 11 source ports: distinct dst ports per source address is exact at this size.
    for i in 0..scan[0].rows.len() {
        let r = scan[0].row_map(i);
        let src: std::net::IpAddr = r["src_ip"].as_str().unwrap().parse().unwrap();
        let dp = r["distinct_dst_port"].as_u64().unwrap();
        if src.to_string().starts_with("10.0.0.") {
            assert_eq!(dp, 1, "{src}");
        } else {
            assert_eq!(dp, 11, "{src}");
        }
    }
    let heavy: Vec<_> = snaps.iter().filter(|s| s.view == "heavy").collect();
    assert_eq!(heavy[0].rows.len(), 3);
    let total: u64 = (0..3).map(|i| heavy[0].value(i, "packets").unwrap()).sum();
    assert!(total <= summary.packets);
}

#[test]
fn projection_masks_both_families_like_mask_ip() {
    use crate::config::mask_ip;
    let cases: [(IpAddr, IpAddr); 3] = [
        (
            "10.1.2.3".parse().unwrap(),
            "192.168.200.9".parse().unwrap(),
        ),
        (
            "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff".parse().unwrap(),
            "fe80::1".parse().unwrap(),
        ),
        ("10.1.2.3".parse().unwrap(), "2001:db8::7".parse().unwrap()),
    ];
    for (src, dst) in cases {
        let d = Dir::new(src, dst, 1234, 80, 6, Some(42));
        for (a, b) in [(32, 128), (24, 64), (0, 0), (1, 1), (31, 127), (8, 56)] {
            let keys = [
                Field::SrcIp(a, b),
                Field::DstIp(a, b),
                Field::SrcPort,
                Field::DstPort,
                Field::Proto,
                Field::Vlan,
            ];
            let k = d.project(&keys);
            assert_eq!(k.src(), mask_ip(src, a, b), "{src} /{a} /{b}");
            assert_eq!(k.dst(), mask_ip(dst, a, b), "{dst} /{a} /{b}");
            assert_eq!(
                (k.src_port(), k.dst_port(), k.proto(), k.vlan()),
                (1234, 80, 6, Some(42))
            );
            // Unused fields stay empty.
            let only = d.project(&[Field::DstPort]);
            assert_eq!(only.src(), IpAddr::from([0, 0, 0, 0]));
            assert_eq!(
                (only.src_port(), only.dst_port(), only.vlan()),
                (0, 80, None)
            );
        }
    }
    // Same address, different family bits: different keys.
    let v4 = Dir::new(
        "0.0.0.1".parse().unwrap(),
        "0.0.0.2".parse().unwrap(),
        1,
        2,
        17,
        None,
    );
    let v6 = Dir::new(
        "::1".parse().unwrap(),
        "::2".parse().unwrap(),
        1,
        2,
        17,
        None,
    );
    let keys = [Field::SrcIp(32, 128), Field::DstIp(32, 128)];
    assert_ne!(v4.project(&keys), v6.project(&keys));
}

/// The final flush of a big table arrives as one large batch, which the merger splits over two
/// threads: the snapshots and the summary must equal feeding the same deltas in small batches.
#[test]
fn a_large_batch_split_over_threads_equals_small_batches() {
    use crate::table::FlowDelta;
    use netspectra_packet::FlowKey;
    let specs = || {
        let mut scan = ViewSpec::exact("scan", vec![Field::SrcIp(32, 128)]);
        scan.metrics = vec![Metric::Flows, Metric::Distinct(Field::DstPort)];
        let mut heavy = ViewSpec::exact("heavy", vec![Field::SrcIp(24, 64), Field::DstPort]);
        heavy.mode = ViewMode::TopK {
            k: 20,
            eps: 0.001,
            delta: 0.01,
            rank: Metric::Bytes,
        };
        let mut v = vec![
            ViewSpec::exact("five", Field::five_tuple()),
            ViewSpec::exact("src", vec![Field::SrcIp(32, 128)]),
            ViewSpec::exact("dport", vec![Field::DstPort, Field::Proto]),
            scan,
            heavy,
        ];
        for s in &mut v {
            s.interval = 1000 * SEC;
        }
        v
    };
    let deltas: Vec<FlowDelta> = (0..3 * PARALLEL_BATCH as u32)
        .map(|i| {
            let v6 = i % 5 == 0;
            let (src, dst): (IpAddr, IpAddr) = if v6 {
                (
                    [0x2001, 0xdb8, 0, 0, 0, 0, (i % 97) as u16, 1].into(),
                    [0x2001, 0xdb8, 0, 0, 0, 0, 0, (i % 13) as u16].into(),
                )
            } else {
                (
                    [10, 0, (i % 31) as u8, (i % 251) as u8].into(),
                    [192, 0, 2, (i % 17) as u8].into(),
                )
            };
            FlowDelta {
                key: FlowKey {
                    src,
                    dst,
                    src_port: 1024 + (i % 4000) as u16,
                    dst_port: [53, 80, 443, 8080][(i % 4) as usize],
                    proto: if i % 3 == 0 { 17 } else { 6 },
                    vlan: (i % 7 == 0).then_some(10),
                },
                packets: [1 + (i % 9) as u64, (i % 4) as u64],
                bytes: [60 + (i % 1400) as u64, (i % 4) as u64 * 1500],
                new_flow: i % 2 == 0,
                first: 1_000 * SEC + i as i64,
            }
        })
        .collect();
    // Feeds the deltas in batches of `chunk` (staged until `stage_limit` deltas are waiting;
    // 0 applies each batch on arrival, a small one on this thread alone), then ends the run;
    // returns the merger and its snapshots.
    let merge = |chunk: usize, stage_limit: usize| {
        let mut m = Merger::new(1, specs());
        m.stage_limit = stage_limit;
        let mut snaps = Vec::new();
        for c in deltas.chunks(chunk) {
            m.handle(
                WorkerMsg::Deltas {
                    worker: 0,
                    epoch: 0,
                    deltas: c.to_vec(),
                },
                &mut |_| {},
            );
        }
        m.handle(
            WorkerMsg::Done {
                worker: 0,
                counters: Default::default(),
                decode: Default::default(),
                table_bytes: 0,
            },
            &mut |o| {
                if let Output::Snapshot(s) = o {
                    snaps.push(s)
                }
            },
        );
        (m, snaps)
    };
    let (big, big_snaps) = merge(deltas.len(), 0);
    let (small, small_snaps) = merge(100, 0);
    // Small batches staged and applied together in runs of about 5000 (the last at the end).
    let (staged, staged_snaps) = merge(100, 5000);
    assert_eq!(big_snaps.len(), 5);
    assert_eq!(big_snaps.len(), small_snaps.len());
    assert_eq!(big_snaps.len(), staged_snaps.len());
    let other = small_snaps.iter().zip(&staged_snaps);
    for (a, b) in big_snaps.iter().zip(&small_snaps).chain(other) {
        assert_eq!(a.view, b.view);
        let pairs = |s: &Snapshot| -> Vec<(Option<VKey>, Vec<u64>)> {
            (0..s.rows.len())
                .map(|i| (s.rows[i], s.row_values(i).to_vec()))
                .collect()
        };
        let mut ra = pairs(a);
        let mut rb = pairs(b);
        ra.sort();
        rb.sort();
        assert_eq!(ra, rb, "view {}", a.view);
        assert!(!ra.is_empty());
    }
    let key = |s: &Summary| {
        (
            s.packets,
            s.bytes,
            s.flows,
            s.by_proto.clone(),
            s.top_talkers.clone(),
            s.top_conversations.clone(),
        )
    };
    let sa = big.summary(10);
    assert_eq!(key(&sa), key(&small.summary(10)));
    assert_eq!(key(&sa), key(&staged.summary(10)));
    assert_eq!(
        sa.packets,
        deltas
            .iter()
            .map(|d| d.packets[0] + d.packets[1])
            .sum::<u64>()
    );
}

#[test]
fn a_full_exact_view_counts_new_keys_in_one_overflow_row() {
    // 12 source addresses (7 initiators, 5 responders) in one window, room for 4 keys.
    let mut v = ViewSpec::exact("src", vec![Field::SrcIp(32, 128)]);
    v.mode = ViewMode::Exact { max_keys: 4 };
    v.interval = 1000 * SEC;
    let (snaps, summary, _) = run(1, vec![v]);
    assert_eq!(snaps.len(), 1);
    let s = &snaps[0];
    let keyed = s.rows.iter().filter(|k| k.is_some()).count();
    let overflow = s.rows.iter().filter(|k| k.is_none()).count();
    assert_eq!((keyed, overflow), (4, 1), "4 keys and one overflow row");
    assert!(s.overflow_keys > 0);
    // Nothing is lost: the overflow row carries what the dropped keys would have counted.
    assert_eq!(sum(&snaps, "src", "packets"), summary.packets);
    assert_eq!(sum(&snaps, "src", "flows"), summary.flows);
}

mod jsonl {
    use super::*;
    use proptest::prelude::*;

    fn key() -> impl Strategy<Value = Option<VKey>> {
        let k = (
            any::<[u64; 2]>(),
            any::<[u64; 2]>(),
            any::<u32>(),
            prop_oneof![Just(NO_VLAN), 0u16..4096],
            any::<u8>(),
            0u8..4,
        )
            .prop_map(|(src, dst, ports, vlan, proto, fam)| {
                // An IPv4 address lives in the low 32 bits of the first word.
                let v4 = |w: [u64; 2]| [w[0] & 0xffff_ffff, 0];
                VKey {
                    src: if fam & 1 == 0 { v4(src) } else { src },
                    dst: if fam & 2 == 0 { v4(dst) } else { dst },
                    ports,
                    vlan,
                    proto,
                    fam,
                }
            });
        prop_oneof![9 => k.prop_map(Some), 1 => Just(None)]
    }

    fn snapshot() -> impl Strategy<Value = Snapshot> {
        let fields = prop::sample::subsequence(
            vec![
                Field::SrcIp(32, 128),
                Field::DstIp(24, 64),
                Field::SrcPort,
                Field::DstPort,
                Field::Proto,
                Field::Vlan,
            ],
            1..=6,
        );
        (
            fields,
            prop::collection::vec((key(), prop::collection::vec(any::<u64>(), 3)), 0..40),
            any::<i64>(),
        )
            .prop_map(|(keys, pairs, start)| {
                let (rows, values): (Vec<_>, Vec<_>) = pairs.into_iter().unzip();
                let mut columns = vec!["interval_start".to_string(), "interval_end".to_string()];
                columns.extend(keys.iter().map(|k| k.column()));
                columns.extend(["packets", "bytes", "distinct_dst_port"].map(String::from));
                Snapshot {
                    view: "v".into(),
                    start,
                    end: start.saturating_add(60 * SEC),
                    keys,
                    columns,
                    rows,
                    values: values.concat(),
                    overflow_keys: 0,
                    start_text: crate::record::rfc3339(start),
                    end_text: crate::record::rfc3339(start.saturating_add(60 * SEC)),
                }
            })
    }

    proptest! {
        /// The hand-rolled JSON lines equal serde_json's rendering of every row.
        #[test]
        fn write_jsonl_equals_serde_json(s in snapshot()) {
            let mut fast = Vec::new();
            s.write_jsonl(&mut fast).unwrap();
            let mut slow = Vec::new();
            for i in 0..s.rows.len() {
                serde_json::to_writer(&mut slow, &s.row(i)).unwrap();
                slow.push(b'\n');
            }
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(slow).unwrap());
        }
    }

    #[test]
    fn write_jsonl_of_a_real_run_equals_serde_json() {
        // Views over the synthetic traffic, including a full view with its overflow row.
        let mut full = ViewSpec::exact("full", vec![Field::SrcIp(32, 128), Field::DstPort]);
        full.mode = ViewMode::Exact { max_keys: 3 };
        let (snaps, _, _) = run(
            1,
            vec![full, ViewSpec::exact("nets", vec![Field::DstIp(24, 64)])],
        );
        assert!(snaps.iter().any(|s| s.rows.iter().any(|k| k.is_none())));
        for s in &snaps {
            let mut fast = Vec::new();
            s.write_jsonl(&mut fast).unwrap();
            let slow: String = (0..s.rows.len())
                .map(|i| serde_json::to_string(&s.row(i)).unwrap() + "\n")
                .collect();
            assert_eq!(String::from_utf8(fast).unwrap(), slow);
        }
    }
}

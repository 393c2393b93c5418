use super::*;
use etherparse::PacketBuilder;
use netspectra_packet::{FlowKey, InterfaceInfo, LinkType, Packet};
use netspectra_pcap::{CaptureWriter, OutputFormat};
use std::collections::{HashMap, HashSet};
use std::io::Cursor;

/// Records what each worker saw.
#[derive(Default)]
struct Seen {
    keys: HashSet<FlowKey>,
    packets: u64,
    /// (tick, packets seen before it)
    ticks: Vec<(i64, u64)>,
    max_ts_before_tick: Vec<i64>,
    last_ts: i64,
}

impl Analysis for Seen {
    fn on_batch(&mut self, batch: &Batch<'_>) {
        for p in batch.iter() {
            let v = decode(p.data, p.link, None, &DecodeOptions::default());
            if let Some(k) = FlowKey::from_view(&v) {
                self.keys.insert(k.canonical().0);
            }
            self.packets += 1;
            self.last_ts = self.last_ts.max(p.ts.as_nanos());
        }
    }
    fn on_tick(&mut self, at: Timestamp) {
        self.ticks.push((at.as_nanos(), self.packets));
        self.max_ts_before_tick.push(self.last_ts);
    }
}

/// An in-memory nanosecond pcap of Ethernet `frames` with their timestamps.
fn ethernet_pcap(frames: impl IntoIterator<Item = (Timestamp, Vec<u8>)>) -> Vec<u8> {
    ethernet_capture(OutputFormat::Pcap { nanos: true }, frames)
}

/// An in-memory capture of Ethernet `frames` in `format`.
fn ethernet_capture(
    format: OutputFormat,
    frames: impl IntoIterator<Item = (Timestamp, Vec<u8>)>,
) -> Vec<u8> {
    let ifaces = [InterfaceInfo {
        link: LinkType::ETHERNET,
        ..Default::default()
    }];
    let mut w = CaptureWriter::new(Vec::new(), format, &ifaces).unwrap();
    for (ts, frame) in frames {
        w.write_packet(&Packet::whole(ts, LinkType::ETHERNET, &frame), &ifaces)
            .unwrap();
    }
    w.finish().unwrap()
}

/// 4000 packets of 400 two-way flows between 40 hosts, 1 ms apart.
fn capture() -> Vec<u8> {
    ethernet_pcap((0..4000u32).map(|i| {
        let flow = (i * 7919) % 400;
        let (a, b) = ([10, 0, 0, (flow % 40) as u8], [10, 1, 0, (flow / 40) as u8]);
        let (sp, dp) = (10000 + flow as u16, 80);
        let bld = if i % 2 == 0 {
            PacketBuilder::ethernet2([1; 6], [2; 6])
                .ipv4(a, b, 64)
                .tcp(sp, dp, i, 100)
        } else {
            PacketBuilder::ethernet2([2; 6], [1; 6])
                .ipv4(b, a, 64)
                .tcp(dp, sp, i, 100)
        };
        let mut frame = Vec::new();
        bld.write(&mut frame, &[0u8; 10]).unwrap();
        (Timestamp(1_000_000_000 + i as i64 * 1_000_000), frame)
    }))
}

/// A reader over an in-memory capture, in 8 KiB chunks so that a run spans many batches.
fn reader(bytes: Vec<u8>) -> CaptureReader {
    CaptureReader::from_reader("mem", Box::new(Cursor::new(bytes)), None)
        .unwrap()
        .with_chunk_size(8192)
}

fn run(workers: usize, tick: Option<i64>) -> RunOutcome<Seen> {
    let mut r = reader(capture());
    let cfg = EngineConfig {
        workers,
        tick_ns: tick,
        queue_depth: 2,
    };
    let stop = AtomicBool::new(false);
    run_file(&mut r, &cfg, &stop, |_| Seen::default(), &mut |_| {})
}

#[test]
fn workers_share_nothing_and_never_split_a_flow() {
    let single = run(1, None);
    assert_eq!(single.analyses[0].packets, 4000);
    let all: HashSet<FlowKey> = single.analyses[0].keys.clone();
    assert_eq!(all.len(), 400);
    for n in [2, 3, 4] {
        let out = run(n, None);
        assert!(out.error.is_none());
        assert_eq!(out.analyses.iter().map(|a| a.packets).sum::<u64>(), 4000);
        let mut owner: HashMap<FlowKey, usize> = HashMap::new();
        for (w, a) in out.analyses.iter().enumerate() {
            assert!(a.packets > 0, "worker {w} of {n} got nothing");
            for k in &a.keys {
                assert!(
                    owner.insert(*k, w).is_none(),
                    "flow {k:?} seen by two workers"
                );
            }
        }
        assert_eq!(owner.len(), 400);
    }
}

#[test]
fn ticks_cut_every_worker_at_the_same_packet_time() {
    // 4000 packets 1 ms apart from t=1 s to 4.999 s: ticks every 500 ms at 1.5 s ... 4.5 s.
    for n in [1, 2, 3] {
        let out = run(n, Some(500_000_000));
        for a in &out.analyses {
            let ticks: Vec<i64> = a.ticks.iter().map(|t| t.0).collect();
            assert_eq!(
                ticks,
                (3..=9).map(|k| k as i64 * 500_000_000).collect::<Vec<_>>(),
                "workers={n}"
            );
            for (i, (t, _)) in a.ticks.iter().enumerate() {
                assert!(
                    a.max_ts_before_tick[i] < *t,
                    "a packet at or after the tick arrived before it"
                );
            }
        }
        // Summed over workers, exactly 500 packets fall in each full interval.
        let before: Vec<u64> = (0..7)
            .map(|i| out.analyses.iter().map(|a| a.ticks[i].1).sum())
            .collect();
        assert_eq!(
            before,
            (1..=7).map(|k| k * 500).collect::<Vec<u64>>(),
            "workers={n}"
        );
    }
}

#[test]
fn stop_flag_ends_the_run() {
    let mut r = reader(capture());
    let stop = AtomicBool::new(true);
    let out = run_file(
        &mut r,
        &EngineConfig {
            workers: 2,
            ..Default::default()
        },
        &stop,
        |_| Seen::default(),
        &mut |_| {},
    );
    assert!(out.stopped);
    assert_eq!(out.analyses.iter().map(|a| a.packets).sum::<u64>(), 0);
}

#[test]
fn a_huge_timestamp_jump_costs_a_bounded_number_of_ticks() {
    // Packets 30 years apart with 1 ms ticks: 9.5e11 boundaries lie between them.
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut frame, b"x")
        .unwrap();
    let bytes = ethernet_pcap(
        [1_000_000_000i64, 1_950_000_000, 1_950_000_000]
            .iter()
            .enumerate()
            .map(|(i, secs)| (Timestamp::from_parts(*secs, i as u32), frame.clone())),
    );
    for workers in [1, 2] {
        let mut r = reader(bytes.clone());
        let cfg = EngineConfig {
            workers,
            tick_ns: Some(1_000_000),
            queue_depth: 2,
        };
        let out = run_file(
            &mut r,
            &cfg,
            &AtomicBool::new(false),
            |_| Seen::default(),
            &mut |_| {},
        );
        for a in &out.analyses {
            let ticks: Vec<i64> = a.ticks.iter().map(|t| t.0).collect();
            assert!(
                ticks.len() as u32 <= MAX_CATCHUP_TICKS + 1,
                "{} ticks",
                ticks.len()
            );
            assert!(ticks.windows(2).all(|w| w[0] < w[1]), "ticks must increase");
            // The last tick is the boundary just below the late packets: nothing is left out.
            assert_eq!(*ticks.last().unwrap(), 1_950_000_000 * 1_000_000_000);
        }
        assert_eq!(out.analyses.iter().map(|a| a.packets).sum::<u64>(), 3);
    }
}

/// A timestamp at the end of the representable range (a corrupt or hostile time that
/// saturated, e.g. a pcapng high word of 0xFFFFFFFF) has no boundary after it: ticks stop
/// instead of announcing the same boundary forever, and every packet is still delivered.
#[test]
fn a_saturated_timestamp_ends_the_ticks_instead_of_spinning() {
    let mut frame = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4([10, 0, 0, 1], [10, 0, 0, 2], 64)
        .udp(1, 2)
        .write(&mut frame, b"x")
        .unwrap();
    // pcapng (nanosecond units) holds the saturated time as it is.
    let bytes = ethernet_capture(
        OutputFormat::Pcapng,
        [
            Timestamp(1_700_000_000_000_000_000),
            Timestamp(i64::MAX),
            Timestamp(i64::MAX),
            Timestamp(1_700_000_000_000_000_001),
        ]
        .into_iter()
        .map(|ts| (ts, frame.clone())),
    );
    for workers in [1, 2] {
        for tick in [1_000_000, 1_000_000_000, 7] {
            let mut r = reader(bytes.clone());
            let cfg = EngineConfig {
                workers,
                tick_ns: Some(tick),
                queue_depth: 2,
            };
            let out = run_file(
                &mut r,
                &cfg,
                &AtomicBool::new(false),
                |_| Seen::default(),
                &mut |_| {},
            );
            assert_eq!(out.analyses.iter().map(|a| a.packets).sum::<u64>(), 4);
            assert!(out.analyses.iter().any(|a| a.last_ts == i64::MAX));
            for a in &out.analyses {
                assert!(a.ticks.len() as u32 <= MAX_CATCHUP_TICKS + 2);
                assert!(a.ticks.windows(2).all(|w| w[0].0 < w[1].0));
            }
        }
    }
    let mut t = Ticker::new(Some(1_000));
    assert_eq!(t.due(i64::MAX), None);
    assert_eq!(t.due(i64::MAX), None);
}

#[test]
fn a_corrupt_record_ends_the_run_after_everything_before_it() {
    // Record 2000's captured length is absurd: the reader stops there with an error.
    let mut bytes = capture();
    let rec = 24 + 2000 * (16 + 64);
    bytes[rec + 8..rec + 12].copy_from_slice(&0xffff_fff0u32.to_le_bytes());
    for workers in [1, 2] {
        let mut r = reader(bytes.clone());
        let cfg = EngineConfig {
            workers,
            tick_ns: None,
            queue_depth: 2,
        };
        let mut last_offset = 0;
        let out = run_file(
            &mut r,
            &cfg,
            &AtomicBool::new(false),
            |_| Seen::default(),
            &mut |st| last_offset = st.input_offset,
        );
        assert!(out.error.is_some(), "workers={workers}");
        assert!(!out.stopped);
        assert_eq!(
            out.analyses.iter().map(|a| a.packets).sum::<u64>(),
            2000,
            "workers={workers}"
        );
        assert_eq!(out.stats.packets, 2000);
        assert!(last_offset > 0, "progress was reported");
    }
}

#[test]
fn stop_flag_ends_a_single_worker_run_too() {
    let mut r = reader(capture());
    let out = run_file(
        &mut r,
        &EngineConfig::default(),
        &AtomicBool::new(true),
        |_| Seen::default(),
        &mut |_| {},
    );
    assert!(out.stopped);
    assert_eq!(out.analyses[0].packets, 0);
}

/// Frames of every shape the partition fast path reads: tags, IPv4/IPv6, payload, plus noise.
fn frame_strategy() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    use proptest::prelude::*;
    (
        0usize..3,
        any::<bool>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        proptest::collection::vec(any::<u8>(), 0..64),
        0usize..80,
        any::<(usize, u8)>(),
    )
        .prop_map(|(tags, v6, a, b, payload, cut, (at, noise))| {
            let mut f = Vec::new();
            let eth = PacketBuilder::ethernet2([1; 6], [2; 6]);
            let (a4, b4): ([u8; 4], [u8; 4]) =
                (a[..4].try_into().unwrap(), b[..4].try_into().unwrap());
            match (tags, v6) {
                (0, false) => eth.ipv4(a4, b4, 9).udp(1, 2).write(&mut f, &payload),
                (0, true) => eth.ipv6(a, b, 9).tcp(1, 2, 3, 4).write(&mut f, &payload),
                (1, false) => eth
                    .single_vlan(7.try_into().unwrap())
                    .ipv4(a4, b4, 9)
                    .udp(1, 2)
                    .write(&mut f, &payload),
                (1, true) => eth
                    .single_vlan(7.try_into().unwrap())
                    .ipv6(a, b, 9)
                    .udp(1, 2)
                    .write(&mut f, &payload),
                (_, v6) => {
                    let q = eth.double_vlan(7.try_into().unwrap(), 8.try_into().unwrap());
                    if v6 {
                        q.ipv6(a, b, 9).udp(1, 2).write(&mut f, &payload)
                    } else {
                        q.ipv4(a4, b4, 9).udp(1, 2).write(&mut f, &payload)
                    }
                }
            }
            .unwrap();
            // Sometimes cut the frame short or flip one byte: both paths must still agree.
            if cut < f.len() && cut % 3 == 0 {
                f.truncate(cut);
            }
            if !f.is_empty() && at % 4 == 0 {
                let i = at % f.len();
                f[i] ^= noise;
            }
            f
        })
}

proptest::proptest! {
    /// The direct address read and the full decoder put a frame on the same worker.
    #[test]
    fn partition_fast_path_agrees_with_the_decoder(f in frame_strategy()) {
        let meta = PacketMeta {
            offset: 0,
            caplen: f.len() as u32,
            orig_len: f.len() as u32,
            ts: Timestamp(0),
            link: LinkType::ETHERNET,
            iface: 0,
            vlan_tci: None,
        };
        let v = decode(&f, LinkType::ETHERNET, None, &DecodeOptions::default());
        let slow = match v.ip {
            Some(ip) => pair_hash(fold(ip.src), fold(ip.dst)),
            None => 0,
        };
        if let Some((a, b)) = ethernet_addresses(&f) {
            // When the fast path reads addresses, the decoder must find the same ones (or
            // reject the header, in which case the packet is not a flow anyway).
            if let Some(ip) = v.ip {
                proptest::prop_assert_eq!((ip.src, ip.dst), (a, b));
            }
        } else {
            proptest::prop_assert_eq!(partition_hash(&f, &meta), slow);
        }
        // Symmetric: swapping the addresses keeps the worker.
        if let Some((a, b)) = ethernet_addresses(&f) {
            proptest::prop_assert_eq!(pair_hash(fold(a), fold(b)), pair_hash(fold(b), fold(a)));
        }
    }
}

//! Reader/writer round trips and bad-input behaviour of the streaming capture reader.

use netspectra_packet::{InterfaceInfo, LinkType, PacketSource, SourceError, Timestamp};
use netspectra_pcap::{CaptureReader, CaptureWriter, FileFormat, OutputFormat, PcapngWriter};
use proptest::prelude::*;
use std::io::Cursor;

#[derive(Clone, Debug, PartialEq)]
struct Rec {
    ts: i64,
    orig: u32,
    data: Vec<u8>,
    link: LinkType,
}

fn read_all(bytes: Vec<u8>, chunk: usize) -> Result<(Vec<Rec>, CaptureReader), SourceError> {
    let mut r = CaptureReader::from_reader("mem", Box::new(Cursor::new(bytes)), None)?
        .with_chunk_size(chunk);
    let mut out = Vec::new();
    while r.next_batch(&mut |b| {
        for p in b.iter() {
            out.push(Rec {
                ts: p.ts.as_nanos(),
                orig: p.orig_len,
                data: p.data.to_vec(),
                link: p.link,
            });
        }
    })? {}
    Ok((out, r))
}

fn write(recs: &[Rec], fmt: OutputFormat) -> Vec<u8> {
    let ifaces = [InterfaceInfo {
        link: LinkType::ETHERNET,
        snaplen: 65535,
        ..Default::default()
    }];
    let mut w = CaptureWriter::new(Vec::new(), fmt, &ifaces).unwrap();
    for r in recs {
        let p = netspectra_packet::Packet {
            ts: Timestamp(r.ts),
            orig_len: r.orig,
            iface: 0,
            link: r.link,
            vlan_tci: None,
            data: &r.data,
        };
        w.write_packet(&p, &ifaces).unwrap();
    }
    w.finish().unwrap()
}

fn arb_recs() -> impl Strategy<Value = Vec<Rec>> {
    proptest::collection::vec(
        (
            0i64..4_000_000_000_000_000_000,
            proptest::collection::vec(any::<u8>(), 0..3000),
            0u32..100,
        )
            .prop_map(|(ts, data, extra)| Rec {
                ts,
                orig: data.len() as u32 + extra,
                data,
                link: LinkType::ETHERNET,
            }),
        0..60,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn pcap_and_pcapng_round_trip_at_any_chunk_size(recs in arb_recs(), chunk in 4096usize..20000) {
        for fmt in [OutputFormat::Pcap { nanos: true }, OutputFormat::Pcapng] {
            let (got, r) = read_all(write(&recs, fmt), chunk).unwrap();
            prop_assert_eq!(&got, &recs);
            prop_assert_eq!(r.stats().packets, recs.len() as u64);
            prop_assert_eq!(r.warning_count(), 0);
        }
        // Microsecond pcap keeps microseconds.
        let (got, _) = read_all(write(&recs, OutputFormat::Pcap { nanos: false }), chunk).unwrap();
        for (g, w) in got.iter().zip(&recs) {
            prop_assert_eq!(g.ts, w.ts - w.ts.rem_euclid(1000));
        }
    }
}

fn be_pcap(nanos: bool) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(if nanos { 0xa1b23c4du32 } else { 0xa1b2c3d4 }).to_be_bytes());
    f.extend_from_slice(&2u16.to_be_bytes());
    f.extend_from_slice(&4u16.to_be_bytes());
    f.extend_from_slice(&[0; 8]);
    f.extend_from_slice(&65535u32.to_be_bytes());
    f.extend_from_slice(&101u32.to_be_bytes());
    for (i, len) in [(0u32, 5u32), (1, 7)] {
        f.extend_from_slice(&(1000 + i).to_be_bytes());
        f.extend_from_slice(&(500u32).to_be_bytes());
        f.extend_from_slice(&len.to_be_bytes());
        f.extend_from_slice(&(len + 1).to_be_bytes());
        f.extend(std::iter::repeat_n(0x45u8, len as usize));
    }
    f
}

#[test]
fn big_endian_pcap_micro_and_nano() {
    let (recs, r) = read_all(be_pcap(false), 4096).unwrap();
    assert!(matches!(
        r.format(),
        FileFormat::Pcap {
            big_endian: true,
            nanos: false,
            ..
        }
    ));
    assert_eq!(recs.len(), 2);
    assert_eq!(recs[0].ts, 1000 * 1_000_000_000 + 500_000);
    assert_eq!((recs[1].data.len(), recs[1].orig), (7, 8));
    assert_eq!(recs[0].link, LinkType::RAW);
    let (recs, _) = read_all(be_pcap(true), 4096).unwrap();
    assert_eq!(recs[0].ts, 1000 * 1_000_000_000 + 500);
}

/// Builds a pcapng block (little- or big-endian) with the given body.
fn block(be: bool, ty: u32, body: &[u8]) -> Vec<u8> {
    let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let len = 12 + body.len() as u32;
    let mut b = Vec::new();
    b.extend_from_slice(&w(ty));
    b.extend_from_slice(&w(len));
    b.extend_from_slice(body);
    b.extend_from_slice(&w(len));
    b
}

fn shb(be: bool) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(
        &(if be {
            0x1a2b3c4du32.to_be_bytes()
        } else {
            0x1a2b3c4du32.to_le_bytes()
        }),
    );
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    body.extend_from_slice(&w16(1));
    body.extend_from_slice(&w16(0));
    body.extend_from_slice(&[0xff; 8]);
    block(be, 0x0a0d0d0a, &body)
}

fn idb(be: bool, link: u16, tsresol: Option<u8>, tsoffset: Option<i64>) -> Vec<u8> {
    let w16 = |v: u16| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut body = Vec::new();
    body.extend_from_slice(&w16(link));
    body.extend_from_slice(&w16(0));
    body.extend_from_slice(
        &(if be {
            0u32.to_be_bytes()
        } else {
            0u32.to_le_bytes()
        }),
    );
    if let Some(r) = tsresol {
        body.extend_from_slice(&w16(9));
        body.extend_from_slice(&w16(1));
        body.extend_from_slice(&[r, 0, 0, 0]);
    }
    if let Some(o) = tsoffset {
        body.extend_from_slice(&w16(14));
        body.extend_from_slice(&w16(8));
        body.extend_from_slice(&(if be { o.to_be_bytes() } else { o.to_le_bytes() }));
    }
    body.extend_from_slice(&[0, 0, 0, 0]);
    block(be, 1, &body)
}

fn epb(be: bool, if_id: u32, units: u64, data: &[u8]) -> Vec<u8> {
    let w = |v: u32| if be { v.to_be_bytes() } else { v.to_le_bytes() };
    let mut body = Vec::new();
    body.extend_from_slice(&w(if_id));
    body.extend_from_slice(&w((units >> 32) as u32));
    body.extend_from_slice(&w(units as u32));
    body.extend_from_slice(&w(data.len() as u32));
    body.extend_from_slice(&w(data.len() as u32));
    body.extend_from_slice(data);
    body.extend(std::iter::repeat_n(0, (4 - data.len() % 4) % 4));
    block(be, 6, &body)
}

#[test]
fn pcapng_sections_resolutions_offsets_and_block_kinds() {
    let mut f = shb(false);
    f.extend(idb(false, 1, None, None)); // µs default
    f.extend(idb(false, 101, Some(9), None)); // ns
    f.extend(epb(false, 0, 1_000_000, b"aaaa"));
    f.extend(epb(false, 1, 2_000_000_000, b"bbbbb"));
    f.extend(block(false, 4, &[0, 0, 0, 0])); // name resolution: skipped
    f.extend(block(false, 0x0bad, &[1, 2, 3, 4])); // unknown: skipped
                                                   // Second section, big-endian, binary resolution 2^-10 and an offset of 100 s.
    f.extend(shb(true));
    f.extend(idb(true, 113, Some(0x80 | 10), Some(100)));
    f.extend(epb(true, 0, 1024, b"cc"));
    // Simple packet block on that interface: no timestamp.
    let mut spb = 3u32.to_be_bytes().to_vec();
    spb.extend_from_slice(&20u32.to_be_bytes());
    spb.extend_from_slice(&3u32.to_be_bytes());
    spb.extend_from_slice(b"ddd\0");
    spb.extend_from_slice(&20u32.to_be_bytes());
    f.extend(spb);
    let (recs, r) = read_all(f, 4096).unwrap();
    assert_eq!(r.sections(), 2);
    assert_eq!(r.interfaces().len(), 3);
    assert_eq!(r.stats().skipped_blocks, 2);
    assert_eq!(recs.len(), 4);
    assert_eq!(
        (recs[0].ts, recs[0].link),
        (1_000_000_000, LinkType::ETHERNET)
    );
    assert_eq!((recs[1].ts, recs[1].link), (2_000_000_000, LinkType::RAW));
    assert_eq!(
        (recs[2].ts, recs[2].link),
        (101_000_000_000, LinkType::LINUX_SLL)
    );
    assert_eq!(recs[3].data, b"ddd");
}

/// Ten 100-byte Ethernet records, timestamps 0..10 ns.
fn ten_records() -> Vec<Rec> {
    (0..10)
        .map(|i| Rec {
            ts: i,
            orig: 100,
            data: vec![i as u8; 100],
            link: LinkType::ETHERNET,
        })
        .collect()
}

#[test]
fn truncated_last_record_is_a_warning_and_keeps_earlier_packets() {
    let recs = ten_records();
    for fmt in [OutputFormat::Pcap { nanos: true }, OutputFormat::Pcapng] {
        let mut bytes = write(&recs, fmt);
        bytes.truncate(bytes.len() - 30);
        let (got, r) = read_all(bytes, 4096).unwrap();
        assert_eq!(got.len(), 9);
        assert_eq!(r.warning_count(), 1);
        assert!(
            r.warnings()[0].message.contains("truncated"),
            "{:?}",
            r.warnings()
        );
    }
}

#[test]
fn corrupt_record_in_the_middle_names_offset_after_delivering_earlier_packets() {
    let recs = ten_records();
    let mut bytes = write(&recs, OutputFormat::Pcap { nanos: true });
    let bad_at = 24 + 5 * 116; // sixth record header
    bytes[bad_at + 8..bad_at + 12].copy_from_slice(&0x7fff_ffffu32.to_le_bytes());
    let mut r = CaptureReader::from_reader("bad.pcap", Box::new(Cursor::new(bytes)), None).unwrap();
    let mut n = 0;
    let err = loop {
        match r.next_batch(&mut |b| n += b.len()) {
            Ok(true) => continue,
            Ok(false) => panic!("expected an error"),
            Err(e) => break e,
        }
    };
    assert_eq!(n, 5);
    let msg = err.to_string();
    assert!(
        msg.starts_with(&format!("bad.pcap: byte offset {bad_at}:")),
        "{msg}"
    );
    assert!(matches!(err, SourceError::Corrupt { .. }));

    // pcapng: a block whose trailing length disagrees.
    let mut ng = write(&recs, OutputFormat::Pcapng);
    let len = ng.len();
    ng[len - 4] ^= 0x40;
    let e = read_all(ng, 4096).unwrap_err();
    assert!(
        e.to_string()
            .contains("leading and trailing lengths differ"),
        "{e}"
    );
}

#[test]
fn bad_headers_are_format_errors() {
    for (bytes, needle) in [
        (vec![], "too short"),
        (
            b"GET / HTTP/1.1\r\n\r\n".to_vec(),
            "not a pcap or pcapng file",
        ),
        (
            {
                let mut v = be_pcap(false);
                v[5] = 9;
                v
            },
            "unsupported pcap version",
        ),
        (vec![0xd4, 0xc3, 0xb2, 0xa1, 2, 0], "header truncated"),
    ] {
        let e = CaptureReader::from_reader("x", Box::new(Cursor::new(bytes)), None)
            .expect_err("must fail");
        assert!(matches!(e, SourceError::Format { .. }), "{e}");
        assert!(e.to_string().contains(needle), "{e}");
    }
    // An interface id that was never described.
    let mut f = shb(false);
    f.extend(epb(false, 3, 0, b"x"));
    let e = read_all(f, 4096).unwrap_err();
    assert!(e.to_string().contains("interface 3"), "{e}");
}

#[test]
fn gzip_input_is_read_transparently() {
    use flate2::write::GzEncoder;
    use std::io::Write;
    let recs: Vec<Rec> = (0..1000)
        .map(|i| Rec {
            ts: i,
            orig: 60,
            data: vec![(i % 251) as u8; 60],
            link: LinkType::ETHERNET,
        })
        .collect();
    let plain = write(&recs, OutputFormat::Pcapng);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let r = CaptureReader::from_reader("x.gz", Box::new(Cursor::new(gz.finish().unwrap())), None)
        .unwrap();
    assert!(r.is_compressed());
    drop(r);
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&plain).unwrap();
    let bytes = gz.finish().unwrap();
    let (got, _) = read_all(bytes, 4096).unwrap();
    assert_eq!(got, recs);
}

#[test]
fn memory_stays_bounded_by_the_chunk() {
    // 20 MB of packets through a 64 KiB chunk: the reader's buffers never exceed the chunk size
    // plus one record.
    let recs: Vec<Rec> = (0..14000)
        .map(|i| Rec {
            ts: i,
            orig: 1500,
            data: vec![7; 1500],
            link: LinkType::ETHERNET,
        })
        .collect();
    let bytes = write(&recs, OutputFormat::Pcap { nanos: false });
    let mut r = CaptureReader::from_reader("x", Box::new(Cursor::new(bytes)), None)
        .unwrap()
        .with_chunk_size(64 << 10);
    let mut max_buf = 0;
    let mut n = 0;
    while let Some(b) = r.next_owned(None).unwrap() {
        max_buf = max_buf.max(b.data.capacity());
        n += b.metas.len();
    }
    assert_eq!(n, 14000);
    assert!(max_buf <= (64 << 10) + 1516, "buffer grew to {max_buf}");
}

#[test]
fn pcapng_writer_keeps_interface_metadata_it_is_given() {
    let mut w = PcapngWriter::new(Vec::new(), None).unwrap();
    let info = InterfaceInfo {
        link: LinkType::LINUX_SLL2,
        snaplen: 96,
        name: Some("eth9".into()),
        ..Default::default()
    };
    let id = w.add_interface(&info).unwrap();
    w.write_record(id, Timestamp(123_456_789_012), 1000, b"abc")
        .unwrap();
    let (recs, r) = read_all(w.finish().unwrap(), 4096).unwrap();
    assert_eq!(r.interfaces()[0].name.as_deref(), Some("eth9"));
    assert_eq!(r.interfaces()[0].snaplen, 96);
    assert_eq!(
        recs,
        vec![Rec {
            ts: 123_456_789_012,
            orig: 1000,
            data: b"abc".to_vec(),
            link: LinkType::LINUX_SLL2
        }]
    );
}

#[test]
fn obsolete_packet_block_is_read() {
    let mut f = shb(false);
    f.extend(idb(false, 1, Some(9), None));
    let mut body = Vec::new();
    body.extend_from_slice(&0u16.to_le_bytes()); // interface id
    body.extend_from_slice(&7u16.to_le_bytes()); // drops count
    body.extend_from_slice(&0u32.to_le_bytes()); // ts high
    body.extend_from_slice(&42u32.to_le_bytes()); // ts low (ns)
    body.extend_from_slice(&3u32.to_le_bytes()); // caplen
    body.extend_from_slice(&9u32.to_le_bytes()); // wire length
    body.extend_from_slice(b"abc\0");
    f.extend(block(false, 2, &body));
    let (recs, _) = read_all(f, 4096).unwrap();
    assert_eq!(
        recs,
        vec![Rec {
            ts: 42,
            orig: 9,
            data: b"abc".to_vec(),
            link: LinkType::ETHERNET
        }]
    );
}

/// A byte stream fed by a channel, like a pipe: a read blocks until something arrives and
/// returns what has arrived; a closed channel is end of input.
struct ChannelPipe {
    rx: std::sync::mpsc::Receiver<Vec<u8>>,
    left: Vec<u8>,
}

impl std::io::Read for ChannelPipe {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left.is_empty() {
            match self.rx.recv() {
                Ok(v) => self.left = v,
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.left.len());
        buf[..n].copy_from_slice(&self.left[..n]);
        self.left.drain(..n);
        Ok(n)
    }
}

#[test]
fn a_pipe_delivers_packets_as_they_arrive_not_when_a_chunk_is_full() {
    let recs = ten_records();
    let bytes = write(&recs, OutputFormat::Pcap { nanos: false });
    // The header and the first four records, then nothing more for now.
    let first: usize = 24 + recs[..4].iter().map(|r| 16 + r.data.len()).sum::<usize>();
    let (tx, rx) = std::sync::mpsc::channel();
    tx.send(bytes[..first].to_vec()).unwrap();
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let pipe = ChannelPipe {
            rx,
            left: Vec::new(),
        };
        let mut r = CaptureReader::from_reader("pipe", Box::new(pipe), None).unwrap();
        let mut got = 0;
        while let Some(b) = r.next_owned(None).unwrap() {
            got += b.metas.len();
            done_tx.send(got).unwrap();
        }
        got
    });
    // The four records come out while the writer is still connected (the wait only bounds a
    // hang: a reader that waited for a full chunk would never answer here).
    let got = done_rx.recv_timeout(std::time::Duration::from_secs(30));
    assert_eq!(got, Ok(4), "records held back until more input");
    tx.send(bytes[first..].to_vec()).unwrap();
    drop(tx);
    assert_eq!(reader.join().unwrap(), 10);
}

/// Times a format cannot hold are clamped to the nearest time it can, and counted, instead of
/// wrapping (pcap's 32-bit seconds) or turning a time before 1970 into the far future (pcapng's
/// unsigned units).
#[test]
fn timestamps_outside_the_format_are_clamped_and_counted() {
    let ifaces = [InterfaceInfo {
        link: LinkType::ETHERNET,
        ..Default::default()
    }];
    let times = [
        -5_000_000_000i64,         // 1969
        1_700_000_000_123_456_789, // fits both
        5_000_000_000_000_000_000, // 2128: past pcap's 2106
    ];
    for (fmt, want, clamped) in [
        (
            OutputFormat::Pcap { nanos: true },
            [0, 1_700_000_000_123_456_789, 4_294_967_295_999_999_999],
            2,
        ),
        (
            OutputFormat::Pcap { nanos: false },
            [0, 1_700_000_000_123_456_000, 4_294_967_295_999_999_000],
            2,
        ),
        (
            OutputFormat::Pcapng,
            [0, 1_700_000_000_123_456_789, 5_000_000_000_000_000_000],
            1,
        ),
    ] {
        let mut w = CaptureWriter::new(Vec::new(), fmt, &ifaces).unwrap();
        for ts in times {
            let p = netspectra_packet::Packet::whole(Timestamp(ts), LinkType::ETHERNET, &[0; 20]);
            w.write_packet(&p, &ifaces).unwrap();
        }
        assert_eq!(w.clamped_timestamps(), clamped, "{fmt:?}");
        let (recs, _) = read_all(w.finish().unwrap(), 1 << 16).unwrap();
        let got: Vec<i64> = recs.iter().map(|r| r.ts).collect();
        assert_eq!(got, want, "{fmt:?}");
    }
}

/// Complete pcap records in `plain` (little-endian, 16-byte record headers), walked
/// independently of the reader: the oracle for what a cut-short stream still holds.
fn complete_pcap_records(plain: &[u8]) -> usize {
    let mut p = 24;
    let mut n = 0;
    while p + 16 <= plain.len() {
        let incl = u32::from_le_bytes(plain[p + 8..p + 12].try_into().unwrap()) as usize;
        if p + 16 + incl > plain.len() {
            break;
        }
        p += 16 + incl;
        n += 1;
    }
    n
}

/// Reads every record of a file opened by path (the regular-file code path), then the error.
fn read_path(p: &std::path::Path) -> (usize, Option<SourceError>) {
    let mut r = CaptureReader::open(p).unwrap();
    let mut n = 0;
    loop {
        match r.next_batch(&mut |b| n += b.len()) {
            Ok(true) => {}
            Ok(false) => return (n, None),
            Err(e) => return (n, Some(e)),
        }
    }
}

/// A cut-short or corrupt gzip stream hands out every record that decompressed completely
/// (as `zcat` shows them), from a file exactly as from a pipe, and then stops with a bad-input
/// error naming the file and offset. Trailing junk after a complete gzip member likewise.
#[test]
fn damaged_gzip_gives_every_complete_record_then_an_error() {
    use flate2::write::GzEncoder;
    use std::io::{Read, Write};
    let recs: Vec<Rec> = (0..6000)
        .map(|i| Rec {
            ts: i * 1000,
            orig: 200,
            data: (0..200).map(|j| ((i * 7 + j) % 251) as u8).collect(),
            link: LinkType::ETHERNET,
        })
        .collect();
    let plain = write(&recs, OutputFormat::Pcap { nanos: true });
    let mut gz = GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&plain).unwrap();
    let whole = gz.finish().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = whole[..whole.len() * 6 / 10].to_vec();
    let mut junk = whole.clone();
    junk.extend_from_slice(b"this is not a gzip member, just junk after the first one");
    for (name, bytes) in [("cut.pcap.gz", cut), ("junk.pcap.gz", junk)] {
        // The oracle: whatever an independent decompressor gets out before it fails.
        let mut dec = flate2::read::GzDecoder::new(&bytes[..]);
        let mut out = Vec::new();
        let mut piece = [0u8; 4096];
        while let Ok(n) = dec.read(&mut piece) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&piece[..n]);
        }
        let want = complete_pcap_records(&out);
        assert!(want > 100, "{name}: the damaged stream still holds records");
        let path = dir.path().join(name);
        std::fs::write(&path, &bytes).unwrap();
        let (from_file, err) = read_path(&path);
        let err = err.unwrap_or_else(|| panic!("{name}: damage must be reported"));
        assert!(matches!(err, SourceError::Corrupt { .. }), "{name}: {err}");
        assert!(err.to_string().contains(name), "{err}");
        let mut piped =
            CaptureReader::from_reader(name, Box::new(Cursor::new(bytes)), None).unwrap();
        let mut from_pipe = 0;
        let pipe_err = loop {
            match piped.next_batch(&mut |b| from_pipe += b.len()) {
                Ok(true) => {}
                Ok(false) => break None,
                Err(e) => break Some(e),
            }
        };
        assert!(
            matches!(pipe_err, Some(SourceError::Corrupt { .. })),
            "{name}"
        );
        if name.starts_with("junk") {
            assert_eq!(
                from_file,
                recs.len(),
                "{name}: the complete member is read whole"
            );
        } else {
            assert_eq!(from_file, want, "{name}: from a file");
        }
        assert_eq!(from_pipe, from_file, "{name}: a pipe and a file agree");
    }
}

/// A record header cut short says how many header bytes are missing; a pcapng file cut inside
/// its first section header is refused like a pcap file cut inside its file header.
#[test]
fn truncation_messages_count_the_right_bytes() {
    let mut bytes = write(&ten_records(), OutputFormat::Pcap { nanos: true });
    let full = bytes.len();
    bytes.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // half of a 16-byte record header
    let (recs, r) = read_all(bytes, 4096).unwrap();
    assert_eq!(recs.len(), 10);
    let w = r.warnings()[0].to_string();
    assert!(w.contains("8 of 16 bytes"), "{w}");
    assert!(w.contains(&full.to_string()), "{w}");

    let shb = shb(false);
    for cut in [4, 12, shb.len() - 4] {
        let e = CaptureReader::from_reader("x", Box::new(Cursor::new(shb[..cut].to_vec())), None)
            .and_then(|mut r| r.next_batch(&mut |_| {}).map(|_| r))
            .expect_err("a cut section header is not a capture");
        assert!(matches!(e, SourceError::Format { .. }), "{cut}: {e}");
        assert!(e.to_string().contains("truncated"), "{e}");
    }
}

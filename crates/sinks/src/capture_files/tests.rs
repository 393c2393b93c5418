//! The rotating writer against the capture reader: every packet written lands once, in order,
//! in files named and rotated as tcpdump names and rotates them, and retention keeps its budget.

use super::*;
use netspectra_packet::{PacketMeta, PacketSource, Timestamp};
use netspectra_pcap::CaptureReader;

/// `n` Ethernet frames of `len` bytes each, numbered in their first byte after the MACs.
fn batch(first: u32, n: u32, len: usize) -> (Vec<u8>, Vec<PacketMeta>) {
    let mut data = Vec::new();
    let mut metas = Vec::new();
    for i in first..first + n {
        let offset = data.len() as u32;
        let mut f = vec![0u8; len];
        f[12..16].copy_from_slice(&i.to_be_bytes());
        data.extend_from_slice(&f);
        metas.push(PacketMeta {
            ts: Timestamp::from_parts(1_700_000_000 + i as i64, 0),
            offset,
            caplen: len as u32,
            orig_len: len as u32,
            link: LinkType::ETHERNET,
            ..Default::default()
        });
    }
    (data, metas)
}

fn ethernet() -> Vec<InterfaceInfo> {
    vec![InterfaceInfo {
        link: LinkType::ETHERNET,
        snaplen: 65535,
        ts_precision: 9,
        ..Default::default()
    }]
}

/// The frames of a capture file, in order.
fn frames(p: &Path) -> Vec<Vec<u8>> {
    let mut r = CaptureReader::open(p).unwrap();
    let mut v = Vec::new();
    while r
        .next_batch(&mut |b| v.extend(b.iter().map(|p| p.data.to_vec())))
        .unwrap()
    {}
    v
}

fn numbers(p: &Path) -> Vec<u32> {
    frames(p)
        .iter()
        .map(|f| u32::from_be_bytes(f[12..16].try_into().unwrap()))
        .collect()
}

#[test]
fn size_rotation_names_files_as_tcpdump_and_loses_nothing() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = RotateConfig::new(d.path().join("cap"), OutputFormat::Pcap { nanos: true });
    // 24-byte header + 4 records of 16 + 100 bytes = 488: four frames a file.
    cfg.size_limit = Some(500);
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    let (data, metas) = batch(0, 10, 100);
    assert_eq!(w.write_batch(&Batch::new(&data, &metas)).unwrap(), Flow::Go);
    w.close(true).unwrap();
    assert_eq!(w.files_opened(), 3);
    assert_eq!(w.packets(), 10);
    assert_eq!(w.bytes(), 1000);
    let names = ["cap", "cap1", "cap2"].map(|n| d.path().join(n));
    assert_eq!(w.first_paths(), &names);
    assert_eq!(w.current_path(), names[2]);
    assert_eq!(numbers(&names[0]), [0, 1, 2, 3]);
    assert_eq!(numbers(&names[1]), [4, 5, 6, 7]);
    assert_eq!(numbers(&names[2]), [8, 9]);
}

#[test]
fn a_ring_of_names_overwrites_the_oldest() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = RotateConfig::new(d.path().join("r"), OutputFormat::Pcapng);
    cfg.size_limit = Some(40 + 2 * 132);
    cfg.max_files = Some(2);
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    let (data, metas) = batch(0, 7, 100);
    w.write_batch(&Batch::new(&data, &metas)).unwrap();
    w.close(false).unwrap();
    // Files r0, r1, r0, r1: the last two hold the newest frames.
    assert_eq!(w.files_opened(), 4);
    assert_eq!(numbers(&d.path().join("r0")), [4, 5]);
    assert_eq!(numbers(&d.path().join("r1")), [6]);
}

#[test]
fn the_packet_limit_stops_exactly() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = RotateConfig::new(d.path().join("c.pcap"), OutputFormat::Pcap { nanos: false });
    cfg.max_packets = Some(5);
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    let (data, metas) = batch(0, 3, 60);
    assert_eq!(w.write_batch(&Batch::new(&data, &metas)).unwrap(), Flow::Go);
    assert_eq!(
        w.write_batch(&Batch::new(&data, &metas)).unwrap(),
        Flow::Done
    );
    assert_eq!(
        w.write_batch(&Batch::new(&data, &metas)).unwrap(),
        Flow::Done
    );
    w.close(true).unwrap();
    assert_eq!(numbers(&d.path().join("c.pcap")), [0, 1, 2, 0, 1]);
    assert!(matches!(
        w.write_batch(&Batch::new(&data, &metas)),
        Err(CaptureFileError::Closed) | Ok(Flow::Done)
    ));
}

#[test]
fn a_stripped_vlan_tag_is_put_back_into_the_frame() {
    let d = tempfile::tempdir().unwrap();
    let cfg = RotateConfig::new(d.path().join("v.pcap"), OutputFormat::Pcap { nanos: true });
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    let (data, mut metas) = batch(7, 1, 60);
    metas[0].vlan_tci = Some(0x2064);
    metas[0].orig_len = 64;
    w.write_batch(&Batch::new(&data, &metas)).unwrap();
    w.close(false).unwrap();
    let f = frames(&d.path().join("v.pcap")).remove(0);
    assert_eq!(f.len(), 64);
    assert_eq!(&f[..12], &data[..12]);
    assert_eq!(&f[12..16], &[0x81, 0x00, 0x20, 0x64]);
    assert_eq!(&f[16..], &data[12..]);
}

#[test]
fn the_byte_budget_deletes_the_oldest_files_and_keeps_the_newest_packets() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = RotateConfig::new(d.path().join("ring"), OutputFormat::Pcap { nanos: true });
    cfg.size_limit = Some(500); // four 100-byte frames a file (488 bytes)
    cfg.max_total_bytes = Some(1500); // two full files and the one being written
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    for i in 0..6 {
        let (data, metas) = batch(i * 4, 4, 100);
        w.write_batch(&Batch::new(&data, &metas)).unwrap();
    }
    w.close(true).unwrap();
    // Files ring .. ring5 were written; once the third filled up, the oldest went.
    assert_eq!(w.files_opened(), 6);
    let kept: Vec<String> = {
        let mut v: Vec<String> = std::fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(kept, ["ring3", "ring4", "ring5"]);
    let on_disk: u64 = kept
        .iter()
        .map(|n| std::fs::metadata(d.path().join(n)).unwrap().len())
        .sum();
    assert!(on_disk <= 1500, "{on_disk}");
    assert_eq!(numbers(&d.path().join("ring5")), [20, 21, 22, 23]);
    assert_eq!(w.removed(), (3, 3 * 488));
}

#[test]
fn impossible_settings_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let base = RotateConfig::new(d.path().join("x"), OutputFormat::Pcapng);
    let bad = [
        RotateConfig {
            max_files: Some(0),
            ..base.clone()
        },
        RotateConfig {
            every: Some(Duration::ZERO),
            ..base.clone()
        },
        RotateConfig {
            max_total_bytes: Some(0),
            ..base.clone()
        },
        RotateConfig {
            max_age: Some(Duration::ZERO),
            ..base.clone()
        },
    ];
    for cfg in bad {
        assert!(matches!(
            RotatingWriter::new(cfg, ethernet()),
            Err(CaptureFileError::Config(_))
        ));
    }
    assert!(
        !d.path().join("x").exists(),
        "nothing created for a refused setting"
    );
}

#[test]
fn the_time_budget_deletes_finished_files_on_tick() {
    let d = tempfile::tempdir().unwrap();
    let mut cfg = RotateConfig::new(d.path().join("t"), OutputFormat::Pcap { nanos: true });
    cfg.size_limit = Some(200); // one 100-byte frame a file
    cfg.max_age = Some(Duration::from_millis(20));
    let mut w = RotatingWriter::new(cfg, ethernet()).unwrap();
    let (data, metas) = batch(0, 3, 100);
    w.write_batch(&Batch::new(&data, &metas)).unwrap();
    // t and t1 are finished, t2 is being written; nothing is old enough yet.
    assert!(d.path().join("t").exists() && d.path().join("t1").exists());
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(w.tick().unwrap(), Flow::Go);
    assert!(!d.path().join("t").exists() && !d.path().join("t1").exists());
    w.close(false).unwrap();
    assert_eq!(
        numbers(&d.path().join("t2")),
        [2],
        "the file being written stays"
    );
    assert_eq!(w.removed().0, 2);
}

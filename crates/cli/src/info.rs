//! `netspectra info`: what capinfos tells about a capture, plus a protocol breakdown from
//! decoding every packet.

use anyhow::Result;
use clap::Args;
use netspectra_packet::{
    decode, DecodeOptions, DecodeStatus, Fragment, L3Proto, LinkType, PacketSource, SourceError,
};
use netspectra_pcap::CaptureReader;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use crate::stdout::outln;

/// Arguments of `netspectra info`.
#[derive(Args)]
pub struct InfoArgs {
    /// Capture files (pcap, pcapng, optionally gzip-compressed); `-` reads standard input.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print one JSON object per file instead of the human-readable summary.
    #[arg(long)]
    json: bool,
}

/// Per-protocol packet counts from decoding every packet.
#[derive(Default, Serialize, Clone, Copy)]
pub struct ProtocolCounts {
    ipv4: u64,
    ipv6: u64,
    arp: u64,
    other_l3: u64,
    tcp: u64,
    udp: u64,
    icmp: u64,
    other_l4: u64,
    fragments: u64,
    undecoded: u64,
    truncated: u64,
    malformed: u64,
}

/// Everything `info` reports about one file.
#[derive(Serialize)]
pub struct FileInfo {
    file: String,
    format: Option<String>,
    compressed: bool,
    sections: u32,
    interfaces: usize,
    link_types: BTreeMap<String, u64>,
    packets: u64,
    bytes: u64,
    wire_bytes: u64,
    snapped: u64,
    first_ts: Option<String>,
    last_ts: Option<String>,
    duration_s: f64,
    avg_pps: f64,
    avg_bps: f64,
    avg_packet_size: f64,
    protocols: ProtocolCounts,
    skipped_blocks: u64,
    warnings: Vec<String>,
    error: Option<String>,
}

/// Accumulates counts over batches without allocating per packet.
struct Tally {
    first: Option<i64>,
    last: i64,
    links: Vec<(LinkType, u64)>,
    proto: ProtocolCounts,
}

impl Tally {
    fn add(&mut self, link: LinkType, ts: i64, data: &[u8], vlan: Option<u16>) {
        if self.first.is_none() {
            self.first = Some(ts);
        }
        // Capture order may not be time order; report the span like capinfos does.
        self.first = self.first.map(|f| f.min(ts));
        self.last = self.last.max(ts);
        match self.links.iter_mut().find(|(l, _)| *l == link) {
            Some((_, n)) => *n += 1,
            None => self.links.push((link, 1)),
        }
        let v = decode(data, link, vlan, &DecodeOptions::default());
        let c = &mut self.proto;
        match v.status {
            DecodeStatus::Undecoded => {
                c.undecoded += 1;
                return;
            }
            DecodeStatus::Truncated(_) => c.truncated += 1,
            DecodeStatus::Malformed(_) => c.malformed += 1,
            DecodeStatus::Complete => {}
        }
        match v.l3 {
            L3Proto::Ipv4 => c.ipv4 += 1,
            L3Proto::Ipv6 => c.ipv6 += 1,
            L3Proto::Arp => c.arp += 1,
            L3Proto::Other(_) => c.other_l3 += 1,
            L3Proto::None => {}
        }
        if v.fragment == Fragment::Later {
            c.fragments += 1;
        } else if v.l4_offset != 0 {
            match v.proto {
                6 => c.tcp += 1,
                17 => c.udp += 1,
                1 | 58 => c.icmp += 1,
                _ => c.other_l4 += 1,
            }
        } else if v.is_ip() && v.status == DecodeStatus::Complete {
            c.other_l4 += 1;
        }
    }
}

/// Reads one file. `Err` when it cannot be opened at all (nothing to summarize); otherwise its
/// summary and the error that stopped reading it part-way, if any.
fn examine(path: &PathBuf) -> Result<(FileInfo, Option<SourceError>), SourceError> {
    let mut info = FileInfo {
        file: path.display().to_string(),
        format: None,
        compressed: false,
        sections: 0,
        interfaces: 0,
        link_types: BTreeMap::new(),
        packets: 0,
        bytes: 0,
        wire_bytes: 0,
        snapped: 0,
        first_ts: None,
        last_ts: None,
        duration_s: 0.0,
        avg_pps: 0.0,
        avg_bps: 0.0,
        avg_packet_size: 0.0,
        protocols: ProtocolCounts::default(),
        skipped_blocks: 0,
        warnings: Vec::new(),
        error: None,
    };
    let mut reader = CaptureReader::open(path)?;
    info.format = Some(reader.format().describe());
    info.compressed = reader.is_compressed();
    let mut t = Tally {
        first: None,
        last: i64::MIN,
        links: Vec::new(),
        proto: ProtocolCounts::default(),
    };
    let mut failure = None;
    loop {
        let r = reader.next_batch(&mut |b| {
            for p in b.iter() {
                t.add(p.link, p.ts.as_nanos(), p.data, p.vlan_tci);
            }
        });
        match r {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                info.error = Some(e.to_string());
                failure = Some(e);
                break;
            }
        }
    }
    let st = reader.stats();
    info.sections = reader.sections();
    info.interfaces = reader.interfaces().len();
    info.packets = st.packets;
    info.bytes = st.bytes;
    info.wire_bytes = st.wire_bytes;
    info.snapped = st.snapped;
    info.skipped_blocks = st.skipped_blocks;
    info.protocols = t.proto;
    info.warnings = reader.warnings().iter().map(ToString::to_string).collect();
    for (l, n) in &t.links {
        info.link_types.insert(l.to_string(), *n);
    }
    if let Some(first) = t.first {
        let fmt = |ns: i64| netspectra_packet::Timestamp(ns).to_string();
        info.first_ts = Some(fmt(first));
        info.last_ts = Some(fmt(t.last));
        info.duration_s = (t.last - first) as f64 / 1e9;
        if info.duration_s > 0.0 {
            info.avg_pps = st.packets as f64 / info.duration_s;
            info.avg_bps = st.bytes as f64 * 8.0 / info.duration_s;
        }
        info.avg_packet_size = st.bytes as f64 / st.packets as f64;
    }
    Ok((info, failure))
}

fn print_human(i: &FileInfo) {
    outln!("File name:           {}", i.file);
    if let Some(f) = &i.format {
        let gz = if i.compressed {
            " (gzip-compressed)"
        } else {
            ""
        };
        outln!("File format:         {f}{gz}");
    }
    outln!("Sections/interfaces: {} / {}", i.sections, i.interfaces);
    for (l, n) in &i.link_types {
        outln!("Link type:           {l}: {n} packets");
    }
    outln!("Packets:             {}", i.packets);
    outln!("Captured bytes:      {}", i.bytes);
    outln!("Wire bytes:          {}", i.wire_bytes);
    if i.snapped > 0 {
        outln!(
            "Snapped packets:     {} (captured length < wire length)",
            i.snapped
        );
    }
    if let (Some(a), Some(b)) = (&i.first_ts, &i.last_ts) {
        outln!("First packet:        {a}");
        outln!("Last packet:         {b}");
    }
    outln!("Duration:            {:.6} s", i.duration_s);
    outln!(
        "Average rate:        {:.1} packets/s, {:.1} bit/s",
        i.avg_pps,
        i.avg_bps
    );
    outln!("Average packet size: {:.2} bytes", i.avg_packet_size);
    let c = &i.protocols;
    outln!(
        "Protocols:           IPv4 {}  IPv6 {}  ARP {}  other-L3 {}",
        c.ipv4,
        c.ipv6,
        c.arp,
        c.other_l3
    );
    outln!(
        "                     TCP {}  UDP {}  ICMP {}  other-L4 {}  later-fragments {}",
        c.tcp,
        c.udp,
        c.icmp,
        c.other_l4,
        c.fragments
    );
    outln!(
        "                     undecoded {}  truncated {}  malformed {}",
        c.undecoded,
        c.truncated,
        c.malformed
    );
    if i.skipped_blocks > 0 {
        outln!("Skipped blocks:      {}", i.skipped_blocks);
    }
    for w in &i.warnings {
        eprintln!("netspectra: warning: {}: {w}", i.file);
    }
}

/// Runs `netspectra info`.
pub fn run(args: InfoArgs) -> Result<ExitCode> {
    let mut first_error: Option<SourceError> = None;
    let mut n = 0;
    for path in &args.files {
        let (info, err) = match examine(path) {
            Ok(r) => r,
            Err(e) => {
                // Nothing was read: the error alone, not a summary of zero packets.
                eprintln!("netspectra: error: {e}");
                first_error.get_or_insert(e);
                continue;
            }
        };
        if args.json {
            outln!("{}", serde_json::to_string(&info)?);
        } else {
            if n > 0 {
                outln!();
            }
            n += 1;
            print_human(&info);
        }
        if let Some(e) = err {
            if !args.json {
                eprintln!("netspectra: error: {e}");
            }
            first_error.get_or_insert(e);
        }
    }
    match first_error {
        None => Ok(ExitCode::SUCCESS),
        // Already reported per file above; the exit code says "bad input".
        Some(e) if crate::exit::is_bad_source(&e) => Ok(ExitCode::from(2)),
        Some(e) => Err(e.into()),
    }
}

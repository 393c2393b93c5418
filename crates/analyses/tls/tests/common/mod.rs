//! Shared by the TLS oracle tests: reading a capture through our reader and decoder into the
//! analyzer, and tshark's view of the same handshakes.

#![allow(dead_code)]

use netspectra_packet::{decode, DecodeOptions, PacketSource};
use netspectra_pcap::CaptureReader;
use netspectra_tls::{TlsAnalyzer, TlsConfig, TlsRecord, TlsStats};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The folder of the shared corpus (`../shared/corpus` from the workspace root).
pub fn corpus(sub: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../../shared/corpus")
        .join(sub)
}

/// True when tshark runs.
pub fn have_tshark() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// Every record of a capture (expiry ticks every second of packet time) and the counters.
pub fn analyze(path: &Path, cfg: TlsConfig) -> (Vec<TlsRecord>, TlsStats) {
    let mut a = TlsAnalyzer::new(cfg);
    let mut r = CaptureReader::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let opts = DecodeOptions { inner: true };
    let mut next_tick = i64::MIN;
    loop {
        let more = r.next_batch(&mut |b| {
            for p in b.iter() {
                let v = decode(p.data, p.link, p.vlan_tci, &opts);
                a.on_packet(&p, &v);
                let t = p.ts.as_nanos();
                if t >= next_tick {
                    a.expire(p.ts);
                    next_tick = t + 1_000_000_000;
                }
            }
        });
        match more {
            Ok(true) => {}
            _ => break,
        }
    }
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    (out, a.stats())
}

/// `ip:port` as the records and tshark write it (IPv6 in brackets).
pub fn endpoint(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The client endpoint and transport of a record: how tshark's rows are matched to it.
pub fn record_key(r: &TlsRecord) -> (String, String) {
    (r.transport.to_string(), endpoint(&r.src_ip, r.src_port))
}

const SEP: char = '\u{1f}';

/// A connection's transport and client endpoint, as [`record_key`] gives it.
pub type Key = (String, String);

/// One tshark row: the connection and each requested field's occurrences.
pub type Row = (Key, Vec<Vec<String>>);

/// tshark rows of the frames matching `filter`: (transport, endpoint of the sender or the
/// receiver) and the requested fields (each a list of occurrences).
pub fn tshark_rows(
    file: &Path,
    extra: &[&str],
    filter: &str,
    sender: bool,
    fields: &[&str],
) -> Vec<Row> {
    let mut args: Vec<String> = vec!["-n".into(), "-r".into(), file.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-Y", filter, "-T", "fields", "-E", "occurrence=a"].map(String::from));
    args.push(format!("-Eaggregator={SEP}"));
    let base = [
        "ip.src",
        "ipv6.src",
        "ip.dst",
        "ipv6.dst",
        "tcp.srcport",
        "tcp.dstport",
        "udp.srcport",
        "udp.dstport",
    ];
    for f in base.iter().chain(fields) {
        args.push("-e".into());
        args.push(f.to_string());
    }
    let out = Command::new("tshark")
        .args(&args)
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark {args:?}");
    let last = |s: &str| s.split(SEP).next_back().unwrap_or("").to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let ip = |v4: usize, v6: usize| {
                if f[v4].is_empty() {
                    format!("[{}]", last(f[v6]))
                } else {
                    last(f[v4])
                }
            };
            let (src, dst) = (ip(0, 1), ip(2, 3));
            let (transport, sp, dp) = if !f[4].is_empty() {
                ("tcp", last(f[4]), last(f[5]))
            } else {
                ("quic", last(f[6]), last(f[7]))
            };
            let ep = if sender {
                format!("{src}:{sp}")
            } else {
                format!("{dst}:{dp}")
            };
            let vals = f[8..]
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        Vec::new()
                    } else {
                        v.split(SEP).map(String::from).collect()
                    }
                })
                .collect();
            ((transport.to_string(), ep), vals)
        })
        .collect()
}

/// What tshark says of each connection's handshake, keyed like [`record_key`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Shark {
    pub sni: String,
    pub alpn: Vec<String>,
    pub ja3: String,
    pub ciphers: Vec<String>,
    pub version: String,
    pub cipher: String,
    pub ja3s: String,
    pub server: bool,
}

/// tshark's ClientHello and ServerHello fields per client endpoint (first ClientHello, last
/// ServerHello, as a HelloRetryRequest precedes the real one).
pub fn tshark_handshakes(file: &Path, extra: &[&str]) -> BTreeMap<(String, String), Shark> {
    let mut m: BTreeMap<(String, String), Shark> = BTreeMap::new();
    for (k, v) in tshark_rows(
        file,
        extra,
        "tls.handshake.type == 1",
        true,
        &[
            "tls.handshake.extensions_server_name",
            "tls.handshake.extensions_alpn_str",
            "tls.handshake.ja3",
            "tls.handshake.ciphersuite",
        ],
    ) {
        m.entry(k).or_insert_with(|| Shark {
            sni: v[0].first().cloned().unwrap_or_default(),
            alpn: v[1].clone(),
            ja3: v[2].first().cloned().unwrap_or_default(),
            ciphers: v[3].clone(),
            ..Shark::default()
        });
    }
    for (k, v) in tshark_rows(
        file,
        extra,
        "tls.handshake.type == 2",
        false,
        &[
            "tls.handshake.extensions.supported_version",
            "tls.handshake.version",
            "tls.handshake.ciphersuite",
            "tls.handshake.ja3s",
        ],
    ) {
        let e = m.entry(k).or_default();
        e.server = true;
        e.version = v[0].last().or(v[1].last()).cloned().unwrap_or_default();
        e.cipher = v[2].last().cloned().unwrap_or_default();
        e.ja3s = v[3].last().cloned().unwrap_or_default();
    }
    m
}

/// Our record in tshark's terms.
pub fn as_shark(r: &TlsRecord) -> Shark {
    Shark {
        sni: r.sni.clone().unwrap_or_default(),
        alpn: r.alpn_offered.clone(),
        ja3: r.ja3.clone().unwrap_or_default(),
        ciphers: r
            .ciphers_offered
            .iter()
            .map(|c| format!("0x{c:04x}"))
            .collect(),
        version: r
            .version_code
            .map(|v| format!("0x{v:04x}"))
            .unwrap_or_default(),
        cipher: r.cipher.map(|c| format!("0x{c:04x}")).unwrap_or_default(),
        ja3s: r.ja3s.clone().unwrap_or_default(),
        server: r.version_code.is_some(),
    }
}

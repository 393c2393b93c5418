//! Shared by the DNS oracle tests: reading a capture through our reader and decoder into the
//! analyzer, running tshark, and turning both sides into comparable DNS messages.

#![allow(dead_code)]

use netspectra_dns::{DnsAnalyzer, DnsConfig, DnsRecord, DnsStats, Status};
use netspectra_packet::{decode, DecodeOptions, PacketSource};
use netspectra_pcap::CaptureReader;
use std::collections::BTreeSet;
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

/// Every record of a capture, with expiry ticks every second of packet time, and the counters.
pub fn analyze(path: &Path, cfg: DnsConfig) -> (Vec<DnsRecord>, DnsStats) {
    let mut a = DnsAnalyzer::new(cfg);
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
            Ok(false) => break,
            // A corrupt record stops reading, as it does for every command.
            Err(_) => break,
        }
    }
    a.finish();
    let mut out = Vec::new();
    a.take_records(&mut out);
    (out, a.stats())
}

/// One DNS message in a form both sides can produce: direction-free endpoints are written
/// client first; `resp` holds the response part.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Msg {
    /// `udp` or `tcp`.
    pub transport: String,
    /// Client `ip:port`.
    pub client: String,
    /// Server `ip:port`.
    pub server: String,
    /// Transaction id.
    pub id: u16,
    /// Query name, lower case.
    pub qname: String,
    /// Query type.
    pub qtype: u16,
    /// Response fields, `None` for a query.
    pub resp: Option<Resp>,
}

/// Response fields compared with tshark.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Resp {
    /// Low 4 bits of the rcode (what the header carries).
    pub rcode: u16,
    /// TC bit.
    pub tc: bool,
    /// Owner names of every record of every section (OPT excluded).
    pub names: Vec<String>,
    /// Their types.
    pub types: Vec<u16>,
    /// Their TTLs.
    pub ttls: Vec<u32>,
    /// A, AAAA and CNAME data in order, prefixed by the type.
    pub data: Vec<String>,
}

fn ep(ip: &std::net::IpAddr, port: u16) -> String {
    match ip {
        std::net::IpAddr::V4(a) => format!("{a}:{port}"),
        std::net::IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}

/// The messages a record stands for (a query, a response, or both).
pub fn record_msgs(r: &DnsRecord) -> Vec<Msg> {
    let base = Msg {
        transport: r.transport.to_string(),
        client: ep(&r.src_ip, r.src_port),
        server: ep(&r.dst_ip, r.dst_port),
        id: r.id,
        qname: r.qname.to_ascii_lowercase(),
        qtype: r.qtype,
        resp: None,
    };
    let mut out = Vec::new();
    if r.status != Status::OrphanResponse {
        out.push(base.clone());
    }
    if r.status != Status::Unanswered {
        let names: Vec<String> = [&r.answer_names, &r.authority_names, &r.additional_names]
            .into_iter()
            .flatten()
            .cloned()
            .collect();
        let types: Vec<u16> = [&r.answer_types, &r.authority_types, &r.additional_types]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let ttls: Vec<u32> = [&r.answer_ttls, &r.authority_ttls, &r.additional_ttls]
            .into_iter()
            .flatten()
            .copied()
            .collect();
        let datas: Vec<&String> = [&r.answer_data, &r.authority_data, &r.additional_data]
            .into_iter()
            .flatten()
            .collect();
        let mut data: Vec<String> = types
            .iter()
            .zip(datas)
            .filter(|(t, _)| COMPARED.contains(t) && **t != 16)
            .map(|(t, d)| format!("{t} {}", d.to_ascii_lowercase()))
            .collect();
        // TXT: every string of the message, concatenated (tshark lists strings, not records).
        let txt: String = types
            .iter()
            .zip(
                [&r.answer_data, &r.authority_data, &r.additional_data]
                    .into_iter()
                    .flatten(),
            )
            .filter(|(t, _)| **t == 16)
            .map(|(_, d)| txt_plain(d))
            .collect();
        if !txt.is_empty() {
            data.push(format!("16 {}", txt.to_ascii_lowercase()));
        }
        out.push(Msg {
            resp: Some(Resp {
                rcode: r.rcode.unwrap_or(0) & 0xf,
                tc: r.tc,
                names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
                types,
                ttls,
                data,
            }),
            ..base
        });
    }
    out
}

const SEP: char = '\u{1f}';

const FIELDS: &[&str] = &[
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "udp.srcport",
    "udp.dstport",
    "tcp.srcport",
    "tcp.dstport",
    "dns.id",
    "dns.flags.response",
    "dns.qry.name",
    "dns.qry.type",
    "dns.flags.rcode",
    "dns.flags.truncated",
    "dns.resp.name",
    "dns.resp.type",
    "dns.resp.ttl",
    "dns.a",
    "dns.aaaa",
    "dns.cname",
    "dns.ns",
    "dns.ptr.domain_name",
    "dns.mx.preference",
    "dns.mx.mail_exchange",
    "dns.txt",
    "dns.soa.mname",
    "dns.soa.rname",
    "dns.soa.serial_number",
    "dns.soa.refresh_interval",
    "dns.soa.retry_interval",
    "dns.soa.expire_limit",
    "dns.soa.minimum_ttl",
    "dns.srv.priority",
    "dns.srv.weight",
    "dns.srv.port",
    "dns.srv.target",
];

/// Types whose data is compared with tshark's fields.
const COMPARED: [u16; 9] = [1, 2, 5, 6, 12, 15, 16, 28, 33];

/// Our TXT text (`"a" "b"`) as the concatenation of its strings, as tshark's fields give it.
fn txt_plain(d: &str) -> String {
    let mut out = String::new();
    let mut inq = false;
    let mut it = d.chars();
    while let Some(c) = it.next() {
        match c {
            '"' => inq = !inq,
            '\\' if inq => {
                if let Some(n) = it.next() {
                    out.push(n);
                }
            }
            c if inq => out.push(c),
            _ => {}
        }
    }
    out
}

/// tshark's DNS messages of a capture (`extra` are more arguments, e.g. `-d`), and the frames
/// that hold more than one DNS message (their answers are not compared: tshark's field
/// output mixes them).
pub fn tshark_msgs(file: &Path, extra: &[&str]) -> BTreeSet<Msg> {
    let mut args: Vec<String> = vec!["-n".into(), "-r".into(), file.display().to_string()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(["-Y", "dns", "-T", "fields", "-E", "occurrence=a"].map(String::from));
    args.push(format!("-Eaggregator={SEP}"));
    for f in FIELDS {
        args.push("-e".into());
        args.push(f.to_string());
    }
    let out = Command::new("tshark")
        .args(&args)
        .output()
        .expect("run tshark");
    assert!(out.status.success(), "tshark {args:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut set = BTreeSet::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let list = |i: usize| -> Vec<&str> {
            if f[i].is_empty() {
                Vec::new()
            } else {
                f[i].split(SEP).collect()
            }
        };
        let ip = |v4: usize, v6: usize| {
            if f[v4].is_empty() {
                format!("[{}]", f[v6].split(SEP).next_back().unwrap_or(""))
            } else {
                f[v4].split(SEP).next_back().unwrap_or("").to_string()
            }
        };
        let (sp, dp, transport) = if f[4].is_empty() {
            (f[6], f[7], "tcp")
        } else {
            (
                f[4].split(SEP).next_back().unwrap(),
                f[5].split(SEP).next_back().unwrap(),
                "udp",
            )
        };
        let (src, dst) = (format!("{}:{sp}", ip(0, 1)), format!("{}:{dp}", ip(2, 3)));
        let ids = list(8);
        let multi = ids.len() > 1;
        for (k, id) in ids.iter().enumerate() {
            let id = u16::from_str_radix(id.trim_start_matches("0x"), 16).unwrap();
            let response = list(9).get(k) == Some(&"1") || list(9).get(k) == Some(&"True");
            let qname = list(10).get(k).unwrap_or(&"").to_ascii_lowercase();
            let qtype = list(11).get(k).and_then(|t| t.parse().ok()).unwrap_or(0);
            let (client, server) = if response {
                (dst.clone(), src.clone())
            } else {
                (src.clone(), dst.clone())
            };
            let mut m = Msg {
                transport: transport.into(),
                client,
                server,
                id,
                qname,
                qtype,
                resp: None,
            };
            if response {
                let rcode = list(12).get(k).and_then(|t| t.parse().ok()).unwrap_or(0);
                let tc = matches!(list(13).get(k), Some(&"1") | Some(&"True"));
                let resp = if multi {
                    // Not comparable per message: only rcode and flags are kept.
                    Resp {
                        rcode,
                        tc,
                        names: vec![],
                        types: vec![],
                        ttls: vec![],
                        data: vec![],
                    }
                } else {
                    let names = list(14);
                    let types: Vec<u16> = list(15).iter().map(|t| t.parse().unwrap_or(0)).collect();
                    // OPT pseudo-records are listed by tshark, not by us.
                    let keep: Vec<bool> = types.iter().map(|&t| t != 41).collect();
                    let names = names
                        .iter()
                        .zip(&keep)
                        .filter(|(_, k)| **k)
                        .map(|(n, _)| n.to_ascii_lowercase())
                        .collect();
                    let ttls = list(16).iter().map(|t| t.parse().unwrap_or(0)).collect();
                    let mut col: Vec<std::vec::IntoIter<&str>> =
                        (17..36).map(|i| list(i).into_iter()).collect();
                    let mut next = |i: usize| col[i - 17].next().unwrap_or("").to_ascii_lowercase();
                    let mut data = Vec::new();
                    for &t in &types {
                        let d = match t {
                            1 => next(17),
                            28 => next(18),
                            5 => next(19),
                            2 => next(20),
                            12 => next(21),
                            15 => format!("{} {}", next(22), next(23)),
                            6 => {
                                let v: Vec<String> = (25..32).map(&mut next).collect();
                                v.join(" ")
                            }
                            33 => {
                                let v: Vec<String> = (32..36).map(&mut next).collect();
                                v.join(" ")
                            }
                            _ => continue,
                        };
                        data.push(format!("{t} {d}"));
                    }
                    let txt: String = list(24).concat().to_ascii_lowercase();
                    if !txt.is_empty() {
                        data.push(format!("16 {txt}"));
                    }
                    let types = types.into_iter().filter(|&t| t != 41).collect();
                    Resp {
                        rcode,
                        tc,
                        names,
                        types,
                        ttls,
                        data,
                    }
                };
                m.resp = Some(resp);
            }
            set.insert(m);
        }
    }
    set
}

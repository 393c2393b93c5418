//! Flow records as written to files: one per ended flow, Zeek conn.log / NetFlow style.

use crate::table::EndedFlow;
use netspectra_packet::text::push_ip;
use netspectra_packet::{community_id_v1, push_community_id_v1, TcpFlags};
use serde::Serialize;
use std::net::IpAddr;

/// One flow record, oriented from initiator to responder.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FlowRecord {
    /// First packet (RFC 3339, UTC, nanoseconds).
    pub start: Stamp,
    /// Last packet.
    pub end: Stamp,
    /// Seconds between first and last packet.
    pub duration: f64,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port (ICMP: the type the initiator sends, e.g. 8 for an echo exchange).
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port (ICMP: the type the responder answers with, e.g. 0, for a paired type;
    /// the code for a one-way type).
    pub dst_port: u16,
    /// IP protocol number.
    pub proto: u8,
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Community ID v1 (seed 0), to join with Zeek/Suricata.
    pub community_id: String,
    /// Packets initiator → responder.
    pub fwd_packets: u64,
    /// Frame bytes initiator → responder.
    pub fwd_bytes: u64,
    /// IP bytes initiator → responder.
    pub fwd_ip_bytes: u64,
    /// Packets responder → initiator.
    pub rev_packets: u64,
    /// Frame bytes responder → initiator.
    pub rev_bytes: u64,
    /// IP bytes responder → initiator.
    pub rev_ip_bytes: u64,
    /// TCP flags sent by the initiator (letters `CEUAPRSF`).
    pub fwd_tcp_flags: String,
    /// TCP flags sent by the responder.
    pub rev_tcp_flags: String,
    /// Why the record ended.
    pub end_reason: &'static str,
}

impl FlowRecord {
    /// Builds the output record of an ended flow.
    pub fn from_ended(f: &EndedFlow) -> FlowRecord {
        FlowRecord {
            start: Stamp::new(f.first),
            end: Stamp::new(f.last),
            duration: duration_secs(f),
            src_ip: f.key.src,
            src_port: f.key.src_port,
            dst_ip: f.key.dst,
            dst_port: f.key.dst_port,
            proto: f.key.proto,
            vlan: f.key.vlan,
            community_id: community_id_v1(&f.key, 0),
            fwd_packets: f.packets[0],
            fwd_bytes: f.bytes[0],
            fwd_ip_bytes: f.ip_bytes[0],
            rev_packets: f.packets[1],
            rev_bytes: f.bytes[1],
            rev_ip_bytes: f.ip_bytes[1],
            fwd_tcp_flags: TcpFlags(f.tcp_flags[0]).letters(),
            rev_tcp_flags: TcpFlags(f.tcp_flags[1]).letters(),
            end_reason: f.reason.name(),
        }
    }
}

/// Seconds between a flow's first and last packet (always finite: an `i64` span over 1e9).
fn duration_secs(f: &EndedFlow) -> f64 {
    (f.last - f.first) as f64 / 1e9
}

/// Appends the JSON line of an ended flow's record (with its `\n`) to `out`: the same bytes
/// as `serde_json` writes for [`FlowRecord::from_ended`], without building the record's
/// strings. The final flush of a large capture ends hundreds of thousands of flows at once,
/// and their records are the tail of the run.
pub fn write_jsonl(f: &EndedFlow, out: &mut Vec<u8>) {
    let mut int = itoa::Buffer::new();
    let mut num = |out: &mut Vec<u8>, name: &[u8], v: u64| {
        out.extend_from_slice(name);
        out.extend_from_slice(int.format(v).as_bytes());
    };
    out.extend_from_slice(b"{\"start\":\"");
    out.extend_from_slice(&Stamp::new(f.first).buf);
    out.extend_from_slice(b"\",\"end\":\"");
    out.extend_from_slice(&Stamp::new(f.last).buf);
    out.extend_from_slice(b"\",\"duration\":");
    out.extend_from_slice(
        zmij::Buffer::new()
            .format_finite(duration_secs(f))
            .as_bytes(),
    );
    out.extend_from_slice(b",\"src_ip\":\"");
    push_ip(out, f.key.src);
    num(out, b"\",\"src_port\":", f.key.src_port.into());
    out.extend_from_slice(b",\"dst_ip\":\"");
    push_ip(out, f.key.dst);
    num(out, b"\",\"dst_port\":", f.key.dst_port.into());
    num(out, b",\"proto\":", f.key.proto.into());
    match f.key.vlan {
        Some(v) => num(out, b",\"vlan\":", v.into()),
        None => out.extend_from_slice(b",\"vlan\":null"),
    }
    out.extend_from_slice(b",\"community_id\":\"");
    push_community_id_v1(out, &f.key, 0);
    num(out, b"\",\"fwd_packets\":", f.packets[0]);
    num(out, b",\"fwd_bytes\":", f.bytes[0]);
    num(out, b",\"fwd_ip_bytes\":", f.ip_bytes[0]);
    num(out, b",\"rev_packets\":", f.packets[1]);
    num(out, b",\"rev_bytes\":", f.bytes[1]);
    num(out, b",\"rev_ip_bytes\":", f.ip_bytes[1]);
    out.extend_from_slice(b",\"fwd_tcp_flags\":\"");
    TcpFlags(f.tcp_flags[0]).push_letters(out);
    out.extend_from_slice(b"\",\"rev_tcp_flags\":\"");
    TcpFlags(f.tcp_flags[1]).push_letters(out);
    out.extend_from_slice(b"\",\"end_reason\":\"");
    out.extend_from_slice(f.reason.name().as_bytes());
    out.extend_from_slice(b"\"}\n");
}

/// Civil date from days since 1970-01-01 (proleptic Gregorian).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Hour, minute, second and nanoseconds of the day.
fn hms(ns: i64) -> (u32, u32, u32, u32) {
    let secs = ns.div_euclid(1_000_000_000);
    let sod = secs.rem_euclid(86_400);
    (
        (sod / 3600) as u32,
        ((sod / 60) % 60) as u32,
        (sod % 60) as u32,
        ns.rem_euclid(1_000_000_000) as u32,
    )
}

/// A timestamp rendered as RFC 3339 with nanoseconds (`2024-01-02T03:04:05.123456789Z`) into a
/// fixed buffer: records carry two of them, and formatting them must not allocate.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    buf: [u8; 30],
}

impl Stamp {
    /// Renders nanoseconds since the epoch (every `i64` value has a four-digit year).
    pub fn new(ns: i64) -> Stamp {
        let secs = ns.div_euclid(1_000_000_000);
        let (y, mo, d) = civil(secs.div_euclid(86_400));
        let (h, mi, s, frac) = hms(ns);
        let mut buf = *b"0000-00-00T00:00:00.000000000Z";
        let mut put = |at: usize, width: usize, mut v: u64| {
            for i in (at..at + width).rev() {
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, 4, y.clamp(0, 9999) as u64);
        put(5, 2, mo as u64);
        put(8, 2, d as u64);
        put(11, 2, h as u64);
        put(14, 2, mi as u64);
        put(17, 2, s as u64);
        put(20, 9, frac as u64);
        Stamp { buf }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf).unwrap_or("")
    }
}

impl std::fmt::Display for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for Stamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for Stamp {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// Formats nanoseconds since the epoch as `2024-01-02T03:04:05.123456789Z`.
pub fn rfc3339(ns: i64) -> String {
    Stamp::new(ns).as_str().to_string()
}

/// Formats an interval start for a directory name: `2024-01-02T03-04-05Z` (no colons), with
/// `.fff` milliseconds appended when not on a whole second.
pub fn dir_stamp(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let (h, mi, s, frac) = hms(ns);
    if frac == 0 {
        format!("{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}Z")
    } else {
        format!(
            "{y:04}-{mo:02}-{d:02}T{h:02}-{mi:02}-{s:02}.{:03}Z",
            frac / 1_000_000
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::EndReason;
    use netspectra_packet::FlowKey;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
            any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a))),
            // Runs of zero groups and IPv4-mapped addresses have their own text forms.
            (any::<u16>(), any::<u16>(), 0usize..8).prop_map(|(a, b, at)| {
                let mut g = [0u16; 8];
                g[at] = a;
                g[7 - at] = b;
                IpAddr::V6(Ipv6Addr::from(g))
            }),
            any::<u32>().prop_map(|a| IpAddr::V6(Ipv4Addr::from(a).to_ipv6_mapped())),
        ]
    }

    fn ended() -> impl Strategy<Value = EndedFlow> {
        let key = (
            ip(),
            ip(),
            any::<u16>(),
            any::<u16>(),
            prop_oneof![Just(1u8), Just(6), Just(17), Just(58), any::<u8>()],
            proptest::option::of(0u16..4096),
        )
            .prop_map(|(src, dst, src_port, dst_port, proto, vlan)| FlowKey {
                src,
                dst,
                src_port,
                dst_port,
                proto,
                vlan,
            });
        let reason = prop_oneof![
            Just(EndReason::Fin),
            Just(EndReason::Rst),
            Just(EndReason::Idle),
            Just(EndReason::Active),
            Just(EndReason::TableFull),
            Just(EndReason::EndOfInput),
        ];
        (
            key,
            -(1i64 << 61)..(1i64 << 61),
            prop_oneof![Just(0i64), 0i64..1_000_000_000, 0i64..(1i64 << 61)],
            any::<[u64; 6]>(),
            any::<[u8; 2]>(),
            reason,
        )
            .prop_map(|(key, first, len, n, tcp_flags, reason)| EndedFlow {
                key,
                first,
                last: first + len,
                packets: [n[0], n[1]],
                bytes: [n[2], n[3] % 100_000],
                ip_bytes: [n[4], n[5]],
                tcp_flags,
                icmp_code: [0; 2],
                reason,
            })
    }

    proptest! {
        /// The direct JSON-lines writer and serde_json give the same bytes for any record.
        #[test]
        fn jsonl_line_is_serdes_line(f in ended()) {
            let mut fast = Vec::new();
            write_jsonl(&f, &mut fast);
            let mut serde = serde_json::to_vec(&FlowRecord::from_ended(&f)).unwrap();
            serde.push(b'\n');
            prop_assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(serde).unwrap());
        }
    }

    #[test]
    fn time_formats() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339(1_700_000_000_123_456_789),
            "2023-11-14T22:13:20.123456789Z"
        );
        assert_eq!(
            rfc3339(951_782_400 * 1_000_000_000),
            "2000-02-29T00:00:00.000000000Z"
        );
        assert_eq!(dir_stamp(1_700_000_040_000_000_000), "2023-11-14T22-14-00Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        // The extremes of i64 nanoseconds still have four-digit years.
        assert_eq!(rfc3339(i64::MIN), "1677-09-21T00:12:43.145224192Z");
        assert_eq!(rfc3339(i64::MAX), "2262-04-11T23:47:16.854775807Z");
    }
}

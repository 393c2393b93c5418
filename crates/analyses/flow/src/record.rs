//! Flow records as written to files: one per ended flow, Zeek conn.log / NetFlow style.

use crate::table::EndedFlow;
use netspectra_packet::{community_id_v1, TcpFlags};
use serde::Serialize;
use std::net::IpAddr;

/// One flow record, oriented from initiator to responder.
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct FlowRecord {
    /// First packet (RFC 3339, UTC, nanoseconds).
    pub start: String,
    /// Last packet.
    pub end: String,
    /// Seconds between first and last packet.
    pub duration: f64,
    /// Initiator address.
    pub src_ip: IpAddr,
    /// Initiator port (ICMP type).
    pub src_port: u16,
    /// Responder address.
    pub dst_ip: IpAddr,
    /// Responder port (ICMP code).
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
            start: rfc3339(f.first),
            end: rfc3339(f.last),
            duration: (f.last - f.first) as f64 / 1e9,
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

/// Formats nanoseconds since the epoch as `2024-01-02T03:04:05.123456789Z`.
pub fn rfc3339(ns: i64) -> String {
    let secs = ns.div_euclid(1_000_000_000);
    let (y, mo, d) = civil(secs.div_euclid(86_400));
    let (h, mi, s, frac) = hms(ns);
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{frac:09}Z")
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
    }
}

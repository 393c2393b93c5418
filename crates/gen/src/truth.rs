//! The truth file: exact counts of everything the generator wrote, for tests and benchmarks to
//! assert against.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Everything a capture produced by [`crate::generate`] contains, counted exactly.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Truth {
    /// Seed the capture was generated from.
    pub seed: u64,
    /// `pcap` (nanosecond), `pcap-us` or `pcapng`.
    pub format: String,
    /// Frames written, duplicates included.
    pub packets: u64,
    /// Captured bytes of all frames (equal to wire bytes; nothing is snapped).
    pub bytes: u64,
    /// Size of the capture file in bytes (headers included).
    pub file_bytes: u64,
    /// Timestamp of the first frame, nanoseconds since the epoch.
    pub first_ts_ns: i64,
    /// Timestamp of the last frame, nanoseconds since the epoch.
    pub last_ts_ns: i64,
    /// Per-frame counts by encapsulation and protocol (duplicates included).
    pub frames: FrameCounts,
    /// Exact duplicate frames.
    pub duplicates: Duplicates,
    /// Flow counts.
    pub flows: Flows,
    /// TCP sessions.
    pub tcp: TcpTruth,
    /// HTTP/1.1 requests and responses.
    pub http: HttpTruth,
    /// TLS sessions and records.
    pub tls: TlsTruth,
    /// DNS over UDP.
    pub dns: DnsTruth,
    /// ICMP and ICMPv6.
    pub icmp: IcmpTruth,
}

/// Frame counts by layer (duplicates included).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FrameCounts {
    /// Frames with at least one VLAN tag.
    pub vlan: u64,
    /// Frames with two VLAN tags (802.1ad outer, 802.1Q inner).
    pub qinq: u64,
    /// IPv4 frames.
    pub ipv4: u64,
    /// IPv6 frames.
    pub ipv6: u64,
    /// TCP frames.
    pub tcp: u64,
    /// UDP frames.
    pub udp: u64,
    /// ICMP frames.
    pub icmp: u64,
    /// ICMPv6 frames.
    pub icmpv6: u64,
    /// Frames padded to the 60-byte Ethernet minimum.
    pub padded: u64,
}

/// Duplicate frames: exact byte copies of an earlier frame placed 1-4 frames after it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Duplicates {
    /// Number of duplicate frames (each original is duplicated at most once; a duplicate is never
    /// duplicated). Removing them leaves a capture in which every frame is unique.
    pub frames: u64,
    /// Bytes of the duplicate frames.
    pub bytes: u64,
    /// `[original_index, duplicate_index]` (0-based frame numbers), in file order; empty when
    /// more than `max_listed` duplicates were written (see `listed`).
    pub list: Vec<[u64; 2]>,
    /// True when `list` holds every duplicate.
    pub listed: bool,
}

/// Flow counts as a bidirectional flow table keyed by the canonical
/// `netspectra_packet::FlowKey` (5-tuple + outer VLAN) sees them, with no flow split by a
/// timeout: every session uses its own 5-tuple. ICMP is keyed as Zeek and Community ID key it:
/// an echo session (one identifier, 1-5 request/reply pairs with increasing sequence numbers)
/// is one ICMP/ICMPv6 flow, since request (type 8/128) and reply (0/129) give mirror keys; an
/// ICMP error quoting a UDP probe is one-way and a flow of its own, beside the probe's UDP flow.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flows {
    /// All flows.
    pub total: u64,
    /// TCP flows (one per TCP session).
    pub tcp: u64,
    /// UDP flows.
    pub udp: u64,
    /// ICMP flows: one per echo session and one per ICMP error.
    pub icmp: u64,
    /// ICMPv6 flows: one per echo session and one per ICMPv6 error.
    pub icmpv6: u64,
    /// Flows over IPv6.
    pub ipv6: u64,
    /// Flows in VLAN-tagged frames.
    pub vlan: u64,
}

/// TCP sessions.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TcpTruth {
    /// Sessions (each with SYN, SYN-ACK, ACK).
    pub sessions: u64,
    /// Sessions closed by a FIN exchange.
    pub fin_closed: u64,
    /// Sessions closed by a RST.
    pub rst_closed: u64,
    /// Sessions carrying HTTP.
    pub http: u64,
    /// Sessions carrying TLS.
    pub tls: u64,
    /// Plain bulk-transfer sessions.
    pub bulk: u64,
    /// Sessions carrying DNS (the TCP retry after a truncated UDP response).
    #[serde(default)]
    pub dns: u64,
    /// TCP payload bytes (both directions, duplicates excluded).
    pub payload_bytes: u64,
}

/// One HTTP request and its response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpTransaction {
    /// Client `ip:port` (IPv6 in brackets).
    pub client: String,
    /// Server `ip:port`.
    pub server: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Request method.
    pub method: String,
    /// Host header value (with `:port` for non-default ports).
    pub host: String,
    /// Request URI.
    pub uri: String,
    /// Response status (`None` when the request got no response).
    pub status: Option<u16>,
    /// User-Agent header value (`None` when the request carried none, as ~3 % do).
    pub user_agent: Option<String>,
}

/// HTTP/1.1 counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HttpTruth {
    /// Requests.
    pub requests: u64,
    /// Responses.
    pub responses: u64,
    /// Requests by method.
    pub by_method: BTreeMap<String, u64>,
    /// Responses by status code.
    pub by_status: BTreeMap<String, u64>,
    /// Requests by Host header value.
    pub by_host: BTreeMap<String, u64>,
    /// Requests by User-Agent (requests without one are not counted here).
    pub by_user_agent: BTreeMap<String, u64>,
    /// Requests by IP version (`ipv4`, `ipv6`).
    pub by_ip_version: BTreeMap<String, u64>,
    /// Requests by server TCP port.
    pub by_port: BTreeMap<String, u64>,
    /// Requests in VLAN-tagged frames.
    pub vlan_requests: u64,
    /// Requests whose header block spans 2-3 TCP segments.
    pub split_requests: u64,
    /// Requests sent pipelined (behind another request still waiting for its response).
    pub pipelined_requests: u64,
    /// Responses with a chunked body.
    pub chunked_responses: u64,
    /// Connections carrying HTTP.
    pub connections: u64,
    /// Every transaction, in the order requests were written; empty when there were more than
    /// `max_listed` (see `listed`).
    pub transactions: Vec<HttpTransaction>,
    /// True when `transactions` holds every transaction.
    pub listed: bool,
}

/// TLS counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsTruth {
    /// TLS sessions (one per TCP connection).
    pub sessions: u64,
    /// Sessions negotiating TLS 1.2.
    pub tls12: u64,
    /// Sessions negotiating TLS 1.3.
    pub tls13: u64,
    /// Handshake records (content type 22).
    pub handshake_records: u64,
    /// ChangeCipherSpec records (type 20).
    pub ccs_records: u64,
    /// Application-data records (type 23, including TLS 1.3 encrypted handshake messages).
    pub app_data_records: u64,
    /// Sum of the lengths (without the 5-byte header) of the type-23 records.
    pub app_data_bytes: u64,
    /// Alert records (type 21).
    pub alert_records: u64,
    /// Records whose bytes span more than one TCP segment.
    pub spanning_records: u64,
    /// QUIC connections (their Initial packets carry a ClientHello and a ServerHello; not
    /// counted in `sessions` nor in the record counts above, which are TLS over TCP).
    #[serde(default)]
    pub quic_sessions: u64,
    /// Every TLS-over-TCP and QUIC session's handshake, in the order they started; empty when
    /// there were more than `max_listed` (see `listed`).
    #[serde(default)]
    pub list: Vec<crate::tls::TlsSession>,
    /// True when `list` holds every session.
    #[serde(default)]
    pub listed: bool,
}

/// DNS counts (UDP and TCP).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DnsTruth {
    /// Queries.
    pub queries: u64,
    /// Responses.
    pub responses: u64,
    /// Responses with rcode NXDOMAIN.
    pub nxdomain: u64,
    /// Queries over TCP (included in `queries`).
    #[serde(default)]
    pub tcp_queries: u64,
    /// Responses over TCP (included in `responses`).
    #[serde(default)]
    pub tcp_responses: u64,
    /// UDP responses with the TC bit (each followed by the same query over TCP).
    #[serde(default)]
    pub truncated: u64,
    /// Every transaction, in the order queries were written; empty when there were more than
    /// `max_listed` (see `listed`).
    #[serde(default)]
    pub transactions: Vec<crate::dns::DnsTransaction>,
    /// True when `transactions` holds every transaction.
    #[serde(default)]
    pub listed: bool,
}

/// ICMP and ICMPv6 counts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct IcmpTruth {
    /// ICMP echo requests.
    pub echo_requests: u64,
    /// ICMP echo replies.
    pub echo_replies: u64,
    /// ICMP errors (destination unreachable, time exceeded) quoting the offending packet.
    pub errors: u64,
    /// ICMPv6 echo requests.
    pub v6_echo_requests: u64,
    /// ICMPv6 echo replies.
    pub v6_echo_replies: u64,
    /// ICMPv6 errors.
    pub v6_errors: u64,
    /// Echo sessions, ICMP and ICMPv6 (one identifier, 1-5 request/reply pairs with
    /// increasing sequence numbers; one flow each).
    pub echo_sessions: u64,
}

pub(crate) fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    if let Some(v) = map.get_mut(key) {
        *v += 1;
    } else {
        map.insert(key.to_string(), 1);
    }
}

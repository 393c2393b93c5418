//! The output record: one per DNS transaction (a query and its response, a query that got no
//! response, or a response whose query was not seen). Every field is a scalar or an array of
//! scalars, so records load into ClickHouse 18.16 with JSONEachRow.

use netspectra_packet::{community_id_v1, FlowKey, Timestamp};
use serde::{Serialize, Serializer};
use std::borrow::Cow;
use std::net::IpAddr;

/// Serializes a timestamp as `seconds.nanoseconds` without allocating.
fn ser_ts<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 32];
    let mut w = &mut buf[..];
    use std::io::Write;
    let _ = write!(w, "{}.{:09}", t.secs(), t.subsec_nanos());
    let n = 32 - w.len();
    s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or(""))
}

/// What happened to a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Query and response seen.
    Answered,
    /// Query seen, no response within the timeout (or before eviction or the end of input).
    Unanswered,
    /// Response seen, its query not (the capture started after it, or it was lost).
    OrphanResponse,
}

/// The records of one message section, as parallel arrays.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SectionRecords {
    /// Owner names.
    pub names: Vec<String>,
    /// Types.
    pub types: Vec<u16>,
    /// Time to live, seconds.
    pub ttls: Vec<u32>,
    /// Data as text (see docs/DNS.md for each type's form).
    pub data: Vec<String>,
}

impl SectionRecords {
    /// Empty arrays with room for `n` records.
    pub fn with_capacity(n: usize) -> Self {
        SectionRecords {
            names: Vec::with_capacity(n),
            types: Vec::with_capacity(n),
            ttls: Vec::with_capacity(n),
            data: Vec::with_capacity(n),
        }
    }

    /// Number of records held.
    pub fn len(&self) -> usize {
        self.types.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.types.is_empty()
    }
}

/// One DNS transaction, oriented client (query sender) to server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DnsRecord {
    /// Time of the query (of the response for orphan responses), `seconds.nanoseconds`.
    #[serde(serialize_with = "ser_ts")]
    pub ts: Timestamp,
    /// 4 or 6.
    pub ip_version: u8,
    /// Client address.
    pub src_ip: IpAddr,
    /// Client port.
    pub src_port: u16,
    /// Server address.
    pub dst_ip: IpAddr,
    /// Server port.
    pub dst_port: u16,
    /// Outer VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// Community ID v1 (seed 0) of the UDP flow or TCP connection.
    pub community_id: String,
    /// `udp` or `tcp`.
    pub transport: &'static str,
    /// answered, unanswered or orphan_response.
    pub status: Status,
    /// Transaction id.
    pub id: u16,
    /// Opcode (0 query, 4 notify, 5 update).
    pub opcode: u8,
    /// Query name (`<Root>` for the root), or its keyed token.
    pub qname: String,
    /// Query type.
    pub qtype: u16,
    /// Query type mnemonic (`A`, `AAAA`, ..., `TYPE123`).
    pub qtype_name: Cow<'static, str>,
    /// Query class.
    pub qclass: u16,
    /// Response code, extended by the OPT record when there is one (RFC 6891).
    pub rcode: Option<u16>,
    /// Response code mnemonic.
    pub rcode_name: Option<Cow<'static, str>>,
    /// Authoritative answer (response).
    pub aa: bool,
    /// Truncated (response).
    pub tc: bool,
    /// Recursion desired (query; response when the query was not seen).
    pub rd: bool,
    /// Recursion available (response).
    pub ra: bool,
    /// Authentic data (response).
    pub ad: bool,
    /// Checking disabled (query; response when the query was not seen).
    pub cd: bool,
    /// Answer section owner names.
    pub answer_names: Vec<String>,
    /// Answer section types.
    pub answer_types: Vec<u16>,
    /// Answer section TTLs.
    pub answer_ttls: Vec<u32>,
    /// Answer section data.
    pub answer_data: Vec<String>,
    /// Authority section owner names.
    pub authority_names: Vec<String>,
    /// Authority section types.
    pub authority_types: Vec<u16>,
    /// Authority section TTLs.
    pub authority_ttls: Vec<u32>,
    /// Authority section data.
    pub authority_data: Vec<String>,
    /// Additional section owner names (the OPT pseudo-record is not listed; see `edns_*`).
    pub additional_names: Vec<String>,
    /// Additional section types.
    pub additional_types: Vec<u16>,
    /// Additional section TTLs.
    pub additional_ttls: Vec<u32>,
    /// Additional section data.
    pub additional_data: Vec<String>,
    /// The response header's answer count (exact even when the arrays were capped).
    pub answer_count: u16,
    /// The response header's authority count.
    pub authority_count: u16,
    /// The response header's additional count (OPT included).
    pub additional_count: u16,
    /// EDNS UDP payload size of the query (of the response when the query was not seen).
    pub edns_udp_size: Option<u16>,
    /// EDNS version.
    pub edns_version: Option<u8>,
    /// EDNS DNSSEC OK bit.
    pub edns_do: bool,
    /// EDNS client subnet (`address/source-prefix`) of the query, else of the response.
    pub edns_client_subnet: Option<String>,
    /// Microseconds from the query to the response.
    pub latency_us: Option<u64>,
    /// Query message length in bytes.
    pub query_len: Option<u32>,
    /// Response message length in bytes.
    pub response_len: Option<u32>,
    /// Why the query or response was malformed (what was read before the problem is kept).
    pub malformed: Option<&'static str>,
}

impl DnsRecord {
    /// Maps the addresses the message carries (A and AAAA data, the EDNS client subnet) with
    /// `f`, leaving the transaction's own addresses alone (a pipeline maps those in the
    /// packet already).
    pub fn anonymize_data_addresses(&mut self, f: &mut dyn FnMut(IpAddr) -> IpAddr) {
        let sections = [
            (&self.answer_types, &mut self.answer_data),
            (&self.authority_types, &mut self.authority_data),
            (&self.additional_types, &mut self.additional_data),
        ];
        for (types, data) in sections {
            for (t, d) in types.iter().zip(data.iter_mut()) {
                if matches!(t, 1 | 28) {
                    if let Ok(ip) = d.parse::<IpAddr>() {
                        *d = f(ip).to_string();
                    }
                }
            }
        }
        if let Some(ecs) = &mut self.edns_client_subnet {
            if let Some((a, p)) = ecs.split_once('/') {
                if let Ok(ip) = a.parse::<IpAddr>() {
                    *ecs = format!("{}/{p}", f(ip));
                }
            }
        }
    }

    /// The records of one section as parallel arrays, moved out of the record's fields.
    pub(crate) fn set_section(&mut self, i: usize, s: SectionRecords) {
        let (n, t, l, d) = match i {
            0 => (
                &mut self.answer_names,
                &mut self.answer_types,
                &mut self.answer_ttls,
                &mut self.answer_data,
            ),
            1 => (
                &mut self.authority_names,
                &mut self.authority_types,
                &mut self.authority_ttls,
                &mut self.authority_data,
            ),
            _ => (
                &mut self.additional_names,
                &mut self.additional_types,
                &mut self.additional_ttls,
                &mut self.additional_data,
            ),
        };
        *n = s.names;
        *t = s.types;
        *l = s.ttls;
        *d = s.data;
    }

    /// Replaces every address in the record with `f(address)`: client and server (the
    /// Community ID is recomputed from the new ones), A/AAAA answer data and the client subnet.
    /// The pipeline's `anonymize` option calls this with its prefix-preserving mapping.
    pub fn anonymize_addresses(&mut self, f: &mut dyn FnMut(IpAddr) -> IpAddr) {
        self.src_ip = f(self.src_ip);
        self.dst_ip = f(self.dst_ip);
        let key = FlowKey {
            src: self.src_ip,
            dst: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: if self.transport == "tcp" { 6 } else { 17 },
            vlan: self.vlan,
        };
        self.community_id = community_id_v1(&key, 0);
        self.anonymize_data_addresses(f);
    }
}

/// Every column name a record has, in output order (for CSV/TSV field lists).
pub const FIELDS: &[&str] = &[
    "ts",
    "ip_version",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "vlan",
    "community_id",
    "transport",
    "status",
    "id",
    "opcode",
    "qname",
    "qtype",
    "qtype_name",
    "qclass",
    "rcode",
    "rcode_name",
    "aa",
    "tc",
    "rd",
    "ra",
    "ad",
    "cd",
    "answer_names",
    "answer_types",
    "answer_ttls",
    "answer_data",
    "authority_names",
    "authority_types",
    "authority_ttls",
    "authority_data",
    "additional_names",
    "additional_types",
    "additional_ttls",
    "additional_data",
    "answer_count",
    "authority_count",
    "additional_count",
    "edns_udp_size",
    "edns_version",
    "edns_do",
    "edns_client_subnet",
    "latency_us",
    "query_len",
    "response_len",
    "malformed",
];

//! Counters and the end-of-run summary: messages, transactions, table bounds hit, malformed
//! messages by reason, top query names, rcodes and types, latency percentiles. Mergeable across
//! workers.

use crate::names::{rcode_name, type_name};
pub use netspectra_tally::{BoundedCounts, LatencyHistogram as Latency, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a message was counted as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// The message ends inside the header, a question or a record.
    Truncated,
    /// A label starts with the reserved bits `01` or `10`.
    BadLabelType,
    /// A compression pointer points at or after itself (forward pointer).
    ForwardPointer,
    /// A compression pointer points back into bytes this name already read (a loop).
    PointerLoop,
    /// More compression pointers in one name than allowed.
    TooManyPointers,
    /// A name longer than 255 bytes.
    NameTooLong,
    /// Record data inconsistent with its type (an A record of 3 bytes, a name running past the
    /// data, ...).
    BadRdata,
    /// An OPT record that is not owned by the root or whose options do not fit.
    BadOpt,
    /// Bytes left after the last record of a message.
    TrailingData,
    /// A DNS-over-TCP length prefix smaller than a DNS header.
    BadTcpLength,
}

impl Malformed {
    /// Every reason, in report order.
    pub const ALL: [Malformed; 10] = [
        Malformed::Truncated,
        Malformed::BadLabelType,
        Malformed::ForwardPointer,
        Malformed::PointerLoop,
        Malformed::TooManyPointers,
        Malformed::NameTooLong,
        Malformed::BadRdata,
        Malformed::BadOpt,
        Malformed::TrailingData,
        Malformed::BadTcpLength,
    ];

    /// Snake-case name for reports and the record's `malformed` field.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::Truncated => "truncated",
            Malformed::BadLabelType => "bad_label_type",
            Malformed::ForwardPointer => "forward_pointer",
            Malformed::PointerLoop => "pointer_loop",
            Malformed::TooManyPointers => "too_many_pointers",
            Malformed::NameTooLong => "name_too_long",
            Malformed::BadRdata => "bad_rdata",
            Malformed::BadOpt => "bad_opt",
            Malformed::TrailingData => "trailing_data",
            Malformed::BadTcpLength => "bad_tcp_length",
        }
    }
}

/// Counters of one analyzer (or several merged).
#[derive(Clone, Debug)]
pub struct DnsStats {
    /// Query messages read (UDP and TCP).
    pub queries: u64,
    /// Response messages read.
    pub responses: u64,
    /// Messages read over TCP.
    pub tcp_messages: u64,
    /// UDP datagrams on a port that is not a DNS port that passed the content check.
    pub detected_off_port: u64,
    /// Records emitted.
    pub records: u64,
    /// Transactions with a query and its response.
    pub answered: u64,
    /// Queries that got no response within the timeout (or before the end / eviction).
    pub unanswered: u64,
    /// Responses whose query was not seen.
    pub orphan_responses: u64,
    /// Queries seen again for a transaction still remembered (retransmissions, duplicated
    /// frames): no second record.
    pub duplicate_queries: u64,
    /// Responses seen again for an answered transaction: no second record.
    pub duplicate_responses: u64,
    /// Responses with the TC (truncated) bit (duplicates not counted again).
    pub truncated_responses: u64,
    /// Transactions dropped from the full table (unanswered ones are emitted first).
    pub evicted: u64,
    /// DNS-over-TCP connections tracked.
    pub tcp_connections: u64,
    /// TCP connections evicted from the full table.
    pub tcp_evicted: u64,
    /// TCP connections dropped after the idle timeout.
    pub tcp_timed_out: u64,
    /// TCP segments whose whole range was seen before.
    pub tcp_retransmissions: u64,
    /// Sequence gaps in tracked TCP connections (the stream resynchronises on the next
    /// segment that starts a message).
    pub tcp_gaps: u64,
    /// TCP messages longer than the reassembly bound (skipped).
    pub tcp_too_large: u64,
    /// UDP datagrams that are IP fragments (not reassembled, skipped).
    pub fragments: u64,
    /// Records whose sections held more records than kept (`max_records`).
    pub records_capped: u64,
    /// Malformed messages by reason (a message counts once, under its first problem).
    pub malformed: BTreeMap<Malformed, u64>,
    /// Transactions by query name.
    pub qnames: BoundedCounts,
    /// Responses by (extended) rcode.
    pub rcodes: BTreeMap<u16, u64>,
    /// Transactions by query type.
    pub qtypes: BTreeMap<u16, u64>,
    /// Query-to-response latency.
    pub latency: Latency,
}

impl DnsStats {
    /// Empty counters; the query-name map holds at most `cap` keys.
    pub fn new(cap: usize) -> Self {
        DnsStats {
            queries: 0,
            responses: 0,
            tcp_messages: 0,
            detected_off_port: 0,
            records: 0,
            answered: 0,
            unanswered: 0,
            orphan_responses: 0,
            duplicate_queries: 0,
            duplicate_responses: 0,
            truncated_responses: 0,
            evicted: 0,
            tcp_connections: 0,
            tcp_evicted: 0,
            tcp_timed_out: 0,
            tcp_retransmissions: 0,
            tcp_gaps: 0,
            tcp_too_large: 0,
            fragments: 0,
            records_capped: 0,
            malformed: BTreeMap::new(),
            qnames: BoundedCounts::new(cap),
            rcodes: BTreeMap::new(),
            qtypes: BTreeMap::new(),
            latency: Latency::default(),
        }
    }

    /// Counts one malformed message.
    pub fn malformed(&mut self, why: Malformed) {
        *self.malformed.entry(why).or_default() += 1;
    }

    /// Malformed messages, all reasons.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &DnsStats) {
        self.queries += o.queries;
        self.responses += o.responses;
        self.tcp_messages += o.tcp_messages;
        self.detected_off_port += o.detected_off_port;
        self.records += o.records;
        self.answered += o.answered;
        self.unanswered += o.unanswered;
        self.orphan_responses += o.orphan_responses;
        self.duplicate_queries += o.duplicate_queries;
        self.duplicate_responses += o.duplicate_responses;
        self.truncated_responses += o.truncated_responses;
        self.evicted += o.evicted;
        self.tcp_connections += o.tcp_connections;
        self.tcp_evicted += o.tcp_evicted;
        self.tcp_timed_out += o.tcp_timed_out;
        self.tcp_retransmissions += o.tcp_retransmissions;
        self.tcp_gaps += o.tcp_gaps;
        self.tcp_too_large += o.tcp_too_large;
        self.fragments += o.fragments;
        self.records_capped += o.records_capped;
        for (k, v) in &o.malformed {
            *self.malformed.entry(*k).or_default() += v;
        }
        self.qnames.merge(&o.qnames);
        for (k, v) in &o.rcodes {
            *self.rcodes.entry(*k).or_default() += v;
        }
        for (k, v) in &o.qtypes {
            *self.qtypes.entry(*k).or_default() += v;
        }
        self.latency.merge(&o.latency);
    }

    /// The serializable summary with the `top` most frequent query names.
    pub fn report(&self, top: usize) -> DnsSummary {
        DnsSummary {
            queries: self.queries,
            responses: self.responses,
            tcp_messages: self.tcp_messages,
            detected_off_port: self.detected_off_port,
            records: self.records,
            answered: self.answered,
            unanswered: self.unanswered,
            orphan_responses: self.orphan_responses,
            duplicate_queries: self.duplicate_queries,
            duplicate_responses: self.duplicate_responses,
            truncated_responses: self.truncated_responses,
            evicted: self.evicted,
            tcp_connections: self.tcp_connections,
            tcp_evicted: self.tcp_evicted,
            tcp_timed_out: self.tcp_timed_out,
            tcp_retransmissions: self.tcp_retransmissions,
            tcp_gaps: self.tcp_gaps,
            tcp_too_large: self.tcp_too_large,
            fragments: self.fragments,
            records_capped: self.records_capped,
            top_qnames: self.qnames.top(top),
            rcodes: self
                .rcodes
                .iter()
                .map(|(k, v)| (rcode_name(*k).into_owned(), *v))
                .collect(),
            qtypes: self
                .qtypes
                .iter()
                .map(|(k, v)| (type_name(*k).into_owned(), *v))
                .collect(),
            latency_us: self.latency.summary(),
            malformed: Malformed::ALL
                .iter()
                .filter_map(|m| self.malformed.get(m).map(|&n| (m.name().to_string(), n)))
                .collect(),
        }
    }
}

/// The end-of-run summary (see [`DnsStats`] for what each count means).
#[derive(Clone, Debug, Serialize)]
#[allow(missing_docs)]
pub struct DnsSummary {
    pub queries: u64,
    pub responses: u64,
    pub tcp_messages: u64,
    pub detected_off_port: u64,
    pub records: u64,
    pub answered: u64,
    pub unanswered: u64,
    pub orphan_responses: u64,
    pub duplicate_queries: u64,
    pub duplicate_responses: u64,
    pub truncated_responses: u64,
    pub evicted: u64,
    pub tcp_connections: u64,
    pub tcp_evicted: u64,
    pub tcp_timed_out: u64,
    pub tcp_retransmissions: u64,
    pub tcp_gaps: u64,
    pub tcp_too_large: u64,
    pub fragments: u64,
    pub records_capped: u64,
    /// Most frequent query names.
    pub top_qnames: Vec<(String, u64)>,
    /// Responses by rcode name.
    pub rcodes: BTreeMap<String, u64>,
    /// Transactions by query type name.
    pub qtypes: BTreeMap<String, u64>,
    /// Query-to-response latency.
    pub latency_us: LatencySummary,
    /// Malformed messages by reason.
    pub malformed: BTreeMap<String, u64>,
}

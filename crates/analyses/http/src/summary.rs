//! End-of-run summary: counts, top hosts and User-Agents, status mix, latency percentiles and
//! malformed counts by reason. Mergeable across workers.

pub use netspectra_tally::{BoundedCounts, LatencyHistogram, LatencySummary};
use serde::Serialize;
use std::collections::BTreeMap;

/// Why a message was counted as malformed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Malformed {
    /// The request line did not parse (bad method token, target or version).
    BadRequestLine,
    /// The status line did not parse.
    BadStatusLine,
    /// A header line has no colon or bytes not allowed in a name (the line was skipped).
    BadHeaderLine,
    /// A header value holds bytes not allowed there (NUL, other control bytes).
    BadHeaderValue,
    /// More header lines than the parser accepts.
    TooManyHeaders,
    /// The header block grew past the reassembly buffer size.
    HeaderTooLarge,
    /// A chunked body had a bad chunk-size line; the direction resynchronised.
    BadChunk,
    /// Data that is not an HTTP message where one was expected.
    UnexpectedData,
}

impl Malformed {
    /// Every reason, for fixed-size counters.
    pub const ALL: [Malformed; 8] = [
        Malformed::BadRequestLine,
        Malformed::BadStatusLine,
        Malformed::BadHeaderLine,
        Malformed::BadHeaderValue,
        Malformed::TooManyHeaders,
        Malformed::HeaderTooLarge,
        Malformed::BadChunk,
        Malformed::UnexpectedData,
    ];

    /// Snake-case name for reports.
    pub fn name(self) -> &'static str {
        match self {
            Malformed::BadRequestLine => "bad_request_line",
            Malformed::BadStatusLine => "bad_status_line",
            Malformed::BadHeaderLine => "bad_header_line",
            Malformed::BadHeaderValue => "bad_header_value",
            Malformed::TooManyHeaders => "too_many_headers",
            Malformed::HeaderTooLarge => "header_too_large",
            Malformed::BadChunk => "bad_chunk",
            Malformed::UnexpectedData => "unexpected_data",
        }
    }
}

/// Counters of one analyzer (or several merged).
#[derive(Clone, Debug)]
pub struct Stats {
    /// Requests seen (complete or partial).
    pub requests: u64,
    /// Responses seen (complete or partial), interim 1xx included.
    pub responses: u64,
    /// Records emitted with `partial: true`.
    pub partial: u64,
    /// Responses paired with a request.
    pub paired: u64,
    /// Requests that never got a response (flushed at close, timeout, eviction or end).
    pub unanswered: u64,
    /// Responses with no request waiting for them.
    pub orphan_responses: u64,
    /// Requests dropped from a full pipelining queue (flushed as unanswered).
    pub pipeline_overflow: u64,
    /// TCP segments ignored because their whole sequence range was seen before
    /// (retransmissions and duplicated frames).
    pub retransmissions: u64,
    /// Sequence gaps (lost or reordered segments) in tracked connections.
    pub gaps: u64,
    /// Connections tracked.
    pub connections: u64,
    /// Connections evicted because the table was full.
    pub evicted: u64,
    /// Connections closed by idle timeout.
    pub timed_out: u64,
    /// Connections that switched to another protocol (CONNECT tunnel, 101 upgrade).
    pub tunnels: u64,
    /// Malformed counts by reason.
    pub malformed: BTreeMap<Malformed, u64>,
    /// Requests by method.
    pub methods: BoundedCounts,
    /// Requests by Host.
    pub hosts: BoundedCounts,
    /// Requests by User-Agent.
    pub user_agents: BoundedCounts,
    /// Responses by status code.
    pub status: BTreeMap<u16, u64>,
    /// Request-to-response latency.
    pub latency: LatencyHistogram,
    /// User-Agent cache hits.
    pub ua_cache_hits: u64,
    /// User-Agent cache misses.
    pub ua_cache_misses: u64,
}

impl Stats {
    /// Empty counters; the top-N maps hold at most `cap` keys each.
    pub fn new(cap: usize) -> Self {
        Stats {
            requests: 0,
            responses: 0,
            partial: 0,
            paired: 0,
            unanswered: 0,
            orphan_responses: 0,
            pipeline_overflow: 0,
            retransmissions: 0,
            gaps: 0,
            connections: 0,
            evicted: 0,
            timed_out: 0,
            tunnels: 0,
            malformed: BTreeMap::new(),
            methods: BoundedCounts::new(cap),
            hosts: BoundedCounts::new(cap),
            user_agents: BoundedCounts::new(cap),
            status: BTreeMap::new(),
            latency: LatencyHistogram::default(),
            ua_cache_hits: 0,
            ua_cache_misses: 0,
        }
    }

    /// Counts one malformed message.
    pub fn malformed(&mut self, why: Malformed) {
        *self.malformed.entry(why).or_default() += 1;
    }

    /// Total malformed count.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.values().sum()
    }

    /// Adds `o` into `self`.
    pub fn merge(&mut self, o: &Stats) {
        self.requests += o.requests;
        self.responses += o.responses;
        self.partial += o.partial;
        self.paired += o.paired;
        self.unanswered += o.unanswered;
        self.orphan_responses += o.orphan_responses;
        self.pipeline_overflow += o.pipeline_overflow;
        self.retransmissions += o.retransmissions;
        self.gaps += o.gaps;
        self.connections += o.connections;
        self.evicted += o.evicted;
        self.timed_out += o.timed_out;
        self.tunnels += o.tunnels;
        for (k, v) in &o.malformed {
            *self.malformed.entry(*k).or_default() += v;
        }
        self.methods.merge(&o.methods);
        self.hosts.merge(&o.hosts);
        self.user_agents.merge(&o.user_agents);
        for (k, v) in &o.status {
            *self.status.entry(*k).or_default() += v;
        }
        self.latency.merge(&o.latency);
        self.ua_cache_hits += o.ua_cache_hits;
        self.ua_cache_misses += o.ua_cache_misses;
    }

    /// A serializable summary with the `top` largest hosts and User-Agents.
    pub fn report(&self, top: usize) -> Summary {
        let lookups = self.ua_cache_hits + self.ua_cache_misses;
        Summary {
            requests: self.requests,
            responses: self.responses,
            paired: self.paired,
            unanswered: self.unanswered,
            orphan_responses: self.orphan_responses,
            partial: self.partial,
            connections: self.connections,
            evicted: self.evicted,
            timed_out: self.timed_out,
            tunnels: self.tunnels,
            retransmissions: self.retransmissions,
            gaps: self.gaps,
            pipeline_overflow: self.pipeline_overflow,
            methods: self.methods.top(usize::MAX).into_iter().collect(),
            status: self
                .status
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect(),
            top_hosts: self.hosts.top(top),
            top_user_agents: self.user_agents.top(top),
            latency_us: self.latency.summary(),
            malformed: Malformed::ALL
                .iter()
                .filter_map(|m| self.malformed.get(m).map(|&n| (m.name().to_string(), n)))
                .collect(),
            ua_cache_hit_rate: (lookups > 0).then(|| self.ua_cache_hits as f64 / lookups as f64),
        }
    }
}

/// The end-of-run summary as printed (`--json` form is this struct).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Requests seen.
    pub requests: u64,
    /// Responses seen.
    pub responses: u64,
    /// Responses paired with their request.
    pub paired: u64,
    /// Requests without a response.
    pub unanswered: u64,
    /// Responses without a request.
    pub orphan_responses: u64,
    /// Partial records.
    pub partial: u64,
    /// HTTP connections tracked.
    pub connections: u64,
    /// Connections evicted from the full table.
    pub evicted: u64,
    /// Connections closed by idle timeout.
    pub timed_out: u64,
    /// Connections that became tunnels or upgraded.
    pub tunnels: u64,
    /// Segments ignored as retransmissions or duplicates.
    pub retransmissions: u64,
    /// Sequence gaps in tracked connections.
    pub gaps: u64,
    /// Requests pushed out of a full pipelining queue.
    pub pipeline_overflow: u64,
    /// Requests by method.
    pub methods: BTreeMap<String, u64>,
    /// Responses by status code.
    pub status: BTreeMap<String, u64>,
    /// Most frequent Host headers.
    pub top_hosts: Vec<(String, u64)>,
    /// Most frequent User-Agents.
    pub top_user_agents: Vec<(String, u64)>,
    /// Request-to-response latency.
    pub latency_us: LatencySummary,
    /// Malformed messages by reason.
    pub malformed: BTreeMap<String, u64>,
    /// Share of User-Agent lookups answered by the cache.
    pub ua_cache_hit_rate: Option<f64>,
}

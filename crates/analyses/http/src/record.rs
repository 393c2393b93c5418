//! The output record: one per request, per response, or (paired mode) per transaction.

use serde::Serialize;
use std::collections::BTreeMap;

/// What a record describes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// An HTTP request (client to server).
    Request,
    /// An HTTP response (server to client), carrying its request's method/host/uri.
    Response,
    /// A request and its response in one record (`--paired`), Zeek http.log style.
    Transaction,
}

/// One HTTP record. Fields that do not apply (or were absent) are `None`.
///
/// Addresses are as seen on the wire for requests and responses (a response goes from the
/// server to the client); a transaction is oriented client to server.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct HttpRecord {
    /// Record kind.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Capture time of the segment that started the message (the request for transactions),
    /// as `seconds.nanoseconds` since the epoch.
    pub ts: String,
    /// 4 or 6.
    pub ip_version: u8,
    /// Source address.
    pub src_ip: String,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst_ip: String,
    /// Destination port.
    pub dst_port: u16,
    /// Outer VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// Community ID v1 of the connection (seed 0), as `netspectra flows` reports it.
    pub community_id: String,
    /// Request method.
    pub method: Option<String>,
    /// Host header.
    pub host: Option<String>,
    /// Request target.
    pub uri: Option<String>,
    /// `HTTP/1.0` or `HTTP/1.1` of this message (of the request for transactions).
    pub version: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// Referer header.
    pub referer: Option<String>,
    /// Pragma header.
    pub pragma: Option<String>,
    /// Connection header of this message (of the request for transactions).
    pub connection: Option<String>,
    /// Request Content-Type.
    pub content_type: Option<String>,
    /// Request Content-Length.
    pub content_length: Option<u64>,
    /// Transfer-Encoding of this message (of the request for transactions).
    pub transfer_encoding: Option<String>,
    /// Operating system parsed from the User-Agent.
    pub ua_os: Option<String>,
    /// Operating system version parsed from the User-Agent.
    pub ua_os_version: Option<String>,
    /// Browser (or client/bot) name parsed from the User-Agent.
    pub ua_browser: Option<String>,
    /// Browser version parsed from the User-Agent.
    pub ua_browser_version: Option<String>,
    /// Device class: desktop, mobile, tablet, bot, appliance, other or unknown.
    pub ua_device: Option<String>,
    /// Response status code.
    pub status: Option<u16>,
    /// Response reason phrase.
    pub reason: Option<String>,
    /// Response version (transactions only; requests and responses use `version`).
    pub resp_version: Option<String>,
    /// Server header.
    pub server: Option<String>,
    /// Response Content-Type.
    pub resp_content_type: Option<String>,
    /// Response Content-Encoding.
    pub content_encoding: Option<String>,
    /// Response Cache-Control.
    pub cache_control: Option<String>,
    /// Response Content-Length.
    pub resp_content_length: Option<u64>,
    /// Microseconds from the request to its response (responses and transactions).
    pub latency_us: Option<u64>,
    /// True when the header block could not be completed (cut by loss, size cap, close or end
    /// of input): the fields hold what was read.
    pub partial: bool,
    /// Extra headers (names lower-cased; repeated headers joined by `, `), when configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub headers: Option<BTreeMap<String, String>>,
}

/// Every column name a record has, in output order (for CSV/TSV field lists).
pub const FIELDS: &[&str] = &[
    "type",
    "ts",
    "ip_version",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "vlan",
    "community_id",
    "method",
    "host",
    "uri",
    "version",
    "user_agent",
    "referer",
    "pragma",
    "connection",
    "content_type",
    "content_length",
    "transfer_encoding",
    "ua_os",
    "ua_os_version",
    "ua_browser",
    "ua_browser_version",
    "ua_device",
    "status",
    "reason",
    "resp_version",
    "server",
    "resp_content_type",
    "content_encoding",
    "cache_control",
    "resp_content_length",
    "latency_us",
    "partial",
    "headers",
];

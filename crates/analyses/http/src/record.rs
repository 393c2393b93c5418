//! The output record: one per request, per response, or (paired mode) per transaction.

use netspectra_packet::Timestamp;
use serde::{Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

/// An immutable string that is cheap to clone: a static literal (methods, versions, device
/// classes) or a shared heap string (values repeated across records, like the User-Agent or
/// the Community ID, are shared rather than copied).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Text {
    /// A literal.
    Static(&'static str),
    /// A shared string.
    Shared(Arc<str>),
}

impl Deref for Text {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            Text::Static(s) => s,
            Text::Shared(s) => s,
        }
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&**self, f)
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self)
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text::Shared(Arc::from(s))
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text::Shared(Arc::from(s))
    }
}

impl PartialEq<str> for Text {
    fn eq(&self, o: &str) -> bool {
        **self == *o
    }
}

impl PartialEq<&str> for Text {
    fn eq(&self, o: &&str) -> bool {
        **self == **o
    }
}

impl Serialize for Text {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self)
    }
}

/// Serializes a timestamp as `seconds.nanoseconds` without allocating.
fn ser_ts<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; 32];
    let mut w = &mut buf[..];
    use std::io::Write;
    let _ = write!(w, "{}.{:09}", t.secs(), t.subsec_nanos());
    let n = 32 - w.len();
    s.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or(""))
}

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

/// How a request line that a strict parser refuses was read (tshark and Zeek read these
/// too, and so does this crate; the record says so).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Lenient {
    /// Spaces inside the request target (`GET /a b HTTP/1.1`): the target is everything
    /// between the method and the version.
    SpaceInUri,
    /// No version (`GET /path`, HTTP/0.9 style, alone or followed by headers).
    NoVersion,
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
    /// written as `seconds.nanoseconds` since the epoch.
    #[serde(serialize_with = "ser_ts")]
    pub ts: Timestamp,
    /// 4 or 6.
    pub ip_version: u8,
    /// Source address.
    pub src_ip: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination address.
    pub dst_ip: IpAddr,
    /// Destination port.
    pub dst_port: u16,
    /// Outer VLAN id, when tagged.
    pub vlan: Option<u16>,
    /// Community ID v1 of the connection (seed 0), as `netspectra flows` reports it.
    pub community_id: Text,
    /// Request method.
    pub method: Option<Text>,
    /// Host header.
    pub host: Option<Text>,
    /// Request target.
    pub uri: Option<Text>,
    /// `HTTP/1.0` or `HTTP/1.1` of this message (of the request for transactions).
    pub version: Option<Text>,
    /// User-Agent header.
    pub user_agent: Option<Text>,
    /// Referer header.
    pub referer: Option<Text>,
    /// Pragma header.
    pub pragma: Option<Text>,
    /// Connection header of this message (of the request for transactions).
    pub connection: Option<Text>,
    /// Request Content-Type.
    pub content_type: Option<Text>,
    /// Request Content-Length.
    pub content_length: Option<u64>,
    /// Transfer-Encoding of this message (of the request for transactions).
    pub transfer_encoding: Option<Text>,
    /// Operating system parsed from the User-Agent.
    pub ua_os: Option<Text>,
    /// Operating system version parsed from the User-Agent.
    pub ua_os_version: Option<Text>,
    /// Browser (or client/bot) name parsed from the User-Agent.
    pub ua_browser: Option<Text>,
    /// Browser version parsed from the User-Agent.
    pub ua_browser_version: Option<Text>,
    /// Device class: desktop, mobile, tablet, bot, appliance, other or unknown.
    pub ua_device: Option<Text>,
    /// Response status code.
    pub status: Option<u16>,
    /// Response reason phrase.
    pub reason: Option<Text>,
    /// Response version (transactions only; requests and responses use `version`).
    pub resp_version: Option<Text>,
    /// Server header.
    pub server: Option<Text>,
    /// Response Content-Type.
    pub resp_content_type: Option<Text>,
    /// Response Content-Encoding.
    pub content_encoding: Option<Text>,
    /// Response Cache-Control.
    pub cache_control: Option<Text>,
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
    /// Set when the request line was read leniently (see [`Lenient`]); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lenient: Option<Lenient>,
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
    "lenient",
];

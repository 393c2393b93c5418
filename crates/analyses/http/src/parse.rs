//! Turning one header block into owned fields with httparse: the standard fields, the body
//! framing, and the configured extra headers (capped and redacted).

use crate::record::{Lenient, Text};
use crate::summary::Malformed;
use crate::HeaderSelect;
use std::collections::BTreeMap;
use std::hash::BuildHasher;
use std::sync::Arc;

/// Header lines accepted per message; more is counted as `too_many_headers`.
pub const MAX_HEADERS: usize = 128;

/// The fields of one request or response header block.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Message {
    /// True for a request, false for a response.
    pub is_request: bool,
    /// Request method.
    pub method: Option<Text>,
    /// Request target.
    pub uri: Option<Text>,
    /// `HTTP/1.0` or `HTTP/1.1`.
    pub version: Option<Text>,
    /// Response status.
    pub status: Option<u16>,
    /// Response reason phrase.
    pub reason: Option<Text>,
    /// Host.
    pub host: Option<Text>,
    /// User-Agent.
    pub user_agent: Option<Text>,
    /// Referer.
    pub referer: Option<Text>,
    /// Pragma.
    pub pragma: Option<Text>,
    /// Connection.
    pub connection: Option<Text>,
    /// Content-Type.
    pub content_type: Option<Text>,
    /// Content-Length (when it is a valid number).
    pub content_length: Option<u64>,
    /// Transfer-Encoding.
    pub transfer_encoding: Option<Text>,
    /// Server.
    pub server: Option<Text>,
    /// Content-Encoding.
    pub content_encoding: Option<Text>,
    /// Cache-Control.
    pub cache_control: Option<Text>,
    /// Extra headers, when selected.
    pub headers: Option<BTreeMap<String, String>>,
    /// Body framing from Transfer-Encoding / Content-Length.
    pub framing: Option<FramingHint>,
    /// A header line was skipped as invalid.
    pub bad_line: Option<Malformed>,
    /// The request line was read leniently.
    pub lenient: Option<Lenient>,
}

/// What the headers say about the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FramingHint {
    /// Chunked transfer coding.
    Chunked,
    /// A Content-Length.
    Length(u64),
}

/// Limits and selections applied while extracting fields.
#[derive(Clone, Debug)]
pub struct ExtractOptions {
    /// Which extra headers to keep.
    pub extra: HeaderSelect,
    /// Lower-case header names whose values are replaced by their length.
    pub redact: Vec<String>,
    /// Cap on header name length (bytes).
    pub max_name: usize,
    /// Cap on header value and URI length (bytes).
    pub max_value: usize,
}

impl Default for ExtractOptions {
    fn default() -> Self {
        ExtractOptions {
            extra: HeaderSelect::None,
            redact: vec!["authorization".into(), "cookie".into(), "set-cookie".into()],
            max_name: 256,
            max_value: 2048,
        }
    }
}

/// Outcome of parsing a buffer that starts a message.
#[derive(Debug)]
pub enum Parsed {
    /// A complete header block of this many bytes.
    Complete(usize, Box<Message>),
    /// More bytes are needed.
    Partial,
    /// Not a valid header block.
    Invalid(Malformed),
}

fn strict() -> httparse::ParserConfig {
    let mut c = httparse::ParserConfig::default();
    c.allow_multiple_spaces_in_request_line_delimiters(true)
        .allow_multiple_spaces_in_response_status_delimiters(true)
        .allow_obsolete_multiline_headers_in_responses(true)
        .allow_spaces_after_header_name_in_responses(true);
    c
}

fn lenient() -> httparse::ParserConfig {
    let mut c = strict();
    c.ignore_invalid_headers_in_requests(true)
        .ignore_invalid_headers_in_responses(true);
    c
}

fn error_reason(e: httparse::Error, request: bool) -> Malformed {
    match e {
        httparse::Error::HeaderName | httparse::Error::NewLine => Malformed::BadHeaderLine,
        httparse::Error::HeaderValue => Malformed::BadHeaderValue,
        httparse::Error::TooManyHeaders => Malformed::TooManyHeaders,
        _ if request => Malformed::BadRequestLine,
        _ => Malformed::BadStatusLine,
    }
}

/// Parses the header block at the start of `buf` (a request when `request`).
///
/// Invalid header lines are skipped (and reported in [`Message::bad_line`]) as long as the
/// request or status line is valid, as browsers and tshark do.
pub fn parse(buf: &[u8], request: bool, opts: &ExtractOptions, intern: &mut Interner) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let first = if request {
        parse_req(&strict(), buf, &mut headers, opts, intern)
    } else {
        parse_resp(&strict(), buf, &mut headers, opts, intern)
    };
    match first {
        Err(
            e @ (httparse::Error::HeaderName
            | httparse::Error::HeaderValue
            | httparse::Error::NewLine),
        ) => {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let again = if request {
                parse_req(&lenient(), buf, &mut headers, opts, intern)
            } else {
                parse_resp(&lenient(), buf, &mut headers, opts, intern)
            };
            match again {
                Ok(Parsed::Complete(n, mut m)) => {
                    m.bad_line = Some(error_reason(e, request));
                    Parsed::Complete(n, m)
                }
                Ok(p) => p,
                Err(e2) => Parsed::Invalid(error_reason(e2, request)),
            }
        }
        // A request line with spaces in its target or without a version: read it as tshark
        // and Zeek do.
        Err(e @ (httparse::Error::Token | httparse::Error::Version)) if request => {
            lenient_request(buf, opts, intern).unwrap_or(Parsed::Invalid(error_reason(e, true)))
        }
        Err(e) => Parsed::Invalid(error_reason(e, request)),
        Ok(p) => p,
    }
}

/// Longest request line read leniently.
const MAX_LENIENT_LINE: usize = 8192;

/// The parts of a request line httparse refused.
struct LenientLine<'a> {
    method: &'a [u8],
    target: &'a [u8],
    /// The minor version of `HTTP/1.x`; `None` when the line has no version.
    version: Option<u8>,
    how: Lenient,
}

/// Splits a request line httparse refused; `None` unless every byte is printable ASCII, the
/// method is a token, the target is not empty and a version, if any, is HTTP/1.0 or 1.1.
fn lenient_line(line: &[u8]) -> Option<LenientLine<'_>> {
    if !line.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        return None;
    }
    let sp = line.iter().position(|&b| b == b' ')?;
    let method = &line[..sp];
    if method.is_empty()
        || !method
            .iter()
            .all(|&b| b.is_ascii_uppercase() || b == b'-' || b == b'_')
    {
        return None;
    }
    let rest = line[sp..].trim_ascii();
    let last = rest.rsplit(|&b| b == b' ').next().unwrap_or(rest);
    let version = match last {
        b"HTTP/1.0" => Some(0),
        b"HTTP/1.1" => Some(1),
        // Another version (HTTP/2.0, HTTP/1.2, ...) is not HTTP/1.x.
        v if v.starts_with(b"HTTP/") => return None,
        _ => None,
    };
    let target = match version {
        Some(_) => rest[..rest.len() - last.len()].trim_ascii_end(),
        None => rest,
    };
    if target.is_empty() {
        return None;
    }
    Some(LenientLine {
        method,
        target,
        version,
        how: match version {
            Some(_) => Lenient::SpaceInUri,
            None => Lenient::NoVersion,
        },
    })
}

/// Reads a request whose line httparse refused (see [`lenient_line`]); its headers, if any,
/// must parse. A line alone, with nothing after it yet, is `Partial`: headers may follow, or
/// it is an HTTP/0.9 request, which [`http09_request`] completes when the client stops.
fn lenient_request(buf: &[u8], opts: &ExtractOptions, intern: &mut Interner) -> Option<Parsed> {
    let Some(eol) = buf.iter().take(MAX_LENIENT_LINE).position(|&b| b == b'\n') else {
        // The line is not complete: wait for it while it can still be one.
        let ok = buf.len() < MAX_LENIENT_LINE && buf.iter().all(|&b| (0x20..0x7f).contains(&b));
        return ok.then_some(Parsed::Partial);
    };
    let line = &buf[..eol];
    let parts = lenient_line(line.strip_suffix(b"\r").unwrap_or(line))?;
    let after = &buf[eol + 1..];
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let (used, hs): (usize, &[httparse::Header<'_>]) = if after.is_empty() {
        return Some(Parsed::Partial);
    } else if after.starts_with(b"\r\n") {
        (2, &[])
    } else if after.starts_with(b"\n") {
        (1, &[])
    } else {
        match httparse::parse_headers(after, &mut headers) {
            Ok(httparse::Status::Complete((n, hs))) => (n, hs),
            Ok(httparse::Status::Partial) => return Some(Parsed::Partial),
            Err(e) => return Some(Parsed::Invalid(error_reason(e, true))),
        }
    };
    let mut m = lenient_message(&parts, opts);
    fill_headers(&mut m, hs, opts, intern);
    Some(Parsed::Complete(eol + 1 + used, Box::new(m)))
}

fn lenient_message(l: &LenientLine<'_>, opts: &ExtractOptions) -> Message {
    Message {
        is_request: true,
        // The method is ASCII (checked by `lenient_line`).
        method: Some(method(
            std::str::from_utf8(l.method).unwrap_or("-"),
            opts.max_value,
        )),
        uri: Some(text(l.target, opts.max_value)),
        version: l.version.map(version),
        lenient: Some(l.how),
        ..Message::default()
    }
}

/// An HTTP/0.9 request: `buf` is exactly one request line without a version and its line
/// end, and the client sent nothing after it (it closed, or the server answered).
pub fn http09_request(buf: &[u8], opts: &ExtractOptions) -> Option<Message> {
    let line = buf.strip_suffix(b"\n")?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if line.contains(&b'\n') {
        return None;
    }
    let parts = lenient_line(line)?;
    parts
        .version
        .is_none()
        .then(|| lenient_message(&parts, opts))
}

fn parse_req<'b>(
    cfg: &httparse::ParserConfig,
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
    opts: &ExtractOptions,
    intern: &mut Interner,
) -> Result<Parsed, httparse::Error> {
    let mut r = httparse::Request::new(headers);
    match cfg.parse_request(&mut r, buf)? {
        httparse::Status::Partial => Ok(Parsed::Partial),
        httparse::Status::Complete(n) => {
            let mut m = Message {
                is_request: true,
                method: r.method.map(|s| method(s, opts.max_value)),
                uri: r.path.map(|s| text(s.as_bytes(), opts.max_value)),
                version: r.version.map(version),
                ..Message::default()
            };
            fill_headers(&mut m, r.headers, opts, intern);
            Ok(Parsed::Complete(n, Box::new(m)))
        }
    }
}

fn parse_resp<'b>(
    cfg: &httparse::ParserConfig,
    buf: &'b [u8],
    headers: &mut [httparse::Header<'b>],
    opts: &ExtractOptions,
    intern: &mut Interner,
) -> Result<Parsed, httparse::Error> {
    let mut r = httparse::Response::new(headers);
    match cfg.parse_response(&mut r, buf)? {
        httparse::Status::Partial => Ok(Parsed::Partial),
        httparse::Status::Complete(n) => {
            let mut m = Message {
                is_request: false,
                status: r.code,
                reason: r.reason.map(|s| intern.text(s.as_bytes(), opts.max_value)),
                version: r.version.map(version),
                ..Message::default()
            };
            fill_headers(&mut m, r.headers, opts, intern);
            Ok(Parsed::Complete(n, Box::new(m)))
        }
    }
}

fn version(v: u8) -> Text {
    Text::Static(if v == 0 { "HTTP/1.0" } else { "HTTP/1.1" })
}

/// Methods as shared literals (no allocation for the common ones). Standard methods are
/// recorded whole whatever `max` (they are short tokens the parser acts on: HEAD and CONNECT
/// change how the response is framed); others are cut to `max` bytes like any value.
fn method(m: &str, max: usize) -> Text {
    const COMMON: &[&str] = &[
        "GET",
        "POST",
        "HEAD",
        "PUT",
        "DELETE",
        "OPTIONS",
        "PATCH",
        "CONNECT",
        "TRACE",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "SEARCH",
    ];
    match COMMON.iter().find(|c| **c == m) {
        Some(c) => Text::Static(c),
        None => text(m.as_bytes(), max),
    }
}

/// Header values that repeat from message to message (hosts, user agents, content types,
/// servers, reason phrases) shared instead of allocated again: one hash lookup replaces an
/// allocation per field and record. Bounded: the set is emptied when it reaches its size.
pub struct Interner {
    set: hashbrown::HashTable<Arc<str>>,
    hasher: foldhash::fast::FixedState,
    max_entries: usize,
}

/// Values longer than this are not interned (URIs, cookies, long tokens seldom repeat).
const INTERN_MAX_LEN: usize = 256;

impl Interner {
    /// An interner holding at most `max_entries` values.
    pub fn new(max_entries: usize) -> Self {
        Interner {
            set: hashbrown::HashTable::new(),
            hasher: foldhash::fast::FixedState::with_seed(0x6e73_7063),
            max_entries: max_entries.max(1),
        }
    }

    /// [`text`], shared with earlier equal values.
    pub fn text(&mut self, b: &[u8], max: usize) -> Text {
        let b = &b[..b.len().min(max)];
        let Ok(s) = std::str::from_utf8(b) else {
            return text(b, max);
        };
        if s.len() > INTERN_MAX_LEN {
            return Text::from(s);
        }
        let h = self.hasher.hash_one(s);
        if let Some(a) = self.set.find(h, |a| &**a == s) {
            return Text::Shared(a.clone());
        }
        if self.set.len() >= self.max_entries {
            self.set.clear();
        }
        let a: Arc<str> = Arc::from(s);
        let hasher = &self.hasher;
        self.set
            .insert_unique(h, a.clone(), |x| hasher.hash_one(&**x));
        Text::Shared(a)
    }

    /// Values held.
    pub fn len(&self) -> usize {
        self.set.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }
}

/// [`cap`] as a [`Text`].
pub fn text(b: &[u8], max: usize) -> Text {
    let b = &b[..b.len().min(max)];
    match std::str::from_utf8(b) {
        Ok(s) => Text::from(s),
        Err(_) => Text::from(cap(b, max)),
    }
}

/// Lossy UTF-8 of at most `max` bytes (cut on a character boundary).
pub fn cap(b: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(max)]);
    let mut s = s.into_owned();
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

fn fill_headers(
    m: &mut Message,
    hs: &[httparse::Header<'_>],
    opts: &ExtractOptions,
    intern: &mut Interner,
) {
    let mut extra: Option<BTreeMap<String, String>> = match opts.extra {
        HeaderSelect::None => None,
        _ => Some(BTreeMap::new()),
    };
    // Framing is decided on the raw value: the output cap applies to what is recorded, never
    // to what the parser needs (a capped "chun" would lose every chunked body after it).
    let mut chunked = false;
    for h in hs {
        let name = h.name;
        let v = h.value;
        if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = v
                .rsplit(|&b| b == b',')
                .next()
                .is_some_and(|last| trim(last).eq_ignore_ascii_case(b"chunked"));
        }
        if name.eq_ignore_ascii_case("referer") {
            // Referers rarely repeat: not worth interning.
            if m.referer.is_none() {
                m.referer = Some(text(trim(v), opts.max_value));
            }
        }
        let slot = if name.eq_ignore_ascii_case("host") {
            Some(&mut m.host)
        } else if name.eq_ignore_ascii_case("user-agent") {
            Some(&mut m.user_agent)
        } else if name.eq_ignore_ascii_case("pragma") {
            Some(&mut m.pragma)
        } else if name.eq_ignore_ascii_case("connection") {
            Some(&mut m.connection)
        } else if name.eq_ignore_ascii_case("content-type") {
            Some(&mut m.content_type)
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            Some(&mut m.transfer_encoding)
        } else if name.eq_ignore_ascii_case("server") {
            Some(&mut m.server)
        } else if name.eq_ignore_ascii_case("content-encoding") {
            Some(&mut m.content_encoding)
        } else if name.eq_ignore_ascii_case("cache-control") {
            Some(&mut m.cache_control)
        } else {
            if name.eq_ignore_ascii_case("content-length") {
                // Repeated or list-valued lengths must agree (RFC 9112 6.3); otherwise unusable.
                let parsed = std::str::from_utf8(v).ok().and_then(|s| {
                    let mut it = s.split(',').map(|p| p.trim().parse::<u64>().ok());
                    let first = it.next()??;
                    it.all(|x| x == Some(first)).then_some(first)
                });
                m.content_length = match (m.content_length, parsed) {
                    (None, p) => p,
                    (Some(a), Some(b)) if a == b => Some(a),
                    _ => None,
                };
            }
            None
        };
        if let Some(slot) = slot {
            // The first occurrence wins (as tshark shows it).
            if slot.is_none() {
                *slot = Some(intern.text(trim(v), opts.max_value));
            }
        }
        if let Some(map) = extra.as_mut() {
            let keep = match &opts.extra {
                HeaderSelect::All => true,
                HeaderSelect::List(l) => l.iter().any(|n| n.eq_ignore_ascii_case(name)),
                HeaderSelect::None => false,
            };
            if keep {
                let key = cap(name.as_bytes(), opts.max_name).to_ascii_lowercase();
                let val = if opts.redact.iter().any(|r| r.eq_ignore_ascii_case(name)) {
                    format!("<redacted {} bytes>", v.len())
                } else {
                    cap(trim(v), opts.max_value)
                };
                map.entry(key)
                    .and_modify(|e: &mut String| {
                        if e.len() < opts.max_value {
                            e.push_str(", ");
                            e.push_str(&val);
                            let c = cap(e.as_bytes(), opts.max_value);
                            *e = c;
                        }
                    })
                    .or_insert(val);
            }
        }
    }
    m.headers = extra;
    m.framing = if chunked {
        Some(FramingHint::Chunked)
    } else {
        m.content_length.map(FramingHint::Length)
    };
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |e| e + 1);
    &v[s..e.max(s)]
}

/// Best-effort fields from a header block that could not be completed: every complete line is
/// parsed; when not even the first line is complete, the method and target (or version and
/// status) are read from what is there.
pub fn parse_partial(buf: &[u8], request: bool, opts: &ExtractOptions) -> Option<Message> {
    if let Some(last_nl) = buf.iter().rposition(|&b| b == b'\n') {
        let mut tmp = Vec::with_capacity(last_nl + 3);
        tmp.extend_from_slice(&buf[..=last_nl]);
        tmp.extend_from_slice(b"\r\n");
        if let Parsed::Complete(_, m) = parse(&tmp, request, opts, &mut Interner::new(16)) {
            return Some(*m);
        }
    }
    let line_end = buf.iter().position(|&b| b == b'\n').unwrap_or(buf.len());
    let line = &buf[..line_end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let a = parts.next().filter(|a| !a.is_empty())?;
    let b = parts.next();
    let mut m = Message {
        is_request: request,
        ..Message::default()
    };
    if request {
        if !a
            .iter()
            .all(|c| c.is_ascii_uppercase() || *c == b'-' || *c == b'_')
        {
            return None;
        }
        m.method = Some(text(a, opts.max_value));
        m.uri = b.filter(|b| !b.is_empty()).map(|b| text(b, opts.max_value));
    } else {
        m.version = match a {
            b"HTTP/1.0" => Some(Text::Static("HTTP/1.0")),
            b"HTTP/1.1" => Some(Text::Static("HTTP/1.1")),
            _ => None,
        };
        m.status = b
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.parse().ok());
    }
    Some(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> ExtractOptions {
        ExtractOptions::default()
    }

    #[test]
    fn request_fields() {
        let b = b"POST /x?y=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8\r\nContent-Length: 5\r\nCookie: secret\r\n\r\nhello";
        match parse(b, true, &opts(), &mut Interner::new(16)) {
            Parsed::Complete(n, m) => {
                assert_eq!(n, b.len() - 5);
                assert_eq!(m.method.as_deref(), Some("POST"));
                assert_eq!(m.uri.as_deref(), Some("/x?y=1"));
                assert_eq!(m.host.as_deref(), Some("example.com"));
                assert_eq!(m.version.as_deref(), Some("HTTP/1.1"));
                assert_eq!(m.framing, Some(FramingHint::Length(5)));
                assert!(m.headers.is_none());
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn extra_headers_redacted_and_capped() {
        let o = ExtractOptions {
            extra: HeaderSelect::All,
            max_value: 8,
            ..opts()
        };
        let b = b"GET / HTTP/1.1\r\nCookie: abcdef\r\nX-Long: 0123456789abc\r\nX-A: 1\r\nX-a: 2\r\n\r\n";
        let Parsed::Complete(_, m) = parse(b, true, &o, &mut Interner::new(16)) else {
            panic!()
        };
        let h = m.headers.unwrap();
        assert_eq!(h["cookie"], "<redacted 6 bytes>");
        assert_eq!(h["x-long"], "01234567");
        assert_eq!(h["x-a"], "1, 2");
    }

    #[test]
    fn chunked_wins_over_length() {
        let b =
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
        let Parsed::Complete(_, m) = parse(b, false, &opts(), &mut Interner::new(16)) else {
            panic!()
        };
        assert_eq!(m.framing, Some(FramingHint::Chunked));
        assert_eq!(m.status, Some(200));
        assert_eq!(m.reason.as_deref(), Some("OK"));
    }

    #[test]
    fn bad_lines() {
        let b = b"GET / HTTP/1.1\r\nno colon here\r\nHost: a\r\n\r\n";
        let Parsed::Complete(_, m) = parse(b, true, &opts(), &mut Interner::new(16)) else {
            panic!()
        };
        assert_eq!(m.host.as_deref(), Some("a"));
        assert_eq!(m.bad_line, Some(Malformed::BadHeaderLine));
        let nul = parse(
            b"GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n",
            true,
            &opts(),
            &mut Interner::new(16),
        );
        assert!(
            matches!(nul, Parsed::Invalid(Malformed::BadHeaderValue)),
            "{nul:?}"
        );
        assert!(matches!(
            parse(
                b"GET /\x01 HTTP/1.1\r\n\r\n",
                true,
                &opts(),
                &mut Interner::new(16)
            ),
            Parsed::Invalid(Malformed::BadRequestLine)
        ));
        let many: Vec<u8> = b"GET / HTTP/1.1\r\n"
            .iter()
            .copied()
            .chain((0..200).flat_map(|i| format!("X-{i}: v\r\n").into_bytes()))
            .chain(*b"\r\n")
            .collect();
        assert!(matches!(
            parse(&many, true, &opts(), &mut Interner::new(16)),
            Parsed::Invalid(Malformed::TooManyHeaders)
        ));
        assert!(matches!(
            parse(
                b"GET / HTTP/1.1\r\nHost: a\r\n",
                true,
                &opts(),
                &mut Interner::new(16)
            ),
            Parsed::Partial
        ));
    }

    #[test]
    fn partial_blocks() {
        let m = parse_partial(b"GET /abc HTTP/1.1\r\nHost: h\r\nUser-Ag", true, &opts()).unwrap();
        assert_eq!(
            (m.method.as_deref(), m.uri.as_deref(), m.host.as_deref()),
            (Some("GET"), Some("/abc"), Some("h"))
        );
        let m = parse_partial(b"GET /ab", true, &opts()).unwrap();
        assert_eq!(
            (m.method.as_deref(), m.uri.as_deref()),
            (Some("GET"), Some("/ab"))
        );
        let m = parse_partial(b"HTTP/1.1 404 Not", false, &opts()).unwrap();
        assert_eq!(m.status, Some(404));
        assert!(parse_partial(b"\x00\x01", true, &opts()).is_none());
    }

    #[test]
    fn interner_shares_equal_values_and_stays_bounded() {
        let mut i = Interner::new(3);
        let (a, b) = (i.text(b"keep-alive", 2048), i.text(b"keep-alive", 2048));
        match (&a, &b) {
            (Text::Shared(x), Text::Shared(y)) => assert!(Arc::ptr_eq(x, y)),
            _ => panic!("shared texts expected"),
        }
        assert_eq!(&*a, "keep-alive");
        for v in ["a", "b", "c", "d", "e"] {
            assert_eq!(&*i.text(v.as_bytes(), 2048), v);
            assert!(i.len() <= 3);
        }
        // Capped like `text`, and invalid UTF-8 is made lossy, not interned raw.
        assert_eq!(&*i.text(b"abcdef", 3), "abc");
        assert_eq!(&*i.text(b"a\xffb", 2048), &*text(b"a\xffb", 2048));
        let long = vec![b'x'; 300];
        assert_eq!(i.text(&long, 2048).len(), 300);
    }
}

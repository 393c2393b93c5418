//! Cheap first-bytes test: does a TCP payload start an HTTP/1.x request or response?
//!
//! Runs on every payload that is not already inside a tracked message, so it rejects most
//! non-HTTP bytes (TLS records, binary bodies) by looking at the first byte or two.

/// What the start of a payload looks like.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Start {
    /// A request line (`METHOD target HTTP/1.x`), complete or cut by the end of the payload
    /// after a well-known method.
    Request,
    /// Possibly a request: an extension method (WebDAV etc.) whose request line is cut by the
    /// end of the payload. Confirmed or dropped (without counting it as malformed) once the
    /// line is complete.
    MaybeRequest,
    /// A status line (`HTTP/1.x NNN`), complete or cut by the end of the payload.
    Response,
    /// Neither.
    None,
}

/// Methods accepted even when the request line is cut by the end of the segment (the line is
/// then completed from the next segment). Other tokens (WebDAV and extensions) need a complete
/// request line ending in `HTTP/1.x` to be taken as a request.
const KNOWN: &[&[u8]] = &[
    b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS", b"CONNECT", b"TRACE",
];

/// Longest method token considered (WebDAV's `VERSION-CONTROL` has 15 bytes).
const MAX_TOKEN: usize = 24;
/// How far the end of a request line is searched for.
const MAX_LINE: usize = 8192;

/// Classifies the start of `p`.
#[inline]
pub fn classify(p: &[u8]) -> Start {
    match p.first() {
        Some(b'H') if is_status_start(p) => Start::Response,
        Some(b'A'..=b'Z') => request_start(p),
        _ => Start::None,
    }
}

/// `HTTP/1.x NNN` (or a prefix of it when the payload is shorter).
#[inline]
fn is_status_start(p: &[u8]) -> bool {
    const PREFIX: &[u8] = b"HTTP/1.";
    if p.len() < 12 {
        // A segment this short can only be a status line cut very early; accept a prefix.
        let n = p.len().min(PREFIX.len());
        return p[..n] == PREFIX[..n] && (p.len() <= 7 || p[7].is_ascii_digit());
    }
    p.starts_with(PREFIX)
        && p[7].is_ascii_digit()
        && p[8] == b' '
        && p[9..12].iter().all(u8::is_ascii_digit)
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_uppercase() || b == b'-' || b == b'_'
}

#[inline]
fn request_start(p: &[u8]) -> Start {
    let tok_len = p
        .iter()
        .take(MAX_TOKEN + 1)
        .position(|&b| !is_token_byte(b))
        .unwrap_or(p.len().min(MAX_TOKEN + 1));
    if tok_len == 0 || tok_len > MAX_TOKEN {
        return Start::None;
    }
    let tok = &p[..tok_len];
    if tok_len == p.len() {
        // The segment ends inside the token.
        return if KNOWN.iter().any(|m| m.starts_with(tok)) {
            Start::Request
        } else {
            Start::MaybeRequest
        };
    }
    if p[tok_len] != b' ' {
        return Start::None;
    }
    if KNOWN.contains(&tok) {
        // A well-known method and a space: let the parser judge the rest (garbage after a
        // method name is then counted as a malformed request line).
        return Start::Request;
    }
    let rest = &p[tok_len + 1..p.len().min(MAX_LINE)];
    // Other tokens (WebDAV, extensions) need the whole request line, ending in `HTTP/1.x`.
    match rest.iter().position(|&b| b == b'\n') {
        Some(eol) => {
            let line = &rest[..eol];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() >= 10 && line[line.len() - 9..line.len() - 1] == *b" HTTP/1." {
                Start::Request
            } else {
                Start::None
            }
        }
        // The line continues in a later segment: a target, maybe followed by the start of
        // ` HTTP/1.x`.
        None => {
            let (target, tail) = match rest.iter().position(|&b| b == b' ') {
                Some(sp) => (&rest[..sp], &rest[sp + 1..]),
                None => (rest, &b""[..]),
            };
            const V: &[u8] = b"HTTP/1.";
            let tail_ok = tail.len() <= V.len() && V.starts_with(tail)
                || tail.len() == V.len() + 1 && tail.starts_with(V);
            if target.iter().all(|&b| b > 0x20 && b != 0x7f) && tail_ok {
                Start::MaybeRequest
            } else {
                Start::None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_responses() {
        assert_eq!(
            classify(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Start::Request
        );
        assert_eq!(classify(b"PROPFIND /x HTTP/1.1\r\n\r\n"), Start::Request);
        assert_eq!(classify(b"VERSION-CONTROL /x HTTP/1.0\n\n"), Start::Request);
        assert_eq!(classify(b"GET /very/long/pa"), Start::Request);
        assert_eq!(classify(b"GE"), Start::Request);
        assert_eq!(classify(b"PROPFIND /x"), Start::MaybeRequest);
        assert_eq!(classify(b"PROPFI"), Start::MaybeRequest);
        assert_eq!(classify(b"PROPFIND /x y"), Start::None);
        assert_eq!(classify(b"PROPFIND /logout HTT"), Start::MaybeRequest);
        assert_eq!(classify(b"PROPFIND /logout HTTP/1.1"), Start::MaybeRequest);
        assert_eq!(classify(b"GET"), Start::Request);
        assert_eq!(classify(b"HTTP/1.1 200 OK\r\n"), Start::Response);
        assert_eq!(classify(b"HTTP/1.0 404 Not Found\r\n"), Start::Response);
        assert_eq!(classify(b"HTTP/1."), Start::Response);
    }

    #[test]
    fn rejects_non_http() {
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Start::None);
        assert_eq!(classify(b"FOO bar baz\r\n"), Start::None);
        assert_eq!(classify(b"HELLO world\r\n"), Start::None);
        assert_eq!(classify(b"HELLO world"), Start::MaybeRequest);
        assert_eq!(classify(b"HTTP/2.0 200 OK\r\n"), Start::None);
        assert_eq!(classify(b"GET\x00\x01\x02"), Start::None);
        assert_eq!(classify(b"XYZ\r\n"), Start::None);
        assert_eq!(classify(b"SSH-2.0-OpenSSH\r\n"), Start::None);
        assert_eq!(classify(b""), Start::None);
    }
}

use super::*;
use proptest::prelude::*;
use std::net::IpAddr;

const CLIENT: [u8; 4] = [10, 0, 0, 1];
const SERVER: [u8; 4] = [10, 0, 0, 2];

/// Drives an analyzer with hand-made segments of one connection.
struct Conv {
    a: HttpAnalyzer,
    key: FlowKey,
    seq: [u32; 2],
    t: i64,
}

impl Conv {
    fn new(cfg: HttpConfig) -> Self {
        Conv {
            a: HttpAnalyzer::new(cfg),
            key: FlowKey {
                src: IpAddr::from(CLIENT),
                dst: IpAddr::from(SERVER),
                src_port: 40000,
                dst_port: 8080,
                proto: 6,
                vlan: None,
            },
            seq: [1000, 5000],
            t: 1_000_000_000,
        }
    }
    fn key(&self, from_server: bool) -> FlowKey {
        if from_server {
            self.key.reversed()
        } else {
            self.key
        }
    }
    /// Sends bytes from the client (`false`) or server (`true`), returns the segment's seq.
    fn send(&mut self, from_server: bool, b: &[u8]) -> u32 {
        let d = from_server as usize;
        let s = self.seq[d];
        self.seq[d] = s.wrapping_add(b.len() as u32);
        self.t += 1_000_000;
        let k = self.key(from_server);
        self.a.on_segment(
            Timestamp(self.t),
            &k,
            s,
            TcpFlags(TcpFlags::ACK),
            b,
            b.len(),
        );
        s
    }
    fn resend(&mut self, from_server: bool, seq: u32, b: &[u8]) {
        self.t += 1_000_000;
        let k = self.key(from_server);
        self.a.on_segment(
            Timestamp(self.t),
            &k,
            seq,
            TcpFlags(TcpFlags::ACK),
            b,
            b.len(),
        );
    }
    fn flags(&mut self, from_server: bool, f: u8) {
        self.t += 1_000_000;
        let k = self.key(from_server);
        let s = self.seq[from_server as usize];
        self.a
            .on_segment(Timestamp(self.t), &k, s, TcpFlags(f), &[], 0);
    }
    fn done(mut self) -> (Vec<HttpRecord>, Stats) {
        self.a.finish();
        let mut v = Vec::new();
        self.a.take_records(&mut v);
        (v, self.a.stats())
    }
}

const REQ: &[u8] =
    b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";

#[test]
fn request_response_pair() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, REQ);
    c.send(true, RESP);
    let (r, s) = c.done();
    assert_eq!(r.len(), 2);
    assert_eq!(r[0].kind, Kind::Request);
    assert_eq!(r[0].method.as_deref(), Some("GET"));
    assert_eq!(r[0].host.as_deref(), Some("example.com"));
    assert_eq!(r[0].src_ip.to_string(), "10.0.0.1");
    assert_eq!(r[0].dst_port, 8080);
    assert!(r[0].ua_device.is_some());
    assert_eq!(r[1].kind, Kind::Response);
    assert_eq!(r[1].status, Some(200));
    assert_eq!(r[1].uri.as_deref(), Some("/index.html"));
    assert_eq!(r[1].src_ip.to_string(), "10.0.0.2");
    assert_eq!(r[1].latency_us, Some(1000));
    assert_eq!(r[1].server.as_deref(), Some("nginx"));
    assert_eq!(r[1].resp_content_length, Some(5));
    assert_eq!(r[0].community_id, r[1].community_id);
    assert_eq!(
        (s.requests, s.responses, s.paired, s.unanswered),
        (1, 1, 1, 0)
    );
    assert_eq!(s.malformed_total(), 0);
}

/// The output cap applies to what is recorded, not to what the parser reads: with values cut to
/// 5 bytes, a chunked response (whose body looks like a response) and a HEAD/CONNECT exchange
/// are still framed right, and every message after them is found.
#[test]
fn value_cap_does_not_break_framing() {
    let mut c = Conv::new(HttpConfig {
        extract: ExtractOptions {
            max_value: 5,
            ..ExtractOptions::default()
        },
        ..HttpConfig::default()
    });
    c.send(false, b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n");
    c.send(
        true,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n17\r\nHTTP/1.1 404 Not Found\r\n\r\n0\r\n\r\n",
    );
    c.send(false, b"HEAD /b HTTP/1.1\r\nHost: example.com\r\n\r\n");
    c.send(true, b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n");
    c.send(false, b"GET /c HTTP/1.1\r\nHost: example.com\r\n\r\n");
    c.send(true, b"HTTP/1.1 204 No Content\r\n\r\n");
    let (r, s) = c.done();
    let statuses: Vec<Option<u16>> = r
        .iter()
        .filter(|r| r.kind == Kind::Response)
        .map(|r| r.status)
        .collect();
    assert_eq!(statuses, [Some(200), Some(200), Some(204)]);
    assert_eq!((s.requests, s.responses, s.paired), (3, 3, 3));
    // Recorded values are cut to the cap.
    assert_eq!(r[0].host.as_deref(), Some("examp"));
    assert_eq!(
        r.iter()
            .find(|r| r.kind == Kind::Response)
            .unwrap()
            .transfer_encoding
            .as_deref(),
        Some("chunk")
    );
}

#[test]
fn paired_mode_and_unanswered() {
    let mut c = Conv::new(HttpConfig {
        paired: true,
        ..HttpConfig::default()
    });
    c.send(false, REQ);
    c.send(true, RESP);
    c.send(false, b"DELETE /x HTTP/1.1\r\nHost: h\r\n\r\n");
    let (r, s) = c.done();
    assert_eq!(r.len(), 2);
    assert!(r
        .iter()
        .all(|x| x.kind == Kind::Transaction && x.src_ip.to_string() == "10.0.0.1"));
    assert_eq!(r[0].status, Some(200));
    assert_eq!(r[0].user_agent.as_deref(), Some("curl/8.5.0"));
    assert_eq!(r[1].method.as_deref(), Some("DELETE"));
    assert_eq!(r[1].status, None);
    assert_eq!(s.unanswered, 1);
}

#[test]
fn split_header_and_duplicates_and_retransmission() {
    let mut c = Conv::new(HttpConfig::default());
    let (a, b) = REQ.split_at(20);
    let s1 = c.send(false, a);
    c.resend(false, s1, a); // duplicate frame
    let s2 = c.send(false, b);
    c.resend(false, s2, b);
    c.resend(false, s1, REQ); // retransmission covering both
    let r1 = c.send(true, RESP);
    c.resend(true, r1, RESP);
    let (r, s) = c.done();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!(r[0].uri.as_deref(), Some("/index.html"));
    assert!(!r[0].partial);
    assert_eq!(s.retransmissions, 4);
}

#[test]
fn body_that_looks_like_a_request_is_skipped() {
    let mut c = Conv::new(HttpConfig::default());
    let body = b"GET /not-a-request HTTP/1.1\r\n\r\n";
    let mut req = format!(
        "POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    c.send(false, &req);
    c.send(false, REQ); // pipelined
    let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1f\r\nHTTP/1.1 500 Fake Response!!!\r\n\r\n0\r\n\r\n";
    c.send(true, chunked);
    c.send(true, RESP);
    let (r, s) = c.done();
    let methods: Vec<_> = r
        .iter()
        .filter_map(|x| x.method.clone().filter(|_| x.kind == Kind::Request))
        .collect();
    assert_eq!(methods, ["POST", "GET"]);
    let resp: Vec<_> = r
        .iter()
        .filter(|x| x.kind == Kind::Response)
        .map(|x| (x.status, x.uri.clone()))
        .collect();
    assert_eq!(
        resp,
        [
            (Some(200), Some("/upload".into())),
            (Some(200), Some("/index.html".into()))
        ]
    );
    assert_eq!(s.malformed_total(), 0);
}

#[test]
fn head_and_304_have_no_body() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(
        false,
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\n\r\n",
    );
    c.send(true, b"HTTP/1.1 200 OK\r\nContent-Length: 999\r\n\r\n");
    c.send(
        true,
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 999\r\n\r\n",
    );
    let (r, s) = c.done();
    assert_eq!(s.requests, 2);
    assert_eq!(s.responses, 2);
    assert_eq!(s.paired, 2);
    assert_eq!(r[3].uri.as_deref(), Some("/2"));
}

#[test]
fn lost_segment_in_header_gives_partial() {
    let mut c = Conv::new(HttpConfig::default());
    let (a, b) = REQ.split_at(30);
    c.send(false, a);
    c.seq[0] = c.seq[0].wrapping_add(b.len() as u32); // lost
    c.send(false, b"GET /next HTTP/1.1\r\nHost: h\r\n\r\n");
    let (r, s) = c.done();
    assert_eq!(r.len(), 2);
    assert!(r[0].partial);
    assert_eq!(r[0].method.as_deref(), Some("GET"));
    assert_eq!(r[1].uri.as_deref(), Some("/next"));
    assert_eq!(s.gaps, 1);
    assert_eq!(s.partial, 1);
}

#[test]
fn fin_in_header_gives_partial_and_closes() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, b"GET /x HTTP/1.1\r\nHost: h");
    c.flags(false, TcpFlags::FIN | TcpFlags::ACK);
    c.flags(true, TcpFlags::FIN | TcpFlags::ACK);
    assert_eq!(c.a.connections(), 1);
    let (r, s) = c.done();
    assert_eq!(r.len(), 1);
    assert!(r[0].partial);
    assert_eq!(r[0].host.as_deref(), None); // the Host line was not complete
    assert_eq!(s.unanswered, 1);
}

#[test]
fn oversized_header_is_partial_and_bounded() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, b"GET /big HTTP/1.1\r\nHost: h\r\nX-Big: ");
    let chunk = vec![b'a'; 1400];
    for _ in 0..750 {
        c.send(false, &chunk); // ~1 MB header value
    }
    c.send(false, b"\r\n\r\n");
    c.send(false, REQ);
    let (r, s) = c.done();
    assert_eq!(r.len(), 2, "{r:?}");
    assert!(r[0].partial);
    assert_eq!(r[0].host.as_deref(), Some("h"));
    assert_eq!(s.malformed.get(&Malformed::HeaderTooLarge), Some(&1));
    assert_eq!(r[1].uri.as_deref(), Some("/index.html"));
}

#[test]
fn garbage_is_counted() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, b"GET \x00\x01\x02\x03\xff\xfe garbage");
    c.send(false, b"more garbage");
    c.send(false, REQ);
    let mut endless = b"GET /e HTTP/1.1\r\n".to_vec();
    for i in 0..1000 {
        endless.extend_from_slice(format!("X-{i}: v\r\n").as_bytes());
    }
    c.send(false, &endless);
    let (r, s) = c.done();
    assert_eq!(r.iter().filter(|x| !x.partial).count(), 1);
    assert!(s.malformed_total() >= 2, "{:?}", s.malformed);
}

#[test]
fn eviction_keeps_table_bounded() {
    let mut a = HttpAnalyzer::new(HttpConfig {
        max_connections: 8,
        ..HttpConfig::default()
    });
    for i in 0..100u16 {
        let k = FlowKey {
            src: IpAddr::from(CLIENT),
            dst: IpAddr::from(SERVER),
            src_port: 1000 + i,
            dst_port: 80,
            proto: 6,
            vlan: None,
        };
        a.on_segment(
            Timestamp(i as i64),
            &k,
            1,
            TcpFlags(TcpFlags::ACK),
            REQ,
            REQ.len(),
        );
        assert!(a.connections() <= 8);
    }
    a.finish();
    let s = a.stats();
    assert_eq!(s.requests, 100);
    assert_eq!(s.evicted, 92);
    assert_eq!(s.unanswered, 100);
    assert_eq!(a.connections(), 0);
}

#[test]
fn idle_timeout_flushes() {
    let mut c = Conv::new(HttpConfig {
        paired: true,
        idle_timeout_ns: 10_000_000_000,
        ..HttpConfig::default()
    });
    c.send(false, REQ);
    c.a.expire(Timestamp(c.t + 5_000_000_000));
    assert_eq!(c.a.connections(), 1);
    c.a.expire(Timestamp(c.t + 11_000_000_000));
    assert_eq!(c.a.connections(), 0);
    assert_eq!(c.a.records().len(), 1);
    assert_eq!(c.a.stats().timed_out, 1);
}

#[test]
fn interim_and_upgrade() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(
        false,
        b"POST /p HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n",
    );
    c.send(true, b"HTTP/1.1 100 Continue\r\n\r\n");
    c.send(false, b"hi");
    c.send(true, b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n");
    c.send(
        false,
        b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\r\n",
    );
    c.send(true, b"HTTP/1.1 101 Switching Protocols\r\n\r\n");
    c.send(false, b"GET /inside-websocket HTTP/1.1\r\n\r\n");
    let (r, s) = c.done();
    assert_eq!(s.requests, 2);
    assert_eq!(s.responses, 3);
    assert_eq!(s.paired, 2);
    assert_eq!(s.tunnels, 1);
    assert_eq!(
        r.iter().filter(|x| x.uri.as_deref() == Some("/p")).count(),
        3
    );
}

impl Conv {
    /// Sends a segment with the SYN flag (and ACK for the server's SYN-ACK) carrying `b`;
    /// the SYN takes one sequence number before the data.
    fn syn(&mut self, from_server: bool, b: &[u8]) -> u32 {
        let d = from_server as usize;
        let s = self.seq[d];
        self.seq[d] = s.wrapping_add(1 + b.len() as u32);
        self.t += 1_000_000;
        let k = self.key(from_server);
        let f = TcpFlags::SYN | if from_server { TcpFlags::ACK } else { 0 };
        self.a
            .on_segment(Timestamp(self.t), &k, s, TcpFlags(f), b, b.len());
        s
    }
}

#[test]
fn fast_open_data_on_syn_and_syn_ack_is_stream_data() {
    let mut c = Conv::new(HttpConfig::default());
    let syn = c.syn(false, REQ);
    c.syn(true, b"HTTP/1.1 204 No Content\r\n\r\n");
    // The SYN retransmitted with the same data is a duplicate, not a second request.
    c.t += 1_000_000;
    let k = c.key(false);
    c.a.on_segment(
        Timestamp(c.t),
        &k,
        syn,
        TcpFlags(TcpFlags::SYN),
        REQ,
        REQ.len(),
    );
    c.send(false, b"GET /second HTTP/1.1\r\nHost: example.com\r\n\r\n");
    c.send(true, RESP);
    let (r, s) = c.done();
    let lines: Vec<_> = r
        .iter()
        .map(|x| (x.kind, x.method.as_deref(), x.uri.as_deref(), x.status))
        .collect();
    assert_eq!(
        lines,
        [
            (Kind::Request, Some("GET"), Some("/index.html"), None),
            (Kind::Response, Some("GET"), Some("/index.html"), Some(204)),
            (Kind::Request, Some("GET"), Some("/second"), None),
            (Kind::Response, Some("GET"), Some("/second"), Some(200)),
        ]
    );
    assert_eq!((s.malformed_total(), s.retransmissions), (0, 1));
}

#[test]
fn lenient_request_lines_are_recorded_and_marked() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, b"GET /a b/c d HTTP/1.1\r\nHost: x\r\n\r\n");
    c.send(true, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
    c.send(false, b"GET /noversion\r\nHost: y\r\n\r\n");
    c.send(true, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    c.send(false, REQ);
    let (r, s) = c.done();
    let reqs: Vec<_> = r
        .iter()
        .filter(|x| x.kind == Kind::Request)
        .map(|x| {
            (
                x.uri.as_deref(),
                x.host.as_deref(),
                x.version.as_deref(),
                x.lenient,
            )
        })
        .collect();
    assert_eq!(
        reqs,
        [
            (
                Some("/a b/c d"),
                Some("x"),
                Some("HTTP/1.1"),
                Some(Lenient::SpaceInUri)
            ),
            (
                Some("/noversion"),
                Some("y"),
                None,
                Some(Lenient::NoVersion)
            ),
            (
                Some("/index.html"),
                Some("example.com"),
                Some("HTTP/1.1"),
                None
            ),
        ]
    );
    assert_eq!((s.paired, s.malformed_total()), (2, 0));
    // Absent from a strictly parsed record's JSON, present in a lenient one's.
    let json = |x: &HttpRecord| serde_json::to_string(x).unwrap();
    assert!(!json(&r[4]).contains("lenient"));
    assert!(
        json(&r[0]).ends_with(r#","lenient":"space_in_uri"}"#),
        "{}",
        json(&r[0])
    );
}

#[test]
fn lenient_parsing_still_refuses_garbage() {
    for bad in [
        &b"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
        b"GET \r\nHost: x\r\n\r\n",
        b"GET /x\r\nthis is no header\r\n\r\n",
    ] {
        let mut c = Conv::new(HttpConfig::default());
        c.send(false, bad);
        let (r, s) = c.done();
        assert!(r.iter().all(|x| x.lenient.is_none() || x.partial), "{r:?}");
        assert!(
            s.malformed_total() >= 1 || r.iter().all(|x| x.partial),
            "{bad:?}"
        );
    }
}

#[test]
fn http09_request_then_body_to_the_close() {
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, b"GET /old.html\r\n");
    c.send(true, b"<html>GET / HTTP/1.1 is not a request here</html>");
    c.flags(true, TcpFlags::FIN | TcpFlags::ACK);
    c.flags(false, TcpFlags::FIN | TcpFlags::ACK);
    // And one the client ended itself, with no answer.
    let mut c2 = Conv::new(HttpConfig::default());
    c2.send(false, b"GET /alone\r\n");
    c2.flags(false, TcpFlags::FIN | TcpFlags::ACK);
    for (c, uri) in [(c, "/old.html"), (c2, "/alone")] {
        let (r, s) = c.done();
        assert_eq!(r.len(), 1, "{r:?}");
        assert_eq!(r[0].uri.as_deref(), Some(uri));
        assert_eq!(
            (r[0].lenient, r[0].partial),
            (Some(Lenient::NoVersion), false)
        );
        assert_eq!((s.requests, s.responses, s.malformed_total()), (1, 0, 0));
    }
}

#[test]
fn connect_tunnel_with_plain_http_is_parsed_and_tls_is_not() {
    let connect = b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n";
    let ok = b"HTTP/1.1 200 Connection established\r\n\r\n";
    let mut c = Conv::new(HttpConfig::default());
    c.send(false, connect);
    c.send(true, ok);
    c.send(false, b"GET /inner HTTP/1.1\r\nHost: example.com\r\n\r\n");
    c.send(true, RESP);
    let (r, s) = c.done();
    let got: Vec<_> = r.iter().map(|x| (x.method.as_deref(), x.status)).collect();
    assert_eq!(
        got,
        [
            (Some("CONNECT"), None),
            (Some("CONNECT"), Some(200)),
            (Some("GET"), None),
            (Some("GET"), Some(200))
        ]
    );
    assert_eq!((s.tunnels, s.malformed_total()), (1, 0));

    let mut c = Conv::new(HttpConfig::default());
    c.send(false, connect);
    c.send(true, ok);
    c.send(false, b"\x16\x03\x01\x00\x05hello");
    c.send(false, b"GET /looks-like-http HTTP/1.1\r\n\r\n");
    c.send(true, b"HTTP/1.1 200 OK\r\n\r\n");
    let (r, s) = c.done();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((s.tunnels, s.malformed_total()), (1, 0));
}

#[test]
fn pipelining_in_one_segment() {
    let mut c = Conv::new(HttpConfig::default());
    let mut reqs = Vec::new();
    for i in 0..5 {
        reqs.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").as_bytes());
    }
    c.send(false, &reqs);
    let mut resps = Vec::new();
    for i in 0..5 {
        resps.extend_from_slice(
            format!("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{i}{i}").as_bytes(),
        );
    }
    c.send(true, &resps);
    let (r, _) = c.done();
    let uris: Vec<_> = r
        .iter()
        .filter(|x| x.kind == Kind::Response)
        .map(|x| x.uri.clone().unwrap())
        .collect();
    assert_eq!(uris, ["/0", "/1", "/2", "/3", "/4"]);
}

proptest! {
    /// Any segmentation of a conversation (plus random duplicates) gives the same records.
    #[test]
    fn segmentation_and_duplicates_do_not_change_records(
        cuts_c in proptest::collection::vec(1usize..60, 1..20),
        cuts_s in proptest::collection::vec(1usize..60, 1..20),
        dups in proptest::collection::vec(any::<bool>(), 40),
    ) {
        let mut client = Vec::new();
        let mut server = Vec::new();
        for i in 0..3 {
            client.extend_from_slice(format!("POST /{i} HTTP/1.1\r\nHost: h{i}\r\nContent-Length: 4\r\n\r\nGET ").as_bytes());
            server.extend_from_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nGET \r\n0\r\n\r\n");
        }
        let reference = {
            let mut c = Conv::new(HttpConfig::default());
            c.send(false, &client);
            c.send(true, &server);
            c.done().0
        };
        let mut c = Conv::new(HttpConfig::default());
        let mut k = 0;
        for (data, cuts, from_server) in [(&client, &cuts_c, false), (&server, &cuts_s, true)] {
            let mut at = 0;
            let mut i = 0;
            while at < data.len() {
                let n = cuts[i % cuts.len()].min(data.len() - at);
                let seg = &data[at..at + n];
                let s = c.send(from_server, seg);
                if dups[k % dups.len()] {
                    c.resend(from_server, s, seg);
                }
                k += 1;
                at += n;
                i += 1;
            }
        }
        let (got, _) = c.done();
        let strip = |v: &[HttpRecord]| v.iter().map(|r| (r.kind, r.method.clone(), r.uri.clone(), r.host.clone(), r.status, r.partial)).collect::<Vec<_>>();
        prop_assert_eq!(strip(&got), strip(&reference));
    }

    /// Arbitrary bytes never panic and never grow buffers past the cap.
    #[test]
    fn arbitrary_bytes(segs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20), prefix in any::<bool>()) {
        let mut c = Conv::new(HttpConfig { max_header_bytes: 512, ..HttpConfig::default() });
        if prefix {
            c.send(false, b"GET /x HTTP/1.1\r\n");
        }
        for (i, s) in segs.iter().enumerate() {
            c.send(i % 3 == 0, s);
            for slot in &c.a.slots {
                if let Some(conn) = &slot.conn {
                    prop_assert!(conn.dirs.iter().all(|d| d.buf.len() <= 512));
                }
            }
        }
        c.done();
    }
}

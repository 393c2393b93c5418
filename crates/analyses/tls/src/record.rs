//! The output record: one per TLS-over-TCP connection or QUIC connection. Every field is a
//! scalar or an array of scalars, so records load into ClickHouse 18.16 with JSONEachRow.

use netspectra_packet::{community_id_v1, FlowKey, Timestamp};
use serde::{Serialize, Serializer};
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

/// One TLS or QUIC connection, oriented client to server. Fields the capture did not show
/// (no ServerHello, TLS 1.3's encrypted certificate, ...) are empty or `None`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TlsRecord {
    /// Time of the first ClientHello (of the first TLS message seen when it was missed),
    /// `seconds.nanoseconds`.
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
    /// Community ID v1 (seed 0) of the TCP connection or UDP flow.
    pub community_id: String,
    /// `tcp` (TLS over TCP) or `quic`.
    pub transport: &'static str,
    /// Server name indication (or its keyed token).
    pub sni: Option<String>,
    /// ALPN protocols offered, in order (bytes outside printable ASCII as `\xNN`).
    pub alpn_offered: Vec<String>,
    /// legacy_version of the ClientHello (0x0303 for every TLS 1.2 and 1.3 client).
    pub client_version: Option<u16>,
    /// supported_versions offered, in order, GREASE included.
    pub versions_offered: Vec<u16>,
    /// Cipher suites offered, in order, GREASE included.
    pub ciphers_offered: Vec<u16>,
    /// Extension types of the ClientHello, in order, GREASE included.
    pub extensions: Vec<u16>,
    /// supported_groups, in order, GREASE included.
    pub groups: Vec<u16>,
    /// ec_point_formats.
    pub point_formats: Vec<u8>,
    /// signature_algorithms, in order.
    pub sig_algs: Vec<u16>,
    /// The client offered to resume: a session id, a session ticket or a pre-shared key.
    pub resumption_offered: bool,
    /// JA3 (MD5, lower-case hex) of the first ClientHello.
    pub ja3: Option<String>,
    /// JA4 of the first ClientHello.
    pub ja4: Option<String>,
    /// ClientHello messages seen (2 after a HelloRetryRequest).
    pub client_hellos: u8,
    /// JA4 of the second ClientHello (after a HelloRetryRequest).
    pub ja4_retry: Option<String>,
    /// The server asked for a new ClientHello (HelloRetryRequest).
    pub hello_retry: bool,
    /// Negotiated version (`TLS 1.3`, `TLS 1.2`, ...) from the ServerHello.
    pub version: Option<String>,
    /// Negotiated version code.
    pub version_code: Option<u16>,
    /// Cipher suite chosen by the server.
    pub cipher: Option<u16>,
    /// Its IANA name, when known.
    pub cipher_name: Option<&'static str>,
    /// ALPN protocol in the ServerHello (TLS 1.2; TLS 1.3 and QUIC carry it encrypted).
    pub alpn: Option<String>,
    /// JA3S of the ServerHello.
    pub ja3s: Option<String>,
    /// The server resumed a session (TLS 1.3: accepted a pre-shared key; TLS 1.2: echoed the
    /// client's session id).
    pub resumed: bool,
    /// Microseconds from the first ClientHello to the ServerHello.
    pub handshake_latency_us: Option<u64>,
    /// Certificates in the server's chain (TLS 1.2 and below: TLS 1.3 encrypts them).
    pub cert_count: u16,
    /// Subject of each certificate kept (RFC 4514-like `C=US, O=..., CN=...`).
    pub cert_subjects: Vec<String>,
    /// Issuer of each certificate kept.
    pub cert_issuers: Vec<String>,
    /// Serial number of each certificate kept, lower-case hex.
    pub cert_serials: Vec<String>,
    /// Start of validity of each certificate kept (`YYYY-MM-DDThh:mm:ssZ`).
    pub cert_not_before: Vec<String>,
    /// End of validity of each certificate kept.
    pub cert_not_after: Vec<String>,
    /// DNS names in the leaf certificate's subject alternative names.
    pub cert_san_dns: Vec<String>,
    /// Sender of each alert read in clear (`client`/`server`).
    pub alert_senders: Vec<&'static str>,
    /// Level of each alert (1 warning, 2 fatal).
    pub alert_levels: Vec<u8>,
    /// Description of each alert (QUIC: the TLS alert of a CONNECTION_CLOSE in an Initial).
    pub alert_descriptions: Vec<u8>,
    /// Alert records sent encrypted (their content is not visible).
    pub encrypted_alerts: u32,
    /// Both sides sent application data (TLS over TCP) or the handshake got past the Initials.
    pub established: bool,
    /// Something of the handshake could not be read (a gap, a message over the size bound,
    /// a malformed message): see `malformed`.
    pub partial: bool,
    /// Why the handshake is partial, when a reason is known.
    pub malformed: Option<&'static str>,
    /// QUIC version (1, 0x6b3343cf for version 2).
    pub quic_version: Option<u32>,
    /// Destination connection ID of the client's first Initial, hex.
    pub quic_dcid: Option<String>,
    /// Source connection ID of the client, hex.
    pub quic_scid: Option<String>,
    /// Source connection ID of the server, hex.
    pub quic_server_scid: Option<String>,
}

impl Default for TlsRecord {
    /// An empty record (unspecified addresses), for building one field by field.
    fn default() -> Self {
        let none = IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED);
        TlsRecord {
            ts: Timestamp(0),
            ip_version: 4,
            src_ip: none,
            src_port: 0,
            dst_ip: none,
            dst_port: 0,
            vlan: None,
            community_id: String::new(),
            transport: "tcp",
            sni: None,
            alpn_offered: Vec::new(),
            client_version: None,
            versions_offered: Vec::new(),
            ciphers_offered: Vec::new(),
            extensions: Vec::new(),
            groups: Vec::new(),
            point_formats: Vec::new(),
            sig_algs: Vec::new(),
            resumption_offered: false,
            ja3: None,
            ja4: None,
            client_hellos: 0,
            ja4_retry: None,
            hello_retry: false,
            version: None,
            version_code: None,
            cipher: None,
            cipher_name: None,
            alpn: None,
            ja3s: None,
            resumed: false,
            handshake_latency_us: None,
            cert_count: 0,
            cert_subjects: Vec::new(),
            cert_issuers: Vec::new(),
            cert_serials: Vec::new(),
            cert_not_before: Vec::new(),
            cert_not_after: Vec::new(),
            cert_san_dns: Vec::new(),
            alert_senders: Vec::new(),
            alert_levels: Vec::new(),
            alert_descriptions: Vec::new(),
            encrypted_alerts: 0,
            established: false,
            partial: false,
            malformed: None,
            quic_version: None,
            quic_dcid: None,
            quic_scid: None,
            quic_server_scid: None,
        }
    }
}

impl TlsRecord {
    /// The flow key of the record (client to server).
    pub fn key(&self) -> FlowKey {
        FlowKey {
            src: self.src_ip,
            dst: self.dst_ip,
            src_port: self.src_port,
            dst_port: self.dst_port,
            proto: if self.transport == "quic" { 17 } else { 6 },
            vlan: self.vlan,
        }
    }

    /// Replaces the client and server addresses with `f(address)` and recomputes the Community
    /// ID from them: the pipeline's `anonymize` option calls this with its mapping.
    pub fn anonymize_addresses(&mut self, f: &mut dyn FnMut(IpAddr) -> IpAddr) {
        self.src_ip = f(self.src_ip);
        self.dst_ip = f(self.dst_ip);
        self.community_id = community_id_v1(&self.key(), 0);
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
    "sni",
    "alpn_offered",
    "client_version",
    "versions_offered",
    "ciphers_offered",
    "extensions",
    "groups",
    "point_formats",
    "sig_algs",
    "resumption_offered",
    "ja3",
    "ja4",
    "client_hellos",
    "ja4_retry",
    "hello_retry",
    "version",
    "version_code",
    "cipher",
    "cipher_name",
    "alpn",
    "ja3s",
    "resumed",
    "handshake_latency_us",
    "cert_count",
    "cert_subjects",
    "cert_issuers",
    "cert_serials",
    "cert_not_before",
    "cert_not_after",
    "cert_san_dns",
    "alert_senders",
    "alert_levels",
    "alert_descriptions",
    "encrypted_alerts",
    "established",
    "partial",
    "malformed",
    "quic_version",
    "quic_dcid",
    "quic_scid",
    "quic_server_scid",
];

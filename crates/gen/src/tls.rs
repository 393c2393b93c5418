//! TLS handshakes with known fields: client profiles modelled on common stacks (a browser with
//! GREASE and shuffled extensions, a second browser, curl/OpenSSL, a Java TLS 1.2 client, a TLS
//! 1.2 device without SNI or ALPN, and QUIC clients), the server's choices, TLS 1.2 certificate
//! chains as hand-written DER, session resumption and client alerts. Every choice is drawn from
//! the run's random stream (deterministic by seed) and written to the truth as [`TlsSession`].

use crate::rng::Rng;
use crate::truth::TlsTruth;
use serde::{Deserialize, Serialize};

/// Adds a handshake to the truth list (dropping the list once more than `max` were written).
pub(crate) fn list(t: &mut TlsTruth, max: usize, s: &TlsSession) {
    if !t.listed {
        return;
    }
    if t.list.len() >= max {
        t.listed = false;
        t.list = Vec::new();
        return;
    }
    t.list.push(s.clone());
}

/// One TLS-over-TCP or QUIC handshake as written: what a TLS analyzer must report for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TlsSession {
    /// Client `ip:port` (IPv6 in brackets).
    pub client: String,
    /// Server `ip:port`.
    pub server: String,
    /// `tcp` or `quic`.
    pub transport: String,
    /// Outer VLAN id, if tagged.
    pub vlan: Option<u16>,
    /// Client profile name (`chrome`, `firefox`, `curl`, `java`, `device`, `chrome-quic`,
    /// `curl-quic`).
    pub profile: String,
    /// Server name indication (`None`: the client sent none).
    pub sni: Option<String>,
    /// ALPN protocols offered, in order.
    pub alpn_offered: Vec<String>,
    /// ALPN protocol in the ServerHello (TLS 1.2 only: TLS 1.3 carries it encrypted).
    pub alpn: Option<String>,
    /// Negotiated version: `TLS 1.2` or `TLS 1.3`.
    pub version: String,
    /// supported_versions offered (GREASE included), empty when the extension was not sent.
    pub versions_offered: Vec<u16>,
    /// Cipher suites offered, in order, GREASE included.
    pub ciphers_offered: Vec<u16>,
    /// Cipher suite chosen by the server.
    pub cipher: u16,
    /// Extension types of the ClientHello, in order, GREASE included.
    pub extensions: Vec<u16>,
    /// supported_groups, GREASE included.
    pub groups: Vec<u16>,
    /// signature_algorithms.
    pub sig_algs: Vec<u16>,
    /// The server resumed a session (TLS 1.2 session id echoed, TLS 1.3 pre_shared_key).
    pub resumed: bool,
    /// A fatal alert the client sent in clear after the server's certificate (description).
    pub alert: Option<u8>,
    /// Leaf certificate subject (`C=US, O=Example Org, CN=...`), TLS 1.2 full handshakes.
    pub cert_subject: Option<String>,
    /// Leaf certificate issuer.
    pub cert_issuer: Option<String>,
    /// Leaf certificate serial number, lower-case hex.
    pub cert_serial: Option<String>,
    /// Leaf certificate DNS subject alternative names.
    pub cert_san: Vec<String>,
    /// Certificates in the chain.
    pub cert_count: u32,
    /// QUIC version (QUIC only).
    pub quic_version: Option<u32>,
    /// Destination connection ID of the client's first Initial, lower-case hex (QUIC only).
    pub quic_dcid: Option<String>,
    /// Source connection ID of the client's Initial, lower-case hex (QUIC only).
    pub quic_scid: Option<String>,
}

/// What a client stack sends.
pub(crate) struct Profile {
    name: &'static str,
    grease: bool,
    /// Extension order is shuffled per connection (as Chrome does since version 110).
    shuffle: bool,
    /// TLS 1.3 suites, offered before `ciphers` when the profile offers TLS 1.3.
    ciphers13: &'static [u16],
    ciphers: &'static [u16],
    /// Extension types in send order (content built per type).
    exts: &'static [u16],
    groups: &'static [u16],
    sig_algs: &'static [u16],
    alpn: &'static [&'static str],
    tls13: bool,
    /// Share of its connections that carry no SNI.
    no_sni: f64,
}

const SIGS_COMMON: &[u16] = &[
    0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
];

/// TCP client profiles, with their weights.
const TCP_PROFILES: &[(Profile, u32)] = &[
    (
        Profile {
            name: "chrome",
            grease: true,
            shuffle: true,
            ciphers13: &[0x1301, 0x1302, 0x1303],
            ciphers: &[
                0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014, 0x009c, 0x009d,
                0x002f, 0x0035,
            ],
            exts: &[
                0, 23, 0xff01, 10, 11, 35, 16, 5, 13, 18, 51, 45, 43, 27, 0x4469,
            ],
            groups: &[0x001d, 0x0017, 0x0018],
            sig_algs: SIGS_COMMON,
            alpn: &["h2", "http/1.1"],
            tls13: true,
            no_sni: 0.0,
        },
        40,
    ),
    (
        Profile {
            name: "firefox",
            grease: false,
            shuffle: false,
            ciphers13: &[0x1301, 0x1303, 0x1302],
            ciphers: &[
                0xc02b, 0xc02f, 0xcca9, 0xcca8, 0xc02c, 0xc030, 0xc00a, 0xc009, 0xc013, 0xc014,
                0x009c, 0x009d, 0x002f, 0x0035,
            ],
            exts: &[0, 23, 0xff01, 10, 11, 35, 16, 5, 34, 51, 43, 13, 45, 28],
            groups: &[0x001d, 0x0017, 0x0018, 0x0019, 0x0100, 0x0101],
            sig_algs: &[
                0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0203,
                0x0201,
            ],
            alpn: &["h2", "http/1.1"],
            tls13: true,
            no_sni: 0.0,
        },
        20,
    ),
    (
        Profile {
            name: "curl",
            grease: false,
            shuffle: false,
            ciphers13: &[0x1302, 0x1303, 0x1301],
            ciphers: &[
                0xc02c, 0xc030, 0x009f, 0xcca9, 0xcca8, 0xccaa, 0xc02b, 0xc02f, 0x009e, 0xc024,
                0xc028, 0x006b, 0xc023, 0xc027, 0x0067, 0xc00a, 0xc014, 0x0039, 0xc009, 0xc013,
                0x0033, 0x009d, 0x009c, 0x003d, 0x003c, 0x0035, 0x002f, 0x00ff,
            ],
            exts: &[0, 11, 10, 35, 22, 23, 13, 43, 45, 51, 16],
            groups: &[0x001d, 0x0017, 0x001e, 0x0019, 0x0018],
            sig_algs: &[
                0x0403, 0x0503, 0x0603, 0x0807, 0x0808, 0x0809, 0x080a, 0x080b, 0x0804, 0x0805,
                0x0806, 0x0401, 0x0501, 0x0601,
            ],
            alpn: &["h2", "http/1.1"],
            tls13: true,
            no_sni: 0.0,
        },
        15,
    ),
    (
        Profile {
            name: "java",
            grease: false,
            shuffle: false,
            ciphers13: &[],
            ciphers: &[
                0xc02c, 0xc02b, 0xc030, 0xcca9, 0xcca8, 0xc02f, 0x009f, 0x009e, 0xc024, 0xc023,
                0xc028, 0xc027, 0xc00a, 0xc009, 0xc014, 0xc013, 0x009d, 0x009c, 0x003d, 0x003c,
                0x0035, 0x002f, 0x00ff,
            ],
            exts: &[0, 5, 10, 11, 13, 50, 17, 23],
            groups: &[0x001d, 0x0017, 0x0018, 0x0019, 0x0100],
            sig_algs: &[
                0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601, 0x0402,
                0x0202,
            ],
            alpn: &[],
            tls13: false,
            no_sni: 0.1,
        },
        15,
    ),
    (
        Profile {
            name: "device",
            grease: false,
            shuffle: false,
            ciphers13: &[],
            ciphers: &[0xc02f, 0xc030, 0x009c, 0x002f, 0x0035, 0x000a],
            exts: &[10, 11, 13, 23, 16, 0],
            groups: &[0x0017, 0x0018],
            sig_algs: &[0x0401, 0x0403, 0x0501, 0x0201],
            alpn: &["http/1.1"],
            tls13: false,
            no_sni: 0.6,
        },
        10,
    ),
];

/// QUIC client profiles (TLS 1.3 only, ALPN h3, transport parameters).
const QUIC_PROFILES: &[(Profile, u32)] = &[
    (
        Profile {
            name: "chrome-quic",
            grease: true,
            shuffle: true,
            ciphers13: &[0x1301, 0x1302, 0x1303],
            ciphers: &[],
            exts: &[0, 10, 13, 16, 27, 43, 45, 51, 57, 0x4469],
            groups: &[0x001d, 0x0017, 0x0018],
            sig_algs: SIGS_COMMON,
            alpn: &["h3"],
            tls13: true,
            no_sni: 0.0,
        },
        70,
    ),
    (
        Profile {
            name: "curl-quic",
            grease: false,
            shuffle: false,
            ciphers13: &[0x1301, 0x1302, 0x1303, 0x1304],
            ciphers: &[],
            exts: &[0, 10, 13, 16, 43, 45, 51, 57],
            groups: &[0x001d, 0x0017, 0x0018, 0x0019],
            sig_algs: &[
                0x0403, 0x0503, 0x0603, 0x0804, 0x0805, 0x0806, 0x0401, 0x0501, 0x0601,
            ],
            alpn: &["h3", "h3-29"],
            tls13: true,
            no_sni: 0.0,
        },
        30,
    ),
];

/// The RFC 8701 GREASE values.
const GREASE: [u16; 16] = [
    0x0a0a, 0x1a1a, 0x2a2a, 0x3a3a, 0x4a4a, 0x5a5a, 0x6a6a, 0x7a7a, 0x8a8a, 0x9a9a, 0xaaaa, 0xbaba,
    0xcaca, 0xdada, 0xeaea, 0xfafa,
];

/// Everything decided about one handshake before it is written.
#[derive(Debug, Default)]
pub(crate) struct TlsPlan {
    /// The truth entry (addresses filled in by the session).
    pub truth: TlsSession,
    /// Negotiated TLS 1.3.
    pub tls13: bool,
    /// QUIC (the ClientHello carries transport parameters, no record layer).
    pub quic: bool,
    /// Extension order as sent.
    exts: Vec<u16>,
    /// GREASE values: cipher list (and, xor 0x1010, supported_versions), first extension,
    /// last extension, groups and key share.
    grease: [u16; 4],
    /// Offers the hybrid post-quantum group X25519Kyber768 (0x6399) with its 1,216-byte key
    /// share, which makes the ClientHello span two TCP segments or two QUIC Initials.
    pq: bool,
    session_id: [u8; 32],
    /// Leaf certificate serial (16 bytes).
    serial: [u8; 16],
}

fn pick_profile<'a>(r: &mut Rng, list: &'a [(Profile, u32)]) -> &'a Profile {
    let total: u32 = list.iter().map(|p| p.1).sum();
    let mut x = r.below(total as u64) as u32;
    for (p, w) in list {
        if x < *w {
            return p;
        }
        x -= w;
    }
    &list[0].0
}

impl TlsPlan {
    /// Decides a handshake: `want13` is the session's wish for TLS 1.3 (honoured when the
    /// profile offers it); `host` the name the client connects to.
    pub fn new(r: &mut Rng, host: &str, want13: bool, quic: bool) -> TlsPlan {
        let p = pick_profile(r, if quic { QUIC_PROFILES } else { TCP_PROFILES });
        let tls13 = quic || (want13 && p.tls13);
        let mut grease = [0u16; 4];
        for g in &mut grease {
            *g = GREASE[r.below(16) as usize];
        }
        let sni = if r.chance(p.no_sni) {
            None
        } else {
            Some(host.to_string())
        };
        let mut ciphers = Vec::new();
        if p.grease {
            ciphers.push(grease[0]);
        }
        if p.tls13 {
            ciphers.extend_from_slice(p.ciphers13);
        }
        ciphers.extend_from_slice(p.ciphers);
        let mut exts: Vec<u16> = p
            .exts
            .iter()
            .copied()
            .filter(|&e| !(e == 0 && sni.is_none() || e == 16 && p.alpn.is_empty()))
            .collect();
        if p.shuffle {
            for i in (1..exts.len()).rev() {
                let j = r.below(i as u64 + 1) as usize;
                exts.swap(i, j);
            }
        }
        // TLS 1.3 resumption: the client offers a PSK (pre_shared_key must be the last
        // extension); TLS 1.2 resumption: the server echoes the client's session id.
        let resumed = !quic && r.chance(if tls13 { 0.2 } else { 0.15 });
        if resumed && tls13 && !exts.contains(&45) {
            exts.push(45);
        }
        if p.grease {
            exts.insert(0, grease[1]);
            exts.push(grease[2]);
        }
        if resumed && tls13 {
            exts.push(41);
        }
        let mut groups = Vec::new();
        if p.grease {
            groups.push(grease[3]);
        }
        let pq = p.grease && r.chance(0.5);
        if pq {
            groups.push(0x6399);
        }
        groups.extend_from_slice(p.groups);
        let versions: Vec<u16> = if p.tls13 {
            let mut v = Vec::new();
            if p.grease {
                v.push(grease[0] ^ 0x1010);
            }
            v.push(0x0304);
            if !quic {
                v.push(0x0303);
            }
            v
        } else {
            Vec::new()
        };
        let offered: Vec<u16> = ciphers
            .iter()
            .copied()
            .filter(|c| !GREASE.contains(c))
            .collect();
        let cipher = if tls13 {
            *r.pick(&[0x1301u16, 0x1302, 0x1301])
        } else {
            [0xc02f, 0xc02b, 0xc030, 0xc02c, 0xcca8, 0x009c, 0x002f]
                .into_iter()
                .find(|c| offered.contains(c))
                .unwrap_or(offered[0])
        };
        let alpn = if !tls13 && !p.alpn.is_empty() && r.chance(0.9) {
            Some(p.alpn[r.below(p.alpn.len() as u64) as usize].to_string())
        } else {
            None
        };
        let alert = (!tls13 && !resumed && r.chance(0.03)).then(|| *r.pick(&[42u8, 48, 46]));
        let mut session_id = [0u8; 32];
        r.fill(&mut session_id);
        let mut serial = [0u8; 16];
        r.fill(&mut serial);
        serial[0] = (serial[0] & 0x7f) | 0x01;
        let full12 = !tls13 && !resumed;
        let truth = TlsSession {
            transport: if quic { "quic" } else { "tcp" }.into(),
            profile: p.name.into(),
            alpn_offered: p.alpn.iter().map(|s| s.to_string()).collect(),
            alpn,
            version: if tls13 { "TLS 1.3" } else { "TLS 1.2" }.into(),
            versions_offered: versions,
            ciphers_offered: ciphers,
            cipher,
            extensions: exts.clone(),
            groups,
            sig_algs: p.sig_algs.to_vec(),
            resumed,
            alert,
            cert_subject: full12.then(|| format!("C=US, O=Example Org, CN={host}")),
            cert_issuer: full12
                .then(|| "C=US, O=Example Trust Services, CN=Example Issuing CA 1".to_string()),
            cert_serial: full12.then(|| serial.iter().map(|b| format!("{b:02x}")).collect()),
            cert_san: if full12 {
                vec![host.to_string()]
            } else {
                Vec::new()
            },
            cert_count: if full12 { 2 } else { 0 },
            sni,
            ..Default::default()
        };
        TlsPlan {
            truth,
            tls13,
            quic,
            exts,
            grease,
            pq,
            session_id,
            serial,
        }
    }

    /// The handshake message ClientHello (type 1, with its 4-byte header).
    pub fn client_hello(&self, v: &mut Vec<u8>, r: &mut Rng, quic_scid: &[u8]) {
        let t = &self.truth;
        v.push(1);
        with_len(v, 3, |v| {
            v.extend_from_slice(&[3, 3]);
            rand_bytes(v, r, 32);
            if self.quic {
                // QUIC clients send no legacy session id (RFC 9001 §8.4).
                v.push(0);
            } else {
                v.push(32);
                v.extend_from_slice(&self.session_id);
            }
            with_len(v, 2, |v| {
                for c in &t.ciphers_offered {
                    v.extend_from_slice(&c.to_be_bytes());
                }
            });
            v.extend_from_slice(&[1, 0]);
            with_len(v, 2, |v| {
                for &e in &self.exts {
                    self.client_ext(v, r, e, quic_scid);
                }
            });
        });
    }

    fn client_ext(&self, v: &mut Vec<u8>, r: &mut Rng, e: u16, scid: &[u8]) {
        let t = &self.truth;
        ext(v, e, |v| match e {
            0 => with_len(v, 2, |v| {
                v.push(0);
                with_len(v, 2, |v| {
                    v.extend_from_slice(t.sni.as_deref().unwrap_or("").as_bytes())
                });
            }),
            5 => v.extend_from_slice(&[1, 0, 0, 0, 0]),
            // status_request_v2: one ocsp_multi request with no responder ids or extensions.
            17 => v.extend_from_slice(&[0, 7, 2, 0, 4, 0, 0, 0, 0]),
            0xff01 => v.push(0),
            10 => with_len(v, 2, |v| {
                for g in &t.groups {
                    v.extend_from_slice(&g.to_be_bytes());
                }
            }),
            11 => v.extend_from_slice(&[1, 0]),
            13 | 50 => with_len(v, 2, |v| {
                for s in &t.sig_algs {
                    v.extend_from_slice(&s.to_be_bytes());
                }
            }),
            16 => with_len(v, 2, |v| {
                for a in &t.alpn_offered {
                    v.push(a.len() as u8);
                    v.extend_from_slice(a.as_bytes());
                }
            }),
            27 => v.extend_from_slice(&[2, 0, 2]),
            28 => v.extend_from_slice(&[0x40, 0x01]),
            34 => v.extend_from_slice(&[0, 8, 4, 3, 5, 3, 6, 3, 2, 3]),
            // A ticket from an earlier connection when resuming TLS 1.2.
            35 if t.resumed && !self.tls13 => rand_bytes(v, r, 192),
            43 => {
                v.push((t.versions_offered.len() * 2) as u8);
                for x in &t.versions_offered {
                    v.extend_from_slice(&x.to_be_bytes());
                }
            }
            45 => v.extend_from_slice(&[1, 1]),
            51 => with_len(v, 2, |v| {
                if self.grease[3] != 0 && t.groups.first() == Some(&self.grease[3]) {
                    v.extend_from_slice(&self.grease[3].to_be_bytes());
                    v.extend_from_slice(&[0, 1, 0]);
                }
                if self.pq {
                    v.extend_from_slice(&[0x63, 0x99, 0x04, 0xc0]);
                    rand_bytes(v, r, 1216);
                }
                v.extend_from_slice(&[0, 0x1d, 0, 32]);
                rand_bytes(v, r, 32);
            }),
            41 => {
                // One identity (a ticket) and its binder.
                with_len(v, 2, |v| {
                    with_len(v, 2, |v| rand_bytes(v, r, 96));
                    v.extend_from_slice(&r.u32().to_be_bytes());
                });
                with_len(v, 2, |v| {
                    v.push(32);
                    rand_bytes(v, r, 32);
                });
            }
            57 => {
                // initial_source_connection_id (0x0f) and a few limits, as varints.
                v.extend_from_slice(&[0x0f, scid.len() as u8]);
                v.extend_from_slice(scid);
                v.extend_from_slice(&[0x04, 0x04, 0x80, 0x60, 0x00, 0x00]);
                v.extend_from_slice(&[0x08, 0x02, 0x40, 0x64]);
                v.extend_from_slice(&[0x01, 0x04, 0x80, 0x00, 0x75, 0x30]);
            }
            0x4469 => with_len(v, 2, |v| {
                v.push(2);
                v.extend_from_slice(b"h2");
            }),
            _ => {}
        });
    }

    /// The handshake message ServerHello.
    pub fn server_hello(&self, v: &mut Vec<u8>, r: &mut Rng) {
        let t = &self.truth;
        v.push(2);
        with_len(v, 3, |v| {
            v.extend_from_slice(&[3, 3]);
            rand_bytes(v, r, 32);
            if self.quic {
                v.push(0);
            } else {
                v.push(32);
                if t.resumed && !self.tls13 {
                    v.extend_from_slice(&self.session_id);
                } else {
                    rand_bytes(v, r, 32);
                }
            }
            v.extend_from_slice(&t.cipher.to_be_bytes());
            v.push(0);
            with_len(v, 2, |v| {
                if self.tls13 {
                    ext(v, 43, |v| v.extend_from_slice(&[3, 4]));
                    ext(v, 51, |v| {
                        v.extend_from_slice(&[0, 0x1d, 0, 32]);
                        rand_bytes(v, r, 32);
                    });
                    if t.resumed {
                        ext(v, 41, |v| v.extend_from_slice(&[0, 0]));
                    }
                } else {
                    ext(v, 0xff01, |v| v.push(0));
                    if let Some(a) = &t.alpn {
                        ext(v, 16, |v| {
                            with_len(v, 2, |v| {
                                v.push(a.len() as u8);
                                v.extend_from_slice(a.as_bytes());
                            })
                        });
                    }
                    ext(v, 11, |v| v.extend_from_slice(&[1, 0]));
                    ext(v, 23, |_| {});
                }
            });
        });
    }

    /// The handshake message Certificate: the leaf for `host` and its issuing CA.
    pub fn certificate(&self, v: &mut Vec<u8>, r: &mut Rng, host: &str) {
        v.push(11);
        with_len(v, 3, |v| {
            with_len(v, 3, |v| {
                with_len(v, 3, |v| {
                    der_cert(v, r, &self.serial, host, "Example Issuing CA 1", Some(host))
                });
                with_len(v, 3, |v| {
                    let mut s = [0u8; 16];
                    r.fill(&mut s);
                    s[0] = (s[0] & 0x7f) | 1;
                    der_cert(v, r, &s, "Example Issuing CA 1", "Example Root CA", None)
                });
            });
        });
    }
}

/// Writes a big-endian length field of `w` bytes followed by the body that `f` writes.
pub(crate) fn with_len(v: &mut Vec<u8>, w: usize, f: impl FnOnce(&mut Vec<u8>)) {
    let at = v.len();
    v.resize(at + w, 0);
    f(v);
    let n = v.len() - at - w;
    for i in 0..w {
        v[at + i] = (n >> (8 * (w - 1 - i))) as u8;
    }
}

pub(crate) fn rand_bytes(v: &mut Vec<u8>, r: &mut Rng, n: usize) {
    let at = v.len();
    v.resize(at + n, 0);
    r.fill(&mut v[at..]);
}

fn ext(v: &mut Vec<u8>, ty: u16, f: impl FnOnce(&mut Vec<u8>)) {
    v.extend_from_slice(&ty.to_be_bytes());
    with_len(v, 2, f);
}

/// The handshake message ServerKeyExchange (ECDHE on P-256, ECDSA signature).
pub(crate) fn server_key_exchange(v: &mut Vec<u8>, r: &mut Rng) {
    v.push(12);
    with_len(v, 3, |v| {
        v.extend_from_slice(&[3, 0, 0x17, 65, 4]);
        rand_bytes(v, r, 64);
        v.extend_from_slice(&[4, 3]);
        with_len(v, 2, |v| {
            der(v, 0x30, |v| {
                der_int_rand(v, r, 32);
                der_int_rand(v, r, 32);
            })
        });
    });
}

/// DER TLV with a definite length.
fn der(v: &mut Vec<u8>, tag: u8, f: impl FnOnce(&mut Vec<u8>)) {
    let at = v.len();
    v.push(tag);
    v.extend_from_slice(&[0x82, 0, 0]);
    let body = v.len();
    f(v);
    let n = v.len() - body;
    if n < 128 {
        v[at + 1] = n as u8;
        v.drain(at + 2..at + 4);
    } else if n < 256 {
        v[at + 1] = 0x81;
        v[at + 2] = n as u8;
        v.remove(at + 3);
    } else {
        v[at + 2] = (n >> 8) as u8;
        v[at + 3] = n as u8;
    }
}

fn der_int_rand(v: &mut Vec<u8>, r: &mut Rng, n: usize) {
    der(v, 0x02, |v| {
        let at = v.len();
        rand_bytes(v, r, n);
        v[at] = (v[at] & 0x7f) | 0x01;
    });
}

fn der_name(v: &mut Vec<u8>, org: &str, cn: &str) {
    der(v, 0x30, |v| {
        for (oid, tag, val) in [(6u8, 0x13u8, "US"), (10, 0x0c, org), (3, 0x0c, cn)] {
            der(v, 0x31, |v| {
                der(v, 0x30, |v| {
                    v.extend_from_slice(&[6, 3, 0x55, 4, oid]);
                    der(v, tag, |v| v.extend_from_slice(val.as_bytes()));
                })
            });
        }
    });
}

const ECDSA_SHA256: &[u8] = &[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 4, 3, 2];

fn der_cert(
    v: &mut Vec<u8>,
    r: &mut Rng,
    serial: &[u8; 16],
    subject: &str,
    issuer: &str,
    san: Option<&str>,
) {
    let (sub_org, iss_org) = if san.is_some() {
        ("Example Org", "Example Trust Services")
    } else {
        ("Example Trust Services", "Example Trust Services")
    };
    der(v, 0x30, |v| {
        der(v, 0x30, |v| {
            der(v, 0xa0, |v| v.extend_from_slice(&[2, 1, 2]));
            der(v, 0x02, |v| v.extend_from_slice(serial));
            der(v, 0x30, |v| v.extend_from_slice(ECDSA_SHA256));
            der_name(v, iss_org, issuer);
            der(v, 0x30, |v| {
                der(v, 0x17, |v| v.extend_from_slice(b"231101000000Z"));
                der(v, 0x17, |v| v.extend_from_slice(b"241130235959Z"));
            });
            der_name(v, sub_org, subject);
            der(v, 0x30, |v| {
                der(v, 0x30, |v| {
                    v.extend_from_slice(&[6, 7, 0x2a, 0x86, 0x48, 0xce, 0x3d, 2, 1]);
                    v.extend_from_slice(&[6, 8, 0x2a, 0x86, 0x48, 0xce, 0x3d, 3, 1, 7]);
                });
                der(v, 0x03, |v| {
                    v.extend_from_slice(&[0, 4]);
                    rand_bytes(v, r, 64);
                });
            });
            if let Some(san) = san {
                der(v, 0xa3, |v| {
                    der(v, 0x30, |v| {
                        der(v, 0x30, |v| {
                            v.extend_from_slice(&[6, 3, 0x55, 0x1d, 0x11]);
                            der(v, 0x04, |v| {
                                der(v, 0x30, |v| {
                                    der(v, 0x82, |v| v.extend_from_slice(san.as_bytes()))
                                })
                            });
                        })
                    })
                });
            }
        });
        der(v, 0x30, |v| v.extend_from_slice(ECDSA_SHA256));
        der(v, 0x03, |v| {
            v.push(0);
            der(v, 0x30, |v| {
                der_int_rand(v, r, 32);
                der_int_rand(v, r, 32);
            });
        });
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_are_consistent() {
        let mut r = Rng::new(5);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..400 {
            let p = TlsPlan::new(&mut r, "www.example.com", i % 3 == 0, i % 7 == 0);
            let t = &p.truth;
            seen.insert(t.profile.clone());
            // The chosen cipher was offered; TLS 1.3 only when supported_versions says so.
            assert!(t.ciphers_offered.contains(&t.cipher));
            assert_eq!(
                p.tls13,
                t.versions_offered.contains(&0x0304) && (p.quic || i % 3 == 0)
            );
            // pre_shared_key is last when present.
            if let Some(pos) = t.extensions.iter().position(|&e| e == 41) {
                assert_eq!(pos, t.extensions.len() - 1);
            }
            assert_eq!(t.extensions.contains(&0), t.sni.is_some());
            let mut v = Vec::new();
            p.client_hello(&mut v, &mut r, &[1, 2, 3, 4]);
            let n = ((v[1] as usize) << 16) | ((v[2] as usize) << 8) | v[3] as usize;
            assert_eq!(n + 4, v.len());
        }
        assert_eq!(seen.len(), TCP_PROFILES.len() + QUIC_PROFILES.len());
    }
}

//! Privileged integration tests: two network namespaces joined by a veth pair, the guard attached
//! to the server side, real TCP/UDP/ICMP traffic over IPv4 and IPv6. Needs root; skips otherwise.
//! Namespaces are removed by a Drop guard even when an assertion fails.

use netspectra_guard::abi::{c, GuardEvent};
use netspectra_guard::{Guard, Hook, Policy};
use netspectra_testnet::{in_ns, require_root, Side, VethPair};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

const B4: &str = "10.77.0.2";
const B6: &str = "fd77::2";

/// Client namespace `a` and server namespace `b` (the guard's side) joined by veth.
fn pair() -> VethPair {
    VethPair::addressed(
        "ng",
        Side {
            v4: "10.77.0.1/24",
            v6: "fd77::1/64",
        },
        Side {
            v4: "10.77.0.2/24",
            v6: "fd77::2/64",
        },
    )
}

/// Pings `dst` from the client namespace; true when every reply came.
fn ping(p: &VethPair, dst: &str, count: u32) -> bool {
    Command::new("ip")
        .args([
            "netns",
            "exec",
            &p.a,
            "ping",
            "-c",
            &count.to_string(),
            "-i",
            "0.2",
            "-W",
            "1",
            dst,
        ])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// TCP and UDP echo servers in the server namespace on the given ports (v4 and v6).
fn servers(ns: &str, tcp: &[u16], udp: &[u16]) {
    for &port in tcp {
        for host in [B4, B6] {
            let l = in_ns(ns, || {
                TcpListener::bind(SocketAddr::new(host.parse().unwrap(), port)).unwrap()
            });
            std::thread::spawn(move || {
                for s in l.incoming().flatten() {
                    std::thread::spawn(move || {
                        let mut s = s;
                        let mut buf = [0u8; 4096];
                        while let Ok(n) = s.read(&mut buf) {
                            if n == 0 || s.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                    });
                }
            });
        }
    }
    for &port in udp {
        for host in [B4, B6] {
            let sock = in_ns(ns, || {
                UdpSocket::bind(SocketAddr::new(host.parse().unwrap(), port)).unwrap()
            });
            std::thread::spawn(move || {
                let mut buf = [0u8; 2048];
                while let Ok((n, from)) = sock.recv_from(&mut buf) {
                    if &buf[..4] != b"mute" {
                        let _ = sock.send_to(&buf[..n], from);
                    }
                }
            });
        }
    }
}

/// Connects from the client namespace and checks an echo round trip.
fn tcp_echo(p: &VethPair, host: &str, port: u16) -> bool {
    in_ns(&p.a, || {
        let addr = SocketAddr::new(host.parse().unwrap(), port);
        let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(1500)) else {
            return false;
        };
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        if s.write_all(b"hello guard").is_err() {
            return false;
        }
        let mut buf = [0u8; 11];
        s.read_exact(&mut buf).is_ok() && &buf == b"hello guard"
    })
}

fn udp_client(p: &VethPair, host: &str) -> UdpSocket {
    in_ns(&p.a, || {
        let bind = if host.contains(':') {
            "[::]:0"
        } else {
            "0.0.0.0:0"
        };
        let s = UdpSocket::bind(bind).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(700)))
            .unwrap();
        s
    })
}

fn udp_echo_on(s: &UdpSocket, host: &str, port: u16) -> bool {
    let addr = SocketAddr::new(host.parse().unwrap(), port);
    let _ = s.send_to(b"ping-udp", addr);
    let mut buf = [0u8; 64];
    matches!(s.recv_from(&mut buf), Ok((8, _)))
}

fn attach(p: &VethPair, policy: &str, hooks: &[Hook]) -> Guard {
    let policy = Policy::from_yaml(policy).unwrap();
    let mut g = Guard::load(65536).expect("load guard");
    g.install(&policy).unwrap();
    in_ns(&p.b, || {
        for h in hooks {
            g.attach(&p.b_if, *h).expect("attach");
        }
    });
    g
}

fn drain(g: &mut Guard) -> Vec<GuardEvent> {
    let mut v = Vec::new();
    while g
        .maps
        .poll_events(Duration::from_millis(50), |e| v.push(*e))
        .unwrap()
        > 0
    {}
    v
}

const POLICY: &str = r#"
default: deny
rules:
  - {name: tcp-ok, dst: 10.77.0.2, proto: tcp, port: 5001, action: allow}
  - {name: tcp6-ok, dst: "fd77::2", proto: tcp, port: 5001, action: allow}
  - {name: udp-ok, dst: 10.77.0.0/24, proto: udp, port: "5002-5003", action: allow}
  - {name: udp6-ok, dst: "fd77::/64", proto: udp, port: 5002, action: allow}
  - {name: tcp-log, proto: tcp, port: 5005, action: log}
  - {name: icmp, proto: icmp, action: allow}
  - {name: icmp6, proto: icmpv6, action: allow}
"#;

#[test]
fn deny_blocks_allowed_and_replies_pass_v4_v6() {
    require_root!();
    let p = pair();
    servers(&p.b, &[5001, 5004, 5005], &[5002, 5006]);
    // sanity: without the guard everything answers
    assert!(tcp_echo(&p, B4, 5004), "baseline tcp 5004");
    let mut g = attach(&p, POLICY, &[Hook::TcIngress, Hook::TcEgress]);
    for host in [B4, B6] {
        assert!(tcp_echo(&p, host, 5001), "allowed tcp to {host}:5001");
        assert!(
            !tcp_echo(&p, host, 5004),
            "denied tcp to {host}:5004 must fail"
        );
        let u = udp_client(&p, host);
        assert!(udp_echo_on(&u, host, 5002), "allowed udp to {host}:5002");
        assert!(!udp_echo_on(&u, host, 5006), "denied udp to {host}:5006");
        assert!(tcp_echo(&p, host, 5005), "logged tcp to {host}:5005 passes");
    }
    assert!(ping(&p, B4, 2), "ping v4");
    assert!(ping(&p, B6, 2), "ping v6");
    let cnt = g.maps.counters().unwrap();
    assert!(
        cnt.get(c::GUARD_C_CACHE_HIT) > 10,
        "replies hit the session cache: {cnt:?}"
    );
    assert!(cnt.get(c::GUARD_C_DROPPED) >= 4, "{cnt:?}");
    assert!(cnt.get(c::GUARD_C_LOGGED) >= 2, "{cnt:?}");
    let evs = drain(&mut g);
    assert!(
        evs.iter().any(|e| e.dport == 5004 && e.action == 1),
        "deny event for 5004"
    );
    assert!(
        evs.iter()
            .any(|e| e.dport == 5005 && e.action == 2 && e.rule_id == 4),
        "log event names rule 4"
    );
    assert!(
        evs.iter().any(|e| e.family == 6 && e.dport == 5004),
        "IPv6 deny event"
    );
    // TCP sessions that finished with FIN both ways are marked closed
    let closed = g
        .maps
        .sessions()
        .unwrap()
        .into_iter()
        .filter(|(k, v)| k.proto == 6 && v.closed_ns != 0)
        .count();
    assert!(closed >= 2, "closed TCP sessions: {closed}");
}

#[test]
fn audit_mode_drops_nothing_but_reports() {
    require_root!();
    let p = pair();
    servers(&p.b, &[5001, 5004], &[5006]);
    let audit = format!("audit: true\n{POLICY}");
    let mut g = attach(&p, &audit, &[Hook::TcIngress, Hook::TcEgress]);
    assert!(tcp_echo(&p, B4, 5004), "audit: denied port still works");
    assert!(
        tcp_echo(&p, B6, 5004),
        "audit: denied port still works (v6)"
    );
    let u = udp_client(&p, B4);
    assert!(udp_echo_on(&u, B4, 5006));
    let cnt = g.maps.counters().unwrap();
    assert_eq!(cnt.get(c::GUARD_C_DROPPED), 0, "{cnt:?}");
    assert!(cnt.get(c::GUARD_C_AUDIT_PASSED) >= 3, "{cnt:?}");
    let evs = drain(&mut g);
    let audited = evs
        .iter()
        .filter(|e| e.flags as u64 & c::GUARD_EV_AUDIT != 0)
        .count();
    assert!(audited >= 3, "audit events: {audited}");
    assert!(evs
        .iter()
        .all(|e| e.flags as u64 & c::GUARD_EV_DROPPED == 0));
}

#[test]
fn reload_changes_verdict_of_existing_flows() {
    require_root!();
    let p = pair();
    servers(&p.b, &[5001], &[5002]);
    let g = attach(&p, POLICY, &[Hook::TcIngress, Hook::TcEgress]);
    let u4 = udp_client(&p, B4);
    let u6 = udp_client(&p, B6);
    assert!(udp_echo_on(&u4, B4, 5002));
    assert!(udp_echo_on(&u6, B6, 5002));
    // an established TCP connection
    let mut tcp = in_ns(&p.a, || TcpStream::connect((B4, 5001)).unwrap());
    tcp.set_read_timeout(Some(Duration::from_millis(800)))
        .unwrap();
    let mut buf = [0u8; 4];
    tcp.write_all(b"abcd").unwrap();
    tcp.read_exact(&mut buf).unwrap();

    let deny = POLICY
        .replace(
            "port: \"5002-5003\", action: allow",
            "port: \"5002-5003\", action: deny",
        )
        .replace("port: 5002, action: allow", "port: 5002, action: deny")
        .replace("port: 5001, action: allow", "port: 5001, action: deny");
    let (gen, _) = g.install(&Policy::from_yaml(&deny).unwrap()).unwrap();
    let before = g.maps.counters().unwrap();
    // same sockets = same 5-tuples = same cached sessions; now re-evaluated and denied
    assert!(
        !udp_echo_on(&u4, B4, 5002),
        "existing v4 UDP flow denied after reload"
    );
    assert!(
        !udp_echo_on(&u6, B6, 5002),
        "existing v6 UDP flow denied after reload"
    );
    tcp.write_all(b"efgh").unwrap();
    assert!(
        tcp.read_exact(&mut buf).is_err(),
        "existing TCP flow denied after reload"
    );
    let after = g.maps.counters().unwrap();
    assert!(
        after.get(c::GUARD_C_REEVALUATED) - before.get(c::GUARD_C_REEVALUATED) >= 3,
        "{after:?}"
    );
    let sess = g.maps.sessions().unwrap();
    let udp: Vec<_> = sess
        .iter()
        .filter(|(k, _)| k.proto == 17 && (k.pa == 5002 || k.pb == 5002))
        .collect();
    assert_eq!(udp.len(), 2);
    assert!(udp
        .iter()
        .all(|(_, v)| v.generation == gen && v.action == 1));
    // and back: reload the allowing policy, the same flow passes again
    g.install(&Policy::from_yaml(POLICY).unwrap()).unwrap();
    assert!(
        udp_echo_on(&u4, B4, 5002),
        "allowed again after second reload"
    );
}

#[test]
fn counters_match_traffic_sent() {
    require_root!();
    let p = pair();
    servers(&p.b, &[], &[5002, 5006]);
    // ingress only: every packet the client sends is seen exactly once
    let g = attach(&p, POLICY, &[Hook::TcIngress]);
    let before = g.maps.counters().unwrap();
    let u = udp_client(&p, B4);
    let (n_ok, n_deny, n_ping) = (40u64, 25u64, 5u64);
    let mut payload = [0u8; 100];
    payload[..4].copy_from_slice(b"mute");
    for _ in 0..n_ok {
        u.send_to(&payload, (B4, 5002)).unwrap();
    }
    for _ in 0..n_deny {
        u.send_to(&payload, (B4, 5006)).unwrap();
    }
    assert!(ping(&p, B4, n_ping as u32));
    std::thread::sleep(Duration::from_millis(200));
    let after = g.maps.counters().unwrap();
    let d = |i: u64| after.get(i) - before.get(i);
    let sess = g.maps.sessions().unwrap();
    let find = |port: u16| {
        sess.iter()
            .find(|(k, _)| k.proto == 17 && (k.pa == port || k.pb == port))
            .map(|(_, v)| *v)
            .unwrap()
    };
    let ok = find(5002);
    let dn = find(5006);
    let frame = 14 + 20 + 8 + 100;
    assert_eq!(ok.pkts[0] + ok.pkts[1], n_ok);
    assert_eq!(ok.bytes[0] + ok.bytes[1], n_ok * frame);
    assert_eq!(dn.pkts[0] + dn.pkts[1], n_deny);
    assert_eq!(d(c::GUARD_C_DROPPED), n_deny, "dropped");
    let icmp = sess
        .iter()
        .find(|(k, _)| k.proto == 1)
        .map(|(_, v)| *v)
        .unwrap();
    assert_eq!(icmp.pkts[0] + icmp.pkts[1], n_ping, "echo requests");
    // every IPv4 packet is allowed, logged or denied; policy lookups = new sessions (3)
    let ip = d(c::GUARD_C_PACKETS) - d(c::GUARD_C_NON_IP);
    assert_eq!(
        d(c::GUARD_C_ALLOWED) + d(c::GUARD_C_LOGGED) + d(c::GUARD_C_DENIED),
        ip
    );
    assert!(ip >= n_ok + n_deny + n_ping);
    assert_eq!(d(c::GUARD_C_CACHE_MISS), d(c::GUARD_C_POLICY_LOOKUPS));
}

#[test]
fn xdp_hook_blocks_denied_and_passes_allowed() {
    require_root!();
    let p = pair();
    servers(&p.b, &[5001, 5004], &[]);
    let policy = Policy::from_yaml(POLICY).unwrap();
    let mut g = Guard::load_for(65536, true).expect("load xdp guard");
    g.install(&policy).unwrap();
    in_ns(&p.b, || g.attach(&p.b_if, Hook::Xdp).expect("attach xdp"));
    // XDP sees ingress only: the server's replies leave untouched, requests are filtered
    assert!(tcp_echo(&p, B4, 5001), "allowed tcp over XDP");
    assert!(tcp_echo(&p, B6, 5001), "allowed tcp6 over XDP");
    assert!(!tcp_echo(&p, B4, 5004), "denied tcp over XDP");
    assert!(ping(&p, B4, 1) && ping(&p, B6, 1));
    let cnt = g.maps.counters().unwrap();
    assert!(
        cnt.get(c::GUARD_C_DROPPED) >= 1 && cnt.get(c::GUARD_C_CACHE_HIT) >= 3,
        "{cnt:?}"
    );
}

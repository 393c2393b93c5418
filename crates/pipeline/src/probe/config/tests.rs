//! Tests of the probe's configuration: keys, bounds, lines of errors.

use super::*;

#[test]
fn sizes_and_units() {
    assert_eq!(parse_size("4096").unwrap(), 4096);
    assert_eq!(parse_size("64k").unwrap(), 64 << 10);
    assert_eq!(parse_size("10G").unwrap(), 10 << 30);
    assert!(parse_size("3X").is_err());
    assert!(parse_size("99999999999T").is_err());
}

#[test]
fn the_example_file_is_valid() {
    let text = include_str!("../../../../../examples/probe.yaml");
    let c = ProbeConfig::from_yaml(text, "examples/probe.yaml").unwrap();
    assert!(!c.sinks.is_empty());
    assert!(c.analyses.flows.is_some() && c.analyses.http.is_some());
}

#[test]
fn errors_name_the_key_and_the_line() {
    let e = ProbeConfig::from_yaml("probe:\n  name: p1\n  colour: red\n", "p.yaml").unwrap_err();
    assert_eq!(e.line, Some(3), "{e}");
    assert!(e.to_string().contains("colour"), "{e}");
    let e = ProbeConfig::from_yaml(
        "capture:\n  interfaces:\n    - name: eth0\n      threads: 0\n",
        "p.yaml",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    assert!(e.to_string().contains("threads must be 1..=64"), "{e}");
    let e = ProbeConfig::from_yaml(
        "sinks:\n  - type: files\n    dir: /tmp/x\n    streams: [flows, dns_stuff]\n",
        "p.yaml",
    )
    .unwrap_err();
    assert_eq!(e.line, Some(4), "{e}");
    let e = ProbeConfig::from_yaml("metrics:\n  listen: 0.0.0.0:9464\n", "p.yaml").unwrap_err();
    assert!(e.to_string().contains("token is required"), "{e}");
    let e = ProbeConfig::from_yaml("sinks:\n  - type: kafka\n    url: x\n", "p.yaml").unwrap_err();
    assert_eq!(e.line, Some(2), "{e}");
}

#[test]
fn the_guard_section_is_checked_with_its_key_and_line() {
    let ok = "guard:\n  interface: eth0\n  ingress: true\n  policy:\n    default: allow\n    rules:\n      - {name: no-dns, proto: udp, port: 53, action: deny}\n";
    let c = ProbeConfig::from_yaml(ok, "p.yaml").unwrap();
    let g = c.guard.unwrap();
    assert_eq!(g.interface, "eth0");
    assert_eq!(g.hooks(), vec![netspectra_guard::Hook::TcIngress]);
    for (bad, line, says) in [
        ("guard:\n  interface: eth0\n  hook: tc\n  policy: {default: allow}\n", 3, "hook"),
        ("guard:\n  interface: eth0\n  xdp: true\n  egress: true\n  policy: {default: allow}\n", 4, "egress"),
        (
            "sinks: []\nguard:\n  interface: eth0\n  policy:\n    rules:\n      - name: a\n        action: allow\n      - name: b\n        proto: icmp\n        port: 7\n        action: deny\n",
            10,
            ".port",
        ),
        ("guard:\n  interface: eth0\n  policy:\n    defualt: allow\n", 4, "defualt"),
        ("guard:\n  interface: eth0\n  policy: /nonexistent/policy.yaml\n", 3, "/nonexistent/policy.yaml"),
        ("guard:\n  interface: eth0\n  max_sessions: 0\n  policy: {default: allow}\n", 3, "max_sessions"),
        ("guard:\n  policy: {default: allow}\n", 2, "interface"),
    ] {
        let e = ProbeConfig::from_yaml(bad, "p.yaml").unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
        assert_eq!(e.line, Some(line), "{bad}: {e}");
    }
}

#[test]
fn nats_sinks_are_checked() {
    let ok = "sinks:\n  - type: nats\n    url: nats://127.0.0.1:4222,h2\n    streams: [flows, http]\n    \
              stream_replicas: 3\n    spool:\n      dir: /tmp/s\n      max: 1G\n";
    let c = ProbeConfig::from_yaml(ok, "p.yaml").unwrap();
    assert!(matches!(
        &c.sinks[0],
        SinkSection::Nats {
            stream_replicas: Some(3),
            ..
        }
    ));
    for (bad, says) in [
        (
            "sinks:\n  - type: nats\n    url: http://x\n",
            "bad NATS URL",
        ),
        (
            "sinks:\n  - type: nats\n    url: nats://h\n    stream_replicas: 9\n",
            "1 to 5",
        ),
        (
            "sinks:\n  - type: nats\n    url: nats://h\n    spool:\n      dir: /x\n      max: 4k\n",
            "at least 1M",
        ),
    ] {
        let e = ProbeConfig::from_yaml(bad, "p.yaml").unwrap_err();
        assert!(e.to_string().contains(says), "{bad}: {e}");
    }
    let v = crate::probe::shortcut_sinks(None, None, &["nats://a:1,b:2".to_string()]).unwrap();
    assert!(matches!(&v[0], SinkSection::Nats { url, .. } if url == "nats://a:1,b:2"));
}

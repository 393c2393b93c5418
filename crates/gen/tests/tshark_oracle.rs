//! Independent oracle: tshark, capinfos and editcap read a generated capture and must agree with
//! the truth (packet count, no malformed packets or bad checksums, HTTP/DNS/TLS counts,
//! duplicates removed by `editcap -d`). Skipped with a message when the tools are missing.

use netspectra_gen::{generate, GenConfig, Truth};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::Path;
use std::process::Command;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    s
}

/// `tshark -T fields` values of one field, split on the occurrence separator.
fn field_values(file: &Path, decode_as: &[String], filter: &str, field: &str) -> Vec<String> {
    let mut args: Vec<String> = vec!["-n".into(), "-r".into(), file.display().to_string()];
    args.extend(decode_as.iter().cloned());
    args.extend(["-Y", filter, "-T", "fields", "-e", field].map(String::from));
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = Command::new("tshark").args(&argv).output().expect("tshark");
    assert!(out.status.success(), "tshark {argv:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .flat_map(|l| l.split([',', '\t']))
        .filter(|v| !v.is_empty())
        .map(String::from)
        .collect()
}

fn count(values: Vec<String>) -> BTreeMap<String, u64> {
    let mut m = BTreeMap::new();
    for v in values {
        *m.entry(v).or_insert(0) += 1;
    }
    m
}

fn capinfos_count(file: &Path) -> u64 {
    let s = run("capinfos", &["-c", "-M", &file.display().to_string()]);
    s.lines()
        .find_map(|l| l.strip_prefix("Number of packets:"))
        .expect("capinfos output")
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn tshark_capinfos_and_editcap_agree_with_the_truth() {
    if !(have("tshark") && have("capinfos") && have("editcap")) {
        netspectra_testnet::skip(
            "tshark oracle",
            "tshark/capinfos/editcap not installed (run scripts/setup.sh)",
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gen.pcap");
    let cfg = GenConfig {
        seed: 11,
        packets: Some(30_000),
        ..GenConfig::default()
    };
    let t: Truth = generate(&cfg, File::create(&file).unwrap()).unwrap();
    let f = file.display().to_string();

    // Packet counts.
    assert_eq!(capinfos_count(&file), t.packets, "capinfos packet count");
    let io = run("tshark", &["-n", "-r", &f, "-q", "-z", "io,stat,0"]);
    let frames: u64 = io
        .lines()
        .filter(|l| l.contains("<>"))
        .map(|l| l.split('|').nth(2).unwrap().trim().parse::<u64>().unwrap())
        .sum();
    assert_eq!(frames, t.packets, "tshark io,stat frames\n{io}");

    // No bad checksum anywhere (IPv4, TCP, UDP, ICMP, ICMPv6 all verified).
    let checks = [
        "-o",
        "tcp.check_checksum:TRUE",
        "-o",
        "udp.check_checksum:TRUE",
        "-o",
        "ip.check_checksum:TRUE",
    ]
    .map(String::from);
    let bad = field_values(
        &file,
        &checks,
        "ip.checksum.status == \"Bad\" || tcp.checksum.status == \"Bad\" || \
         udp.checksum.status == \"Bad\" || icmp.checksum.status == \"Bad\" || \
         icmpv6.checksum.status == \"Bad\"",
        "frame.number",
    );
    assert!(bad.is_empty(), "bad checksum in frames {bad:?}");
    // Malformed or error-level expert items may only come from duplicates: tshark reports
    // "new fragment overlaps old data" when a duplicated segment of a PDU being reassembled
    // arrives within its out-of-order time window. Without the duplicates nothing is reported.
    let dup_frames: BTreeSet<String> = t
        .duplicates
        .list
        .iter()
        .map(|d| (d[1] + 1).to_string())
        .collect();
    let errors = field_values(
        &file,
        &checks,
        "_ws.malformed || _ws.expert.severity >= error",
        "frame.number",
    );
    for e in &errors {
        assert!(
            dup_frames.contains(e),
            "malformed/expert error on non-duplicate frame {e}"
        );
    }

    // HTTP, on the file with duplicates (tshark does not report a duplicated segment twice).
    let decode_as: Vec<String> = t
        .http
        .by_port
        .keys()
        .flat_map(|p| ["-d".to_string(), format!("tcp.port=={p},http")])
        .collect();
    let methods = count(field_values(
        &file,
        &decode_as,
        "http.request",
        "http.request.method",
    ));
    assert_eq!(methods, t.http.by_method, "HTTP requests by method");
    let statuses = count(field_values(
        &file,
        &decode_as,
        "http.response",
        "http.response.code",
    ));
    assert_eq!(statuses, t.http.by_status, "HTTP responses by status");
    assert_eq!(methods.values().sum::<u64>(), t.http.requests);
    assert_eq!(statuses.values().sum::<u64>(), t.http.responses);
    let hosts = count(field_values(&file, &decode_as, "http.request", "http.host"));
    assert_eq!(hosts, t.http.by_host, "HTTP requests by host");

    // editcap -d removes exactly the generator's duplicates.
    let dedup = dir.path().join("dedup.pcap");
    let out = run("editcap", &["-d", &f, &dedup.display().to_string()]);
    let skipped: u64 = out
        .split(" packets skipped")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected editcap output: {out}"));
    assert_eq!(skipped, t.duplicates.frames, "editcap -d removed");
    assert_eq!(capinfos_count(&dedup), t.packets - t.duplicates.frames);
    let errors = field_values(
        &dedup,
        &checks,
        "_ws.malformed || _ws.expert.severity >= error",
        "frame.number",
    );
    assert!(
        errors.is_empty(),
        "deduplicated capture: problems in frames {errors:?}"
    );

    // DNS and TLS record counts on the deduplicated file.
    let none: Vec<String> = vec!["-d".into(), "tcp.port==8443,tls".into()];
    let q = field_values(&dedup, &none, "dns.flags.response == 0", "frame.number");
    let r = field_values(&dedup, &none, "dns.flags.response == 1", "frame.number");
    assert_eq!(q.len() as u64, t.dns.queries, "DNS queries");
    assert_eq!(r.len() as u64, t.dns.responses, "DNS responses");
    let mut types = count(field_values(
        &dedup,
        &none,
        "tls",
        "tls.record.content_type",
    ));
    for (k, v) in count(field_values(&dedup, &none, "tls", "tls.record.opaque_type")) {
        *types.entry(k).or_insert(0) += v;
    }
    let get = |k: &str| types.get(k).copied().unwrap_or(0);
    assert_eq!(get("22"), t.tls.handshake_records, "TLS handshake records");
    assert_eq!(get("20"), t.tls.ccs_records, "TLS ChangeCipherSpec records");
    assert_eq!(get("21"), t.tls.alert_records, "TLS alert records");
    assert_eq!(
        get("23"),
        t.tls.app_data_records,
        "TLS application-data records"
    );
}

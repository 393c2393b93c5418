//! `netspectra flows --export clickhouse://...` against a real ClickHouse server (Debian's
//! clickhouse-server, started here on free loopback ports in a temporary directory and killed
//! on drop): every row ClickHouse stores equals our JSON-lines record of the same flow, field by
//! field. Skips with a message when clickhouse-server is not installed.

#[path = "flows_common.rs"]
mod common;
use common::*;

#[path = "support/clickhouse.rs"]
mod clickhouse;
use clickhouse::{query, ClickHouse};

#[test]
fn clickhouse_stores_exactly_our_records() {
    let dir = tempfile::tempdir().unwrap();
    let Some(srv) = ClickHouse::start(dir.path()) else {
        return;
    };
    let (cap, truth) = gen(dir.path(), "c", 4000, 41);
    let recs = dir.path().join("flows.jsonl");
    let url = format!("clickhouse://127.0.0.1:{}/netspectra.flows", srv.http);
    let out = run(&[
        "flows",
        &cap,
        "-q",
        "--json",
        "--records",
        recs.to_str().unwrap(),
        "--export",
        &url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let ours = jsonl(&recs);
    assert_eq!(
        s["clickhouse"]["rows"].as_u64(),
        Some(ours.len() as u64),
        "{s}"
    );

    // Every stored row, as ClickHouse renders it, equals our record of that flow.
    let cols = "start, end, duration, src_ip, src_port, dst_ip, dst_port, proto, vlan, \
                community_id, fwd_packets, fwd_bytes, fwd_ip_bytes, rev_packets, rev_bytes, \
                rev_ip_bytes, fwd_tcp_flags, rev_tcp_flags, end_reason";
    let text = query(
        srv.http,
        &format!("SELECT {cols} FROM netspectra.flows FORMAT JSONEachRow"),
    )
    .expect("select");
    let key = |v: &serde_json::Value| {
        format!(
            "{} {} {} {} {} {} {}",
            v["start"],
            v["src_ip"],
            v["src_port"],
            v["dst_ip"],
            v["dst_port"],
            v["proto"],
            v["vlan"]
        )
    };
    let mut theirs: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut ours = ours;
    theirs.sort_by_key(key);
    ours.sort_by_key(key);
    assert_eq!(theirs.len(), ours.len());
    for (t, o) in theirs.iter_mut().zip(ours.iter_mut()) {
        // Durations as numbers: a Float64 of 0 comes back as `0` (ours reads `0.0`), and
        // ClickHouse 18.16 parses decimal floats up to one unit in the last place off
        // (5.236e-6 is stored as 5.2359999999999995e-6); start and end are exact strings.
        let (dt, d_o) = (
            t["duration"].as_f64().unwrap(),
            o["duration"].as_f64().unwrap(),
        );
        assert!(
            (dt - d_o).abs() <= d_o.abs() * 4.0 * f64::EPSILON,
            "{dt} vs {d_o}"
        );
        for v in [&mut *t, &mut *o] {
            v["duration"] = serde_json::Value::Null;
        }
        assert_eq!(t, o, "stored row differs from our record");
    }
    let total = query(
        srv.http,
        "SELECT sum(fwd_packets + rev_packets) FROM netspectra.flows",
    )
    .unwrap();
    assert_eq!(total.trim(), truth["packets"].to_string());

    // A second run appends to the existing table.
    let out = run(&["flows", &cap, "-q", "--no-records", "--export", &url]);
    assert!(out.status.success());
    let n = query(srv.http, "SELECT count() FROM netspectra.flows").unwrap();
    assert_eq!(n.trim(), (2 * ours.len()).to_string());

    // A server that is down is an error naming it (exit 1); a bad table name is bad input.
    let port = srv.http;
    drop(srv);
    let out = run(&["flows", &cap, "-q", "--no-records", "--export", &url]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    let out = run(&[
        "flows",
        &cap,
        "-q",
        "--export",
        &format!("clickhouse://127.0.0.1:{port}/a;drop"),
    ]);
    assert_eq!(out.status.code(), Some(2));
}

//! The store sink under the delivery runner: every record lands once, with its columns.

use super::*;
use netspectra_flow::{EndReason, EndedFlow};
use netspectra_packet::FlowKey;
use netspectra_sinks::delivery::{DeliveryConfig, SinkRunner};
use netspectra_sinks::stream::Stream;

fn flow(i: u16) -> EndedFlow {
    EndedFlow {
        key: FlowKey {
            src: [10, 0, 0, 1].into(),
            dst: [10, 0, 0, 2].into(),
            src_port: 1000 + i,
            dst_port: 80,
            proto: 6,
            vlan: if i.is_multiple_of(2) { Some(7) } else { None },
        },
        first: 1_700_000_000_000_000_000 + i64::from(i) * 1_000_000_000,
        last: 1_700_000_001_000_000_000 + i64::from(i) * 1_000_000_000,
        packets: [3, 2],
        bytes: [300, 200],
        ip_bytes: [258, 172],
        tcp_flags: [0x1b, 0x1a],
        icmp_code: [0, 0],
        reason: EndReason::Fin,
    }
}

#[test]
fn flows_views_and_events_land_once_with_their_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let sink = StoreSink::open(&path, "p1", Routes::all()).unwrap();
    let stats = sink.stats();
    let r = SinkRunner::start(Box::new(sink), &Routes::all(), DeliveryConfig::default()).unwrap();
    let flows: Vec<EndedFlow> = (0..5).map(flow).collect();
    r.push(&Arc::new(Batch::new(
        Stream::of(StreamKind::Flows),
        0,
        Payload::Flows(flows),
    )));
    r.push(&Arc::new(Batch::encoded(
        Stream::view("src_ip"),
        0,
        2,
        b"{\"interval_start\":\"2023-11-14T22:13:20.000000000Z\",\"src_ip\":\"10.0.0.1\",\"bytes\":5}\n\
          {\"interval_start\":\"2023-11-14T22:13:20.000000000Z\",\"src_ip\":\"10.0.0.2\",\"bytes\":7}\n"
            .to_vec(),
    )));
    r.push(&Arc::new(Batch::encoded(
        Stream::of(StreamKind::Alerts),
        0,
        1,
        b"{\"time\":1700000000,\"rule\":\"scan\",\"state\":\"firing\"}\n".to_vec(),
    )));
    let (rep, closed) = r.close(true);
    assert_eq!(rep.delivered, 8, "{rep:?}");
    assert_eq!(closed.unwrap().files, vec![path.clone()]);
    assert_eq!(stats.rows.load(Ordering::Relaxed), 8);
    let c = open_read(&path).unwrap();
    let q = |sql: &str| -> i64 { c.query_row(sql, [], |r| r.get(0)).unwrap() };
    assert_eq!(q("SELECT count(*) FROM flows"), 5);
    assert_eq!(q("SELECT sum(fwd_bytes + rev_bytes) FROM flows"), 2500);
    assert_eq!(q("SELECT count(*) FROM flows WHERE vlan = 7"), 3);
    assert_eq!(q("SELECT min(start_time) FROM flows"), 1_700_000_000);
    assert_eq!(
        q("SELECT count(*) FROM flows WHERE probe = 'p1' AND end_reason = 'fin' AND community_id LIKE '1:%'"),
        5
    );
    assert_eq!(q("SELECT sum(bytes) FROM view_src_ip"), 12);
    assert_eq!(q("SELECT min(time) FROM view_src_ip"), 1_700_000_000);
    assert_eq!(q("SELECT count(*) FROM alerts WHERE json LIKE '%scan%'"), 1);
    assert!(c.execute_batch("DELETE FROM flows").is_err(), "read-only");
}

/// Flow rows with repeats, missing ports, several days and probes, inserted one by one.
fn fill_flows(c: &Connection, n: u64) {
    let mut x: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let port: Option<i64> = if x.is_multiple_of(7) {
            None
        } else {
            Some([80, 443, 53][(x % 3) as usize])
        };
        c.execute(
            "INSERT INTO flows (src_ip, dst_ip, dst_port, proto, fwd_packets, rev_packets, \
             fwd_bytes, rev_bytes, start_time, probe) VALUES (?,?,?,?,?,?,?,?,?,?)",
            rusqlite::params![
                format!("10.0.{}.{}", x % 3, (x >> 8) % 5),
                format!("192.0.2.{}", (x >> 16) % 7),
                port,
                if port == Some(53) { 17 } else { 6 },
                (x >> 20) % 9,
                (x >> 24) % 4,
                (x >> 28) % 9000,
                (x >> 36) % 500,
                1_700_000_000 + (i as i64) * 977,
                ["p1", "p2"][(x >> 40) as usize % 2],
            ],
        )
        .unwrap();
    }
}

/// Per (address, port, proto, probe): packets, bytes, flows, first, last, from the flow rows
/// and from a rollup.
fn raw_and_rolled(c: &Connection, table: &str, ip: &str) -> (Vec<Vec<String>>, Vec<Vec<String>>) {
    let q = |sql: &str| -> Vec<Vec<String>> {
        let mut st = c.prepare(sql).unwrap();
        let rows = st
            .query_map([], |r| {
                (0..8)
                    .map(|i| {
                        r.get::<_, rusqlite::types::Value>(i)
                            .map(|v| format!("{v:?}"))
                    })
                    .collect::<Result<Vec<_>, _>>()
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    let raw = q(&format!(
        "SELECT \"{ip}\", dst_port, proto, probe, sum(fwd_packets + rev_packets), \
         sum(fwd_bytes + rev_bytes), count(*), min(start_time) || '-' || max(start_time) \
         FROM flows GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ));
    let rolled = q(&format!(
        "SELECT nullif(\"{ip}\", ''), nullif(dst_port, -1), nullif(proto, -1), probe, \
         sum(packets), sum(bytes), sum(flows), min(first) || '-' || max(last) \
         FROM \"{table}\" GROUP BY 1, 2, 3, 4 ORDER BY 1, 2, 3, 4"
    ));
    (raw, rolled)
}

#[test]
fn rollups_equal_the_flow_rows_when_kept_by_trigger_and_when_filled_later() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let c = open_write(&path).unwrap();
    ensure_base_tables(&c).unwrap();
    fill_flows(&c, 3000);
    for (t, ip) in schema::ROLLUPS {
        let (raw, rolled) = raw_and_rolled(&c, t, ip);
        assert!(raw.len() > 50, "{}", raw.len());
        assert_eq!(raw, rolled, "{t} kept by its trigger");
    }
    // A store from before the rollups: no rollup tables nor triggers; opening it fills them.
    for (t, _) in schema::ROLLUPS {
        c.execute_batch(&format!("DROP TRIGGER \"{t}_add\"; DROP TABLE \"{t}\";"))
            .unwrap();
    }
    fill_flows(&c, 500);
    ensure_base_tables(&c).unwrap();
    for (t, ip) in schema::ROLLUPS {
        let (raw, rolled) = raw_and_rolled(&c, t, ip);
        assert_eq!(raw, rolled, "{t} filled from the stored flows");
    }
    // And the triggers keep them after that.
    fill_flows(&c, 200);
    for (t, ip) in schema::ROLLUPS {
        let (raw, rolled) = raw_and_rolled(&c, t, ip);
        assert_eq!(raw, rolled, "{t} kept after the fill");
    }
}

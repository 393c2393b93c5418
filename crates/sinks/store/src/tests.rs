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

//! The engine on snapshots made by hand: thresholds with `for`, shares, HTTP error rates, drop
//! ratios; every change of state is one event, and nothing is sent again while it holds.

use super::*;

fn rule(yaml: &str) -> Rule {
    serde_yaml::from_str(yaml).unwrap()
}

fn snap(minute: i64, rows: &[(&str, u64, u64)]) -> (i64, Vec<u8>) {
    let end = 1_700_000_040 + 60 * minute;
    let mut out = Vec::new();
    for (ip, bytes, ports) in rows {
        out.extend_from_slice(
            format!(
                "{{\"interval_start\":\"x\",\"interval_end\":\"x\",\"src_ip\":\"{ip}\",\"bytes\":{bytes},\"distinct_dst_port\":{ports}}}\n"
            )
            .as_bytes(),
        );
    }
    (end, out)
}

#[test]
fn a_threshold_fires_once_after_its_for_and_resolves_once() {
    let r = rule(
        "name: scan\nmeasure: threshold\nview: by_src\nmetric: distinct_dst_port\nabove: 100\nfor: 120\nseverity: critical\nlabels: {team: net}\n",
    );
    let mut e = Engine::new(vec![r]);
    let mut all = Vec::new();
    for (m, ports) in [(0, 500), (1, 600), (2, 700), (3, 800), (4, 5), (5, 5)] {
        let (t, s) = snap(m, &[("10.0.0.9", 10, ports), ("10.0.0.1", 99, 3)]);
        let ev = e.on_snapshot("by_src", t, &s);
        assert!(e.on_snapshot("other_view", t, &s).is_empty());
        all.push((m, ev));
    }
    let firing: Vec<_> = all.iter().filter(|(_, v)| !v.is_empty()).collect();
    assert_eq!(firing.len(), 2, "{all:?}");
    let (m, ev) = firing[0];
    assert_eq!(*m, 2, "fires once above for 120 s: at the third snapshot");
    assert_eq!(ev[0].state, "firing");
    assert_eq!(ev[0].key, "src_ip=10.0.0.9");
    assert_eq!(ev[0].value, 700.0);
    assert_eq!(ev[0].labels["team"], "net");
    assert_eq!(ev[0].severity, "critical");
    let (m, ev) = firing[1];
    assert_eq!((*m, ev[0].state, ev[0].value), (4, "resolved", 5.0));
    assert!(e.firing().is_empty());
}

#[test]
fn a_heavy_hitter_share_and_a_key_that_goes_away() {
    let r = rule("name: hh\nmeasure: share\nview: by_src\nmetric: bytes\nabove: 0.5\n");
    let mut e = Engine::new(vec![r]);
    let (t, s) = snap(0, &[("a", 900, 0), ("b", 50, 0), ("c", 50, 0)]);
    let ev = e.on_snapshot("by_src", t, &s);
    assert_eq!(ev.len(), 1);
    assert_eq!((ev[0].key.as_str(), ev[0].value), ("src_ip=a", 0.9));
    let (t, s) = snap(1, &[("a", 800, 0), ("b", 200, 0)]);
    assert!(
        e.on_snapshot("by_src", t, &s).is_empty(),
        "still firing: not sent again"
    );
    assert_eq!(e.firing().len(), 1);
    let (t, s) = snap(2, &[("b", 200, 0), ("c", 300, 0)]);
    let ev = e.on_snapshot("by_src", t, &s);
    assert_eq!((ev[0].state, ev[0].value), ("resolved", 0.0));
}

#[test]
fn http_error_rates_per_host_and_the_drop_ratio() {
    let rules = vec![
        rule("name: errors\nmeasure: http_error_rate\nmin_responses: 10\nabove: 0.2\n"),
        rule("name: drops\nmeasure: drop_ratio\nabove: 0.01\nseverity: critical\n"),
    ];
    check_rules(&rules, &[]).unwrap();
    let mut e = Engine::new(rules);
    let mut lines = String::new();
    for i in 0..20 {
        let st = if i < 5 { 503 } else { 200 };
        lines.push_str(&format!(
            "{{\"type\":\"response\",\"host\":\"bad.example\",\"status\":{st}}}\n{{\"type\":\"response\",\"host\":\"ok.example\",\"status\":200}}\n{{\"type\":\"request\",\"host\":\"bad.example\"}}\n"
        ));
    }
    lines.push_str("{\"type\":\"response\",\"host\":\"few.example\",\"status\":500}\n");
    e.on_http(lines.as_bytes());
    let ev = e.end_interval(100, Some((1000, 50)));
    let mut got: Vec<(&str, &str, f64)> = ev
        .iter()
        .map(|x| (x.rule.as_str(), x.key.as_str(), x.value))
        .collect();
    got.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        got,
        vec![
            ("drops", "capture", 0.05),
            ("errors", "host=bad.example", 0.25)
        ]
    );
    // The next interval: no errors, few drops (counters are totals): both resolve.
    e.on_http(b"{\"type\":\"response\",\"host\":\"bad.example\",\"status\":200}\n");
    let ev = e.end_interval(160, Some((3000, 51)));
    assert_eq!(ev.len(), 2);
    assert!(ev.iter().all(|x| x.state == "resolved"));
}

#[test]
fn rules_are_checked_against_the_views() {
    let views = vec![(
        "by_src".to_string(),
        vec!["packets".to_string(), "distinct_dst_port".to_string()],
    )];
    let ok = rule("name: a\nmeasure: threshold\nview: by_src\nmetric: packets\nabove: 1\n");
    assert!(check_rules(std::slice::from_ref(&ok), &views).is_ok());
    let e = check_rules(
        &[rule(
            "name: a\nmeasure: threshold\nview: nope\nmetric: packets\nabove: 1\n",
        )],
        &views,
    )
    .unwrap_err();
    assert!(e.message.contains("not configured"), "{e}");
    let e = check_rules(
        &[rule(
            "name: a\nmeasure: share\nview: by_src\nmetric: distinct_dst_ip\nabove: 1\n",
        )],
        &views,
    )
    .unwrap_err();
    assert!(e.message.contains("no metric"), "{e}");
    assert!(check_rules(&[ok.clone(), ok.clone()], &views).is_err());
    let mut bad = ok;
    bad.severity = "loud".into();
    assert!(check_rules(&[bad], &views).is_err());
    assert!(
        serde_yaml::from_str::<Rule>("name: a\nmeasure: drop_ratio\nabove: 1\ncolour: red\n")
            .is_err()
    );
}

#[test]
fn metrics_show_what_fires_and_the_events_sent() {
    let r = rule("name: hh\nmeasure: share\nview: by_src\nmetric: bytes\nabove: 0.5\n");
    let mut e = Engine::new(vec![r]);
    let m = AlertMetrics::default();
    let (t, s) = snap(0, &[("a", 900, 0), ("b", 100, 0)]);
    let ev = e.on_snapshot("by_src", t, &s);
    m.update(&e, &ev);
    let text = m.render();
    assert!(
        text.contains(
            "netspectra_alert_firing{rule=\"hh\",severity=\"warning\",key=\"src_ip=a\"} 1"
        ),
        "{text}"
    );
    assert!(
        text.contains("netspectra_alert_events_total{rule=\"hh\",state=\"firing\"} 1"),
        "{text}"
    );
}

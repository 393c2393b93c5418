//! What a running guard reports: its deny/log events as JSON lines (what `netspectra guard run
//! --events` and `guard events` print, and the `guard` record stream of the probe carries) and
//! its counters as Prometheus metrics.

use crate::abi::{c, GuardEvent};
use crate::policy::{rule_name, u128_to_ip};
use crate::{Maps, Rule};
use netspectra_metrics::{Exposition, Kind};

/// CLOCK_REALTIME in ns.
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// The name of an IP protocol number (`tcp`, `udp`, ...; the number otherwise).
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        58 => "icmpv6".into(),
        132 => "sctp".into(),
        n => n.to_string(),
    }
}

/// The name of a BPF action code (`?` for an unknown one).
pub fn action_name(a: u32) -> &'static str {
    crate::Action::from_code(a)
        .map(|a| a.as_str())
        .unwrap_or("?")
}

/// Renders one event as a JSON object (no newline) into `line`, which is cleared first. Rule
/// names come from `rules` (the installed policy) or else from `names` (rule names published by
/// a running guard).
pub fn event_json(e: &GuardEvent, rules: &[Rule], names: &[String], line: &mut String) {
    use std::fmt::Write as _;
    let now_mono = crate::loader::monotonic_ns();
    let wall = realtime_ns().saturating_sub(now_mono.saturating_sub(e.ts_ns));
    let rule = if !rules.is_empty() {
        rule_name(rules, e.rule_id)
    } else if let Some(n) = names.get(e.rule_id as usize) {
        n.clone()
    } else {
        rule_name(&[], e.rule_id)
    };
    let mut flags = Vec::new();
    if e.flags as u64 & c::GUARD_EV_DROPPED != 0 {
        flags.push("\"dropped\"");
    }
    if e.flags as u64 & c::GUARD_EV_AUDIT != 0 {
        flags.push("\"audit\"");
    }
    if e.flags as u64 & c::GUARD_EV_REEVAL != 0 {
        flags.push("\"reevaluated\"");
    }
    if e.flags as u64 & c::GUARD_EV_NEW != 0 {
        flags.push("\"new_session\"");
    }
    line.clear();
    let _ = write!(
        line,
        "{{\"ts\":{:.6},\"action\":\"{}\",\"rule\":{},\"rule_id\":{},\"src\":\"{}\",\"dst\":\"{}\",\"sport\":{},\"dport\":{},\"proto\":\"{}\",\"len\":{},\"generation\":{},\"flags\":[{}]}}",
        wall as f64 / 1e9,
        action_name(e.action as u32),
        serde_json::Value::String(rule),
        e.rule_id as i64,
        u128_to_ip(u128::from_be_bytes(e.src)),
        u128_to_ip(u128::from_be_bytes(e.dst)),
        e.sport,
        e.dport,
        proto_name(e.proto),
        e.pkt_len,
        e.generation,
        flags.join(",")
    );
}

/// Renders the guard's Prometheus metrics from its maps: every per-CPU counter (summed) as a
/// counter (`netspectra_guard_<name>_total`: allowed, denied, dropped, ...), map fill, policy
/// generation and audit mode as gauges; `netspectra_guard_up` is 0 when the maps cannot be read.
pub fn render_metrics(e: &mut Exposition, iface: &str, maps: &Maps) {
    let l = [("interface", iface)];
    let read = maps
        .counters()
        .and_then(|c| Ok((c, maps.usage()?, maps.config()?)));
    e.sample(
        "netspectra_guard_up",
        Kind::Gauge,
        "1 when the guard's maps could be read.",
        &l,
        if read.is_ok() { 1.0 } else { 0.0 },
    );
    let Ok((counters, usage, cfg)) = read else {
        return;
    };
    let mut name = String::new();
    for (i, n) in crate::abi::COUNTER_NAMES.iter().enumerate() {
        name.clear();
        name.push_str("netspectra_guard_");
        name.push_str(n);
        name.push_str("_total");
        let help = format!("Guard counter {n}, summed over CPUs (see `guard status`).");
        e.sample(&name, Kind::Counter, &help, &l, counters.0[i] as f64);
    }
    for u in &usage {
        if let Some(n) = u.entries {
            let lm = [("interface", iface), ("map", u.name)];
            e.sample(
                "netspectra_guard_map_entries",
                Kind::Gauge,
                "Entries in a BPF map.",
                &lm,
                n as f64,
            );
        }
    }
    for u in &usage {
        let lm = [("interface", iface), ("map", u.name)];
        e.sample(
            "netspectra_guard_map_max_entries",
            Kind::Gauge,
            "Capacity of a BPF map.",
            &lm,
            u.max_entries as f64,
        );
    }
    e.sample(
        "netspectra_guard_policy_generation",
        Kind::Gauge,
        "Generation of the installed policy (grows by one per reload).",
        &l,
        cfg.generation as f64,
    );
    e.sample(
        "netspectra_guard_audit_mode",
        Kind::Gauge,
        "1 when the policy only reports what it would deny.",
        &l,
        (cfg.audit != 0) as u8 as f64,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_renders_as_the_documented_json_line() {
        let mut e = GuardEvent {
            ts_ns: crate::loader::monotonic_ns(),
            sport: 40000,
            dport: 9999,
            proto: 17,
            action: crate::abi::ACT_DENY,
            flags: (c::GUARD_EV_DROPPED | c::GUARD_EV_NEW) as u8,
            rule_id: 0,
            pkt_len: 60,
            generation: 3,
            ..Default::default()
        };
        e.src[10] = 0xff;
        e.src[11] = 0xff;
        e.src[12..].copy_from_slice(&[10, 0, 0, 1]);
        e.dst[10] = 0xff;
        e.dst[11] = 0xff;
        e.dst[12..].copy_from_slice(&[10, 0, 0, 2]);
        let p = crate::Policy::from_yaml(
            "rules:\n  - {name: no9999, proto: udp, port: 9999, action: deny}\ndefault: allow\n",
        )
        .unwrap();
        let mut line = String::new();
        event_json(&e, &p.rules, &[], &mut line);
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["action"], "deny");
        assert_eq!(v["rule"], "no9999");
        assert_eq!(v["src"], "10.0.0.1", "{line}");
        assert_eq!(v["dst"], "10.0.0.2");
        assert_eq!(v["sport"], 40000);
        assert_eq!(v["dport"], 9999);
        assert_eq!(v["proto"], "udp");
        assert_eq!(v["len"], 60);
        assert_eq!(v["generation"], 3);
        assert_eq!(v["flags"], serde_json::json!(["dropped", "new_session"]));
        let now = realtime_ns() as f64 / 1e9;
        assert!((v["ts"].as_f64().unwrap() - now).abs() < 5.0, "{line}");
    }
}

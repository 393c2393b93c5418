//! Flow aggregates answered from the embedded store's per-day rollups (see
//! `netspectra_store::schema::ROLLUPS`) instead of every flow row, when that gives the same
//! answer: whole days (no `from`/`to`, or both on UTC day boundaries), and keys and filters only
//! on what a rollup keeps (its address, destination port, protocol, probe).

use crate::params::{BadRequest, Params};
use crate::queries::{self, Key};
use crate::sql::{Builder, Dialect, Lit, Sql};
use netspectra_store::schema::{ROLLUPS, ROLLUP_BUCKET, ROLLUP_NO_INT, ROLLUP_NO_TEXT};

/// Flow filters no rollup keeps.
const NOT_KEPT: &[&str] = &["ip", "port", "src_port", "vlan"];

/// A rollup able to answer, with the address column it keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rollup {
    table: &'static str,
    ip: &'static str,
}

/// The first day and the day after the last of the range, when the range is whole days.
type Days = (Option<i64>, Option<i64>);

fn whole_days(p: &Params) -> Result<Option<Days>, BadRequest> {
    let mut out = [None, None];
    for (i, name) in ["from", "to"].into_iter().enumerate() {
        if let Some(t) = p.time(name)? {
            if t < 0 || t % ROLLUP_BUCKET != 0 {
                return Ok(None);
            }
            out[i] = Some(t / ROLLUP_BUCKET);
        }
    }
    Ok(Some((out[0], out[1])))
}

/// The rollup that answers flow aggregates by `keys` under the filters of `p` exactly, if any
/// (only for the embedded store).
pub fn choose(d: &Dialect, p: &Params, keys: &[Key]) -> Result<Option<(Rollup, Days)>, BadRequest> {
    if !matches!(d, Dialect::Sqlite) {
        return Ok(None);
    }
    let Some(days) = whole_days(p)? else {
        return Ok(None);
    };
    if NOT_KEPT.iter().any(|f| p.get(f).is_some()) {
        return Ok(None);
    }
    for (table, ip) in ROLLUPS.iter().copied() {
        let other = if ip == "src_ip" { "dst_ip" } else { "src_ip" };
        if p.get(other).is_some() {
            continue;
        }
        let kept = |c: &str| c == ip || matches!(c, "dst_port" | "proto" | "probe");
        if keys.iter().all(|k| kept(k.column)) {
            return Ok(Some((Rollup { table, ip }, days)));
        }
    }
    Ok(None)
}

/// A key of a rollup row as the flow table would give it (absent values back to NULL).
fn key_expr(b: &mut Builder<'_>, k: &Key) {
    match k.column {
        "probe" => {
            b.col("probe");
        }
        "dst_port" | "proto" => {
            b.push("nullif(")
                .col(k.column)
                .push(&format!(", {ROLLUP_NO_INT})"));
        }
        ip => {
            if k.prefix.is_some() {
                b.push("ns_prefix(");
            }
            b.push("nullif(")
                .col(ip)
                .push(&format!(", '{ROLLUP_NO_TEXT}')"));
            if let Some((v4, v6)) = k.prefix {
                b.push(&format!(", {v4}, {v6})"));
            }
        }
    }
}

fn rollup_where(b: &mut Builder<'_>, p: &Params, r: Rollup, days: Days) -> Result<(), BadRequest> {
    b.push(" WHERE 1 = 1");
    if let Some(d) = days.0 {
        b.push(" AND day >= ").val(Lit::Int(d));
    }
    if let Some(d) = days.1 {
        b.push(" AND day < ").val(Lit::Int(d));
    }
    if let Some(n) = p.cidr(r.ip)? {
        b.push(" AND ").in_cidr(r.ip, &n);
    }
    for (c, hi) in [("dst_port", 65_535), ("proto", 255)] {
        if let Some(v) = p.num(c, 0, hi)? {
            b.push(" AND ").col(c).push(" = ").val(Lit::Int(v as i64));
        }
    }
    if let Some(v) = p.token("probe", 64)? {
        b.push(" AND ").col("probe").push(" = ").val(Lit::Text(v));
    }
    Ok(())
}

/// Aggregate by keys from a rollup: the same columns, order and limit as the flow-table query.
pub fn aggregate(
    d: &Dialect,
    p: &Params,
    r: Rollup,
    days: Days,
    keys: &[Key],
    order: &str,
    limit: u64,
) -> Result<Sql, BadRequest> {
    let mut b = Builder::new(d);
    b.push("SELECT ");
    for k in keys {
        key_expr(&mut b, k);
        b.push(" AS ").col(&k.name).push(", ");
    }
    b.push("sum(packets) AS packets, sum(bytes) AS bytes, sum(flows) AS flows FROM ")
        .push(&format!("\"{}\"", r.table));
    rollup_where(&mut b, p, r, days)?;
    queries::group_order_limit(&mut b, keys, key_expr, order, limit);
    Ok(b.finish())
}

/// Totals from a rollup: packets, bytes, flows, first and last flow start.
pub fn totals(d: &Dialect, p: &Params, r: Rollup, days: Days) -> Result<Sql, BadRequest> {
    let mut b = Builder::new(d);
    b.push(
        "SELECT sum(packets) AS packets, sum(bytes) AS bytes, coalesce(sum(flows), 0) AS flows, \
         min(first) AS first, max(last) AS last FROM ",
    )
    .push(&format!("\"{}\"", r.table));
    rollup_where(&mut b, p, r, days)?;
    Ok(b.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Backend, SqliteBackend};
    use crate::queries::{self, parse_keys, FLOW_FILTERS};
    use std::time::Duration;

    /// A store with flows over four days, two probes, IPv4 and IPv6, ICMP without ports.
    fn store() -> (tempfile::TempDir, SqliteBackend) {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.db");
        let c = netspectra_store::open_write(&p).unwrap();
        netspectra_store::ensure_base_tables(&c).unwrap();
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for i in 0..4000i64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let icmp = x.is_multiple_of(11);
            let src = if x.is_multiple_of(5) {
                format!("2001:db8:{}::{}", x % 3, (x >> 9) % 4)
            } else {
                format!("10.{}.{}.{}", x % 2, (x >> 5) % 3, (x >> 9) % 6)
            };
            c.execute(
                "INSERT INTO flows (src_ip, dst_ip, src_port, dst_port, proto, vlan, fwd_packets, \
                 rev_packets, fwd_bytes, rev_bytes, start_time, probe) \
                 VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                rusqlite::params![
                    src,
                    format!("192.0.2.{}", (x >> 13) % 9),
                    (!icmp).then_some(1024 + (x >> 17) % 50),
                    (!icmp).then_some([80u64, 443, 53][(x >> 23) as usize % 3]),
                    if icmp { 1 } else { 6 },
                    x.is_multiple_of(4).then_some(7),
                    ((x >> 27) % 20) as i64,
                    ((x >> 31) % 20) as i64,
                    ((x >> 35) % 20_000) as i64,
                    ((x >> 41) % 9_000) as i64,
                    1_700_006_400 + i * 80,
                    ["p1", "p2"][(x >> 47) as usize % 2],
                ],
            )
            .unwrap();
        }
        drop(c);
        let b = SqliteBackend::open(&p).unwrap();
        (dir, b)
    }

    fn rows(b: &SqliteBackend, sql: &Sql) -> Vec<serde_json::Value> {
        b.run(sql, 100_000, Duration::from_secs(60))
            .unwrap()
            .objects()
    }

    #[test]
    fn rollup_answers_equal_the_flow_table_answers() {
        let (_d, b) = store();
        let d = b.dialect().clone();
        let day = ROLLUP_BUCKET;
        let first_day = 1_700_006_400 / day * day;
        let mut allowed = FLOW_FILTERS.to_vec();
        allowed.extend(["by", "order", "limit"]);
        let mut from_rollup = 0;
        for (q, rolled) in [
            ("by=src_ip&limit=1000", true),
            ("by=dst_ip&order=packets&limit=5", true),
            ("by=src_ip/16/32,dst_port&limit=1000", true),
            ("by=dst_port,proto&order=flows", true),
            ("by=probe,dst_port&src_ip=10.0.0.0/8", true),
            ("by=src_ip&proto=1&limit=1000", true),
            ("by=dst_ip&dst_port=443&probe=p2&limit=1000", true),
            (
                &format!(
                    "by=src_ip&from={}&to={}&limit=1000",
                    first_day + day,
                    first_day + 3 * day
                ),
                true,
            ),
            (
                &format!("by=src_ip&from={}&limit=1000", first_day + day + 60),
                false,
            ),
            ("by=src_port&limit=1000", false),
            ("by=src_ip,dst_ip&limit=1000", false),
            ("by=src_ip&dst_ip=192.0.2.3&limit=1000", false),
            ("by=src_ip&vlan=7&limit=1000", false),
        ] {
            let p = Params::parse(Some(q), &allowed).unwrap();
            let keys = parse_keys(&p, "by", "src_ip").unwrap();
            assert_eq!(choose(&d, &p, &keys).unwrap().is_some(), rolled, "{q}");
            let (sql, _) = queries::aggregate(&d, &p, 100).unwrap();
            let order = p
                .choice("order", &["bytes", "packets", "flows"], "bytes")
                .unwrap();
            let raw =
                queries::aggregate_flows(&d, &p, &keys, order, p.limit(100).unwrap()).unwrap();
            let (got, want) = (rows(&b, &sql), rows(&b, &raw));
            assert!(!want.is_empty(), "{q}");
            assert_eq!(got, want, "{q}");
            let (t, tr) = (
                rows(&b, &queries::totals(&d, &p).unwrap()),
                rows(&b, &queries::totals_flows(&d, &p).unwrap()),
            );
            assert_eq!(t, tr, "totals {q}");
            from_rollup += usize::from(rolled);
        }
        assert!(from_rollup >= 8);
    }

    #[test]
    fn clickhouse_never_uses_the_store_rollups() {
        let p = Params::parse(Some("by=src_ip"), &["by"]).unwrap();
        let keys = parse_keys(&p, "by", "src_ip").unwrap();
        let ch = Dialect::ClickHouse { db: "x".into() };
        assert!(choose(&ch, &p, &keys).unwrap().is_none());
    }
}

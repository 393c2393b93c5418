//! The questions of the API as statements of either dialect, built from checked parameters.

use crate::params::{BadRequest, Cidr, Params};
use crate::rollup;
use crate::sql::{Builder, Dialect, Lit, Sql};

/// Parameters that filter flow records.
pub const FLOW_FILTERS: &[&str] = &[
    "from", "to", "src_ip", "dst_ip", "ip", "src_port", "dst_port", "port", "proto", "vlan",
    "probe",
];

/// A grouping key of flow records.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Key {
    /// The column (`src_ip`, `dst_port`, ...).
    pub column: &'static str,
    /// Prefix lengths for address columns (IPv4, IPv6); None: the whole address.
    pub prefix: Option<(u8, u8)>,
    /// The name of the result column (`src_ip`, `src_ip_24`).
    pub name: String,
}

const KEY_COLUMNS: &[&str] = &[
    "src_ip", "dst_ip", "src_port", "dst_port", "proto", "vlan", "probe",
];

/// Parses a key: `src_ip`, `src_ip/24` (IPv6 at /64), `src_ip/24/48`, `dst_port`, ...
pub fn parse_key(s: &str) -> Result<Key, BadRequest> {
    let mut parts = s.split('/');
    let col = parts.next().unwrap_or("");
    let column = KEY_COLUMNS
        .iter()
        .copied()
        .find(|c| *c == col)
        .ok_or_else(|| {
            BadRequest(format!(
                "key {:?}: one of {} (addresses may take /LEN[/LEN6])",
                s.chars().take(40).collect::<String>(),
                KEY_COLUMNS.join(", ")
            ))
        })?;
    let lens: Vec<&str> = parts.collect();
    if lens.is_empty() {
        return Ok(Key {
            column,
            prefix: None,
            name: column.to_string(),
        });
    }
    if !column.ends_with("_ip") || lens.len() > 2 {
        return Err(BadRequest(format!(
            "key {s:?}: only src_ip and dst_ip take prefix lengths (/LEN or /LEN/LEN6)"
        )));
    }
    let v4: u8 = lens[0]
        .parse()
        .ok()
        .filter(|b| *b <= 32)
        .ok_or_else(|| BadRequest(format!("key {s:?}: IPv4 prefix length must be 0..=32")))?;
    let v6: u8 = match lens.get(1) {
        Some(l) => l
            .parse()
            .ok()
            .filter(|b: &u8| *b <= 128 && b.is_multiple_of(8))
            .ok_or_else(|| {
                BadRequest(format!(
                    "key {s:?}: IPv6 prefix length must be a multiple of 8, 0..=128"
                ))
            })?,
        None => 64,
    };
    Ok(Key {
        column,
        prefix: Some((v4, v6)),
        name: format!("{column}_{v4}"),
    })
}

/// Parses a comma-separated key list (1 to 6 keys, no repeats).
pub fn parse_keys(p: &Params, name: &str, def: &str) -> Result<Vec<Key>, BadRequest> {
    let v = p.get(name).unwrap_or(def);
    let keys: Vec<Key> = v.split(',').map(parse_key).collect::<Result<_, _>>()?;
    if keys.is_empty() || keys.len() > 6 {
        return Err(BadRequest(format!("{name}: 1 to 6 keys")));
    }
    for (i, k) in keys.iter().enumerate() {
        if keys[..i].iter().any(|o| o.name == k.name) {
            return Err(BadRequest(format!("{name}: {} given twice", k.name)));
        }
    }
    Ok(keys)
}

fn key_expr(b: &mut Builder<'_>, k: &Key) {
    match k.prefix {
        Some((v4, v6)) => {
            b.prefix(k.column, v4, v6);
        }
        None => {
            // `+col` keeps SQLite from walking an index in key order (a random row lookup per
            // row: ~2x slower than a scan and a sort at 10 M rows) and lets it use the time
            // index for a range.
            if matches!(b.dialect(), Dialect::Sqlite) {
                b.push("+");
            }
            b.col(k.column);
        }
    }
}

/// Appends a GROUP BY term: the key's expression for SQLite (where an alias named like a
/// column would mean the column, and its index), the alias for ClickHouse.
fn group_key(b: &mut Builder<'_>, k: &Key) {
    if matches!(b.dialect(), Dialect::Sqlite) {
        key_expr(b, k);
    } else {
        b.col(&k.name);
    }
}

/// Appends ` WHERE ...` for the flow filters (always at least `1 = 1`).
pub fn flow_where(b: &mut Builder<'_>, p: &Params) -> Result<(), BadRequest> {
    b.push(" WHERE 1 = 1");
    if let Some(t) = p.time("from")? {
        b.push(" AND ")
            .col("start_time")
            .push(" >= ")
            .val(Lit::Int(t));
    }
    if let Some(t) = p.time("to")? {
        b.push(" AND ")
            .col("start_time")
            .push(" < ")
            .val(Lit::Int(t));
    }
    for c in ["src_ip", "dst_ip"] {
        if let Some(n) = p.cidr(c)? {
            b.push(" AND ").in_cidr(c, &n);
        }
    }
    if let Some(n) = p.cidr("ip")? {
        b.push(" AND (").in_cidr("src_ip", &n).push(" OR ");
        b.in_cidr("dst_ip", &n).push(")");
    }
    for c in ["src_port", "dst_port"] {
        if let Some(v) = p.num(c, 0, 65_535)? {
            b.push(" AND ").col(c).push(" = ").val(Lit::Int(v as i64));
        }
    }
    if let Some(v) = p.num("port", 0, 65_535)? {
        b.push(" AND (")
            .col("src_port")
            .push(" = ")
            .val(Lit::Int(v as i64));
        b.push(" OR ")
            .col("dst_port")
            .push(" = ")
            .val(Lit::Int(v as i64))
            .push(")");
    }
    if let Some(v) = p.num("proto", 0, 255)? {
        b.push(" AND ")
            .col("proto")
            .push(" = ")
            .val(Lit::Int(v as i64));
    }
    if let Some(v) = p.num("vlan", 0, 4095)? {
        b.push(" AND ")
            .col("vlan")
            .push(" = ")
            .val(Lit::Int(v as i64));
    }
    if let Some(v) = p.token("probe", 64)? {
        b.push(" AND ").col("probe").push(" = ").val(Lit::Text(v));
    }
    Ok(())
}

fn metrics(b: &mut Builder<'_>) {
    b.sum2("fwd_packets", "rev_packets").push(" AS packets, ");
    b.sum2("fwd_bytes", "rev_bytes")
        .push(" AS bytes, count(*) AS flows");
}

/// Aggregate flows by keys: keys, packets, bytes, flows; ordered, limited.
pub fn aggregate(d: &Dialect, p: &Params, def_limit: u64) -> Result<(Sql, Vec<Key>), BadRequest> {
    let keys = parse_keys(p, "by", "src_ip")?;
    let order = p.choice("order", &["bytes", "packets", "flows"], "bytes")?;
    let limit = p.limit(def_limit)?;
    if let Some((r, days)) = rollup::choose(d, p, &keys)? {
        flow_where(&mut Builder::new(d), p)?; // the same parameter checks either way
        return Ok((rollup::aggregate(d, p, r, days, &keys, order, limit)?, keys));
    }
    Ok((aggregate_flows(d, p, &keys, order, limit)?, keys))
}

/// [`aggregate`] over every flow row.
pub fn aggregate_flows(
    d: &Dialect,
    p: &Params,
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
    metrics(&mut b);
    b.push(" FROM ").table("flows");
    flow_where(&mut b, p)?;
    group_order_limit(&mut b, keys, group_key, order, limit);
    Ok(b.finish())
}

/// Appends ` GROUP BY` the keys (each written by `term`), ` ORDER BY` the metric then the keys
/// (a stable order for ties), and ` LIMIT`.
pub(crate) fn group_order_limit(
    b: &mut Builder<'_>,
    keys: &[Key],
    term: fn(&mut Builder<'_>, &Key),
    order: &str,
    limit: u64,
) {
    b.push(" GROUP BY ");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        term(b, k);
    }
    b.push(&format!(" ORDER BY {order} DESC"));
    for k in keys {
        b.push(", ").col(&k.name);
    }
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
}

/// Totals of the filtered flows: packets, bytes, flows, first and last start time.
pub fn totals(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    if let Some((r, days)) = rollup::choose(d, p, &[])? {
        flow_where(&mut Builder::new(d), p)?; // the same parameter checks either way
        return rollup::totals(d, p, r, days);
    }
    totals_flows(d, p)
}

/// [`totals`] over every flow row.
pub fn totals_flows(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let mut b = Builder::new(d);
    b.push("SELECT ");
    metrics(&mut b);
    b.push(", min(")
        .col("start_time")
        .push(") AS first, max(")
        .col("start_time");
    b.push(") AS last FROM ").table("flows");
    flow_where(&mut b, p)?;
    Ok(b.finish())
}

/// Distinct values of one column per key (super-spreaders, port scans).
pub fn distinct(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let keys = parse_keys(p, "by", "src_ip")?;
    let count = p.choice(
        "count",
        &["dst_ip", "dst_port", "src_ip", "src_port"],
        "dst_ip",
    )?;
    let min = p.num("min", 0, u32::MAX.into())?.unwrap_or(1);
    let limit = p.limit(100)?;
    let mut b = Builder::new(d);
    b.push("SELECT ");
    for k in &keys {
        key_expr(&mut b, k);
        b.push(" AS ").col(&k.name).push(", ");
    }
    b.distinct(count).push(" AS distinct_count, ");
    metrics(&mut b);
    b.push(" FROM ").table("flows");
    flow_where(&mut b, p)?;
    b.push(" GROUP BY ");
    for (i, k) in keys.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        group_key(&mut b, k);
    }
    b.push(" HAVING ")
        .distinct(count)
        .push(" >= ")
        .val(Lit::Int(min as i64));
    b.push(" ORDER BY distinct_count DESC");
    for k in &keys {
        b.push(", ").col(&k.name);
    }
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// Packets, bytes and flows per time bucket (by flow start), optionally per one key.
pub fn timeseries(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let step = p.num("step", 1, 86_400 * 31)?.unwrap_or(60);
    let key = match p.get("by") {
        Some(_) => Some(parse_keys(p, "by", "")?),
        None => None,
    };
    if key.as_ref().is_some_and(|k| k.len() > 1) {
        return Err(BadRequest("by: one key at most for a time series".into()));
    }
    let limit = p.limit(1000)?;
    let mut b = Builder::new(d);
    b.push("SELECT ").bucket("start_time", step).push(" AS t, ");
    if let Some(k) = key.as_ref().and_then(|k| k.first()) {
        key_expr(&mut b, k);
        b.push(" AS ").col(&k.name).push(", ");
    }
    metrics(&mut b);
    b.push(" FROM ").table("flows");
    flow_where(&mut b, p)?;
    b.push(" GROUP BY t");
    if let Some(k) = key.as_ref().and_then(|k| k.first()) {
        b.push(", ");
        group_key(&mut b, k);
    }
    b.push(" ORDER BY t");
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// The flow columns a trace returns.
pub const TRACE_COLUMNS: &[&str] = &[
    "start",
    "end",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "proto",
    "vlan",
    "community_id",
    "fwd_packets",
    "fwd_bytes",
    "rev_packets",
    "rev_bytes",
    "fwd_tcp_flags",
    "rev_tcp_flags",
    "end_reason",
    "probe",
];

/// The HTTP columns searches and traces return.
pub const HTTP_OUT: &[&str] = &[
    "ts",
    "type",
    "src_ip",
    "src_port",
    "dst_ip",
    "dst_port",
    "method",
    "host",
    "uri",
    "status",
    "latency_us",
    "ua_browser",
    "ua_os",
    "ua_device",
    "community_id",
];

/// The records of one flow (by Community ID), in time order.
pub fn trace_flows(d: &Dialect, cid: &str, limit: u64) -> Sql {
    let mut b = Builder::new(d);
    b.push("SELECT ");
    for (i, c) in TRACE_COLUMNS.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.col(c);
    }
    b.push(" FROM ")
        .table("flows")
        .push(" WHERE ")
        .col("community_id")
        .push(" = ");
    b.val(Lit::Text(cid.to_string()));
    b.push(" ORDER BY ")
        .col("start")
        .push(" LIMIT ")
        .val(Lit::Int(limit as i64));
    b.finish()
}

/// The HTTP records of one flow (by Community ID), in time order.
pub fn trace_http(d: &Dialect, cid: &str, limit: u64) -> Sql {
    let mut b = Builder::new(d);
    select_http(&mut b);
    b.push(" WHERE ")
        .col("community_id")
        .push(" = ")
        .val(Lit::Text(cid.to_string()));
    b.push(" ORDER BY ").col("time").push(", ").col("ts");
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
    b.finish()
}

fn select_http(b: &mut Builder<'_>) {
    b.push("SELECT ");
    for (i, c) in HTTP_OUT.iter().enumerate() {
        if i > 0 {
            b.push(", ");
        }
        b.col(c);
    }
    b.push(" FROM ").table("http");
}

/// Parameters of HTTP searches.
pub const HTTP_FILTERS: &[&str] = &[
    "from",
    "to",
    "host",
    "uri_prefix",
    "method",
    "status",
    "client",
    "type",
    "ua_device",
    "ua_browser",
];

fn http_where(b: &mut Builder<'_>, p: &Params) -> Result<(), BadRequest> {
    b.push(" WHERE 1 = 1");
    if let Some(t) = p.time("from")? {
        b.push(" AND ").col("time").push(" >= ").val(Lit::Int(t));
    }
    if let Some(t) = p.time("to")? {
        b.push(" AND ").col("time").push(" < ").val(Lit::Int(t));
    }
    if let Some(h) = p.text("host")? {
        b.push(" AND ").col("host").push(" = ").val(Lit::Text(h));
    }
    if let Some(u) = p.text("uri_prefix")? {
        b.push(" AND ").starts_with("uri", &u);
    }
    if let Some(m) = p.token("method", 32)? {
        b.push(" AND ").col("method").push(" = ").val(Lit::Text(m));
    }
    if let Some(s) = p.num("status", 100, 999)? {
        b.push(" AND ")
            .col("status")
            .push(" = ")
            .val(Lit::Int(s as i64));
    }
    if let Some(c) = p.cidr("client")? {
        // The client is the source of requests and transactions, the destination of responses.
        b.push(" AND ((")
            .col("type")
            .push(" != 'response' AND ")
            .in_cidr("src_ip", &c);
        b.push(") OR (")
            .col("type")
            .push(" = 'response' AND ")
            .in_cidr("dst_ip", &c);
        b.push("))");
    }
    let t = p.choice(
        "type",
        &["any", "request", "response", "transaction"],
        "any",
    )?;
    if t != "any" {
        b.push(" AND ")
            .col("type")
            .push(" = ")
            .val(Lit::Text(t.into()));
    }
    for c in ["ua_device", "ua_browser"] {
        if let Some(v) = p.text(c)? {
            b.push(" AND ").col(c).push(" = ").val(Lit::Text(v));
        }
    }
    Ok(())
}

/// HTTP records matching the filters, newest first or slowest first.
pub fn http_search(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let order = p.choice("order", &["time", "latency"], "time")?;
    let limit = p.limit(100)?;
    let mut b = Builder::new(d);
    select_http(&mut b);
    http_where(&mut b, p)?;
    match order {
        "latency" => b
            .push(" AND ")
            .col("latency_us")
            .push(" IS NOT NULL ORDER BY ")
            .col("latency_us")
            .push(" DESC"),
        _ => b
            .push(" ORDER BY ")
            .col("time")
            .push(" DESC, ")
            .col("ts")
            .push(" DESC"),
    };
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// HTTP record counts per key (and per time bucket with `step`). Requests count for request
/// keys (host, method, User-Agent), responses for `status`; transactions for both.
pub fn http_counts(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let by = p.choice(
        "by",
        &[
            "status",
            "host",
            "method",
            "ua_device",
            "ua_browser",
            "ua_os",
        ],
        "status",
    )?;
    let step = p.num("step", 1, 86_400 * 31)?;
    let limit = p.limit(1000)?;
    let mut b = Builder::new(d);
    b.push("SELECT ");
    if let Some(s) = step {
        b.bucket("time", s).push(" AS t, ");
    }
    b.col(by)
        .push(" AS key, count(*) AS count FROM ")
        .table("http");
    http_where(&mut b, p)?;
    b.push(" AND ")
        .col(by)
        .push(" IS NOT NULL AND ")
        .col("type");
    b.push(if by == "status" {
        " != 'request'"
    } else {
        " != 'response'"
    });
    b.push(" GROUP BY ");
    if step.is_some() {
        b.push("t, ");
    }
    b.push("key ORDER BY ");
    if step.is_some() {
        b.push("t, ");
    }
    b.push("count DESC, key LIMIT ").val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// Latency percentiles (µs) per host (or over all with `by=none`).
pub fn http_latency(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let by = p.choice("by", &["host", "none"], "host")?;
    let limit = p.limit(100)?;
    let mut b = Builder::new(d);
    let group = by == "host";
    match d {
        Dialect::Sqlite => {
            // Nearest-rank percentiles over window functions (no percentile function in SQLite).
            let part = if group { "PARTITION BY \"host\" " } else { "" };
            b.push(if group {
                "SELECT \"host\" AS host, "
            } else {
                "SELECT "
            });
            b.push("count(*) AS count");
            for (n, q) in [("p50", 50), ("p90", 90), ("p99", 99)] {
                b.push(&format!(
                    ", max(CASE WHEN rn = ((c * {q} + 99) / 100) THEN latency_us END) AS {n}"
                ));
            }
            b.push(", max(latency_us) AS max FROM (SELECT \"host\", latency_us, ");
            b.push(&format!(
                "row_number() OVER ({part}ORDER BY latency_us) AS rn, count(*) OVER ({}) AS c FROM ",
                part.trim()
            ));
            b.table("http");
            http_where(&mut b, p)?;
            b.push(" AND latency_us IS NOT NULL)");
        }
        Dialect::ClickHouse { .. } => {
            // Nearest rank, as for SQLite: the ceil(n * q)-th smallest.
            b.push(if group {
                "SELECT host, count, p50, p90, p99, max FROM (SELECT `host` AS host, "
            } else {
                "SELECT count, p50, p90, p99, max FROM (SELECT "
            });
            b.push(
                "count() AS count, arraySort(groupArray(assumeNotNull(latency_us))) AS sorted, ",
            );
            b.push("sorted[toUInt64(ceil(length(sorted) * 0.5))] AS p50, ");
            b.push("sorted[toUInt64(ceil(length(sorted) * 0.9))] AS p90, ");
            b.push("sorted[toUInt64(ceil(length(sorted) * 0.99))] AS p99, ");
            b.push("max(assumeNotNull(latency_us)) AS max FROM ")
                .table("http");
            http_where(&mut b, p)?;
            b.push(" AND latency_us IS NOT NULL");
            if group {
                b.push(" GROUP BY host");
            }
            b.push(")");
        }
    }
    if group {
        b.push(if matches!(d, Dialect::Sqlite) {
            " GROUP BY host ORDER BY count DESC, host"
        } else {
            " ORDER BY count DESC, host"
        });
    }
    b.push(" LIMIT ").val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// HTTP totals: records, requests, responses.
pub fn http_totals(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let mut b = Builder::new(d);
    b.push("SELECT count(*) AS records, sum(CASE WHEN ")
        .col("type");
    b.push(" != 'response' THEN 1 ELSE 0 END) AS requests, sum(CASE WHEN ")
        .col("type");
    b.push(" != 'request' THEN 1 ELSE 0 END) AS responses FROM ")
        .table("http");
    http_where(&mut b, p)?;
    Ok(b.finish())
}

/// Per probe: flows, packets, bytes, first and last flow start.
pub fn probes(d: &Dialect) -> Sql {
    let mut b = Builder::new(d);
    b.push("SELECT ").col("probe").push(" AS probe, ");
    metrics(&mut b);
    b.push(", min(")
        .col("start_time")
        .push(") AS first, max(")
        .col("start_time");
    b.push(") AS last FROM ")
        .table("flows")
        .push(" GROUP BY probe ORDER BY probe LIMIT 1000");
    b.finish()
}

/// Alert events, newest first.
pub fn alerts(d: &Dialect, p: &Params) -> Result<Sql, BadRequest> {
    let limit = p.limit(100)?;
    let mut b = Builder::new(d);
    b.push("SELECT ")
        .col("time")
        .push(" AS time, ")
        .col("json")
        .push(" AS json FROM ");
    b.table("alerts").push(" WHERE 1 = 1");
    if let Some(t) = p.time("from")? {
        b.push(" AND ").col("time").push(" >= ").val(Lit::Int(t));
    }
    if let Some(t) = p.time("to")? {
        b.push(" AND ").col("time").push(" < ").val(Lit::Int(t));
    }
    b.push(" ORDER BY ")
        .col("time")
        .push(" DESC LIMIT ")
        .val(Lit::Int(limit as i64));
    Ok(b.finish())
}

/// A Community ID as given (`1:` and base64), or computed from a 5-tuple.
pub fn community_id(p: &Params) -> Result<String, BadRequest> {
    if let Some(c) = p.token("community_id", 64)? {
        if !c.starts_with("1:") {
            return Err(BadRequest("community_id: expected 1:<base64>".into()));
        }
        return Ok(c);
    }
    let need = |n: &str| {
        BadRequest(format!(
            "give community_id, or src_ip, dst_ip, proto (and ports): {n} missing"
        ))
    };
    let host = |n: &str| -> Result<std::net::IpAddr, BadRequest> {
        let c: Cidr = p.cidr(n)?.ok_or_else(|| need(n))?;
        if !c.is_host() {
            return Err(BadRequest(format!("{n}: an address, not a prefix")));
        }
        Ok(c.addr)
    };
    let (src, dst) = (host("src_ip")?, host("dst_ip")?);
    if src.is_ipv4() != dst.is_ipv4() {
        return Err(BadRequest(
            "src_ip and dst_ip: not the same IP version".into(),
        ));
    }
    let proto = p.num("proto", 0, 255)?.ok_or_else(|| need("proto"))? as u8;
    let sp = p.num("src_port", 0, 65_535)?.unwrap_or(0) as u16;
    let dp = p.num("dst_port", 0, 65_535)?.unwrap_or(0) as u16;
    let key = netspectra_packet::FlowKey {
        src,
        dst,
        src_port: sp,
        dst_port: dp,
        proto,
        vlan: None,
    };
    Ok(netspectra_packet::community_id_v1(&key, 0))
}

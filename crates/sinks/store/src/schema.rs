//! Table layouts of the embedded store: the ClickHouse sink's column names (see
//! `netspectra_clickhouse::schema`), SQLite types, plus the same time column (`start_time` for
//! flows, `time` for the others, seconds since the epoch) and the `probe` column of a probe's
//! tables.

use netspectra_sinks::stream::StreamKind;

/// A column: name and SQLite type.
pub type Column = (&'static str, &'static str);

/// Columns of the flow table, as the JSON record's fields (`start_time` is derived from `start`).
pub const FLOW_COLUMNS: &[Column] = &[
    ("start", "TEXT"),
    ("end", "TEXT"),
    ("duration", "REAL"),
    ("src_ip", "TEXT"),
    ("src_port", "INTEGER"),
    ("dst_ip", "TEXT"),
    ("dst_port", "INTEGER"),
    ("proto", "INTEGER"),
    ("vlan", "INTEGER"),
    ("community_id", "TEXT"),
    ("fwd_packets", "INTEGER"),
    ("fwd_bytes", "INTEGER"),
    ("fwd_ip_bytes", "INTEGER"),
    ("rev_packets", "INTEGER"),
    ("rev_bytes", "INTEGER"),
    ("rev_ip_bytes", "INTEGER"),
    ("fwd_tcp_flags", "TEXT"),
    ("rev_tcp_flags", "TEXT"),
    ("end_reason", "TEXT"),
];

/// Columns of the HTTP table (every field of an HTTP record but the optional `headers` map, as
/// in ClickHouse; `time` is derived from `ts`).
pub const HTTP_COLUMNS: &[Column] = &[
    ("type", "TEXT"),
    ("ts", "TEXT"),
    ("ip_version", "INTEGER"),
    ("src_ip", "TEXT"),
    ("src_port", "INTEGER"),
    ("dst_ip", "TEXT"),
    ("dst_port", "INTEGER"),
    ("vlan", "INTEGER"),
    ("community_id", "TEXT"),
    ("method", "TEXT"),
    ("host", "TEXT"),
    ("uri", "TEXT"),
    ("version", "TEXT"),
    ("user_agent", "TEXT"),
    ("referer", "TEXT"),
    ("pragma", "TEXT"),
    ("connection", "TEXT"),
    ("content_type", "TEXT"),
    ("content_length", "INTEGER"),
    ("transfer_encoding", "TEXT"),
    ("ua_os", "TEXT"),
    ("ua_os_version", "TEXT"),
    ("ua_browser", "TEXT"),
    ("ua_browser_version", "TEXT"),
    ("ua_device", "TEXT"),
    ("status", "INTEGER"),
    ("reason", "TEXT"),
    ("resp_version", "TEXT"),
    ("server", "TEXT"),
    ("resp_content_type", "TEXT"),
    ("content_encoding", "TEXT"),
    ("cache_control", "TEXT"),
    ("resp_content_length", "INTEGER"),
    ("latency_us", "INTEGER"),
    ("partial", "INTEGER"),
];

/// Columns of the alerts and guard tables (the event as JSON, and its time).
pub const EVENT_COLUMNS: &[Column] = &[("json", "TEXT")];

/// The SQLite type of a view snapshot column, from its name (the ClickHouse sink's rule).
pub fn view_column_type(name: &str) -> &'static str {
    match name {
        "interval_start" | "interval_end" => "TEXT",
        "src_port" | "dst_port" | "proto" | "vlan" => "INTEGER",
        n if (n.starts_with("src_ip") || n.starts_with("dst_ip")) && !n.contains("distinct") => {
            "TEXT"
        }
        _ => "INTEGER",
    }
}

/// The name of the time column of a stream's table.
pub fn time_column(kind: StreamKind) -> &'static str {
    match kind {
        StreamKind::Flows => "start_time",
        _ => "time",
    }
}

/// The `CREATE TABLE` and `CREATE INDEX` statements of a table `name` of `kind` with these
/// record columns (names already checked to be `[A-Za-z0-9_]`).
pub fn create_table(kind: StreamKind, name: &str, columns: &[(String, &'static str)]) -> String {
    let mut cols: Vec<String> = columns
        .iter()
        .map(|(n, t)| format!("\"{n}\" {t}"))
        .collect();
    let time = time_column(kind);
    cols.push(format!("\"{time}\" INTEGER NOT NULL DEFAULT 0"));
    cols.push("\"probe\" TEXT NOT NULL DEFAULT ''".into());
    let mut sql = format!(
        "CREATE TABLE IF NOT EXISTS \"{name}\" ({});\n\
         CREATE INDEX IF NOT EXISTS \"{name}_{time}\" ON \"{name}\" (\"{time}\");\n",
        cols.join(", ")
    );
    match kind {
        StreamKind::Flows => sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS \"{name}_cid\" ON \"{name}\" (community_id);\n\
             CREATE INDEX IF NOT EXISTS \"{name}_src\" ON \"{name}\" (src_ip, dst_ip);\n"
        )),
        StreamKind::Http => sql.push_str(&format!(
            "CREATE INDEX IF NOT EXISTS \"{name}_host\" ON \"{name}\" (host);\n\
             CREATE INDEX IF NOT EXISTS \"{name}_cid\" ON \"{name}\" (community_id);\n"
        )),
        _ => {}
    }
    sql
}

/// The record columns of a stream's table (views: from their column names).
pub fn record_columns(
    kind: StreamKind,
    view_cols: Option<&[String]>,
) -> Vec<(String, &'static str)> {
    let fixed = |c: &[Column]| c.iter().map(|(n, t)| (n.to_string(), *t)).collect();
    match kind {
        StreamKind::Flows => fixed(FLOW_COLUMNS),
        StreamKind::Http => fixed(HTTP_COLUMNS),
        StreamKind::View => view_cols
            .unwrap_or(&[])
            .iter()
            .map(|n| (n.clone(), view_column_type(n)))
            .collect(),
        _ => fixed(EVENT_COLUMNS),
    }
}

/// Seconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.frac]Z` (the records' stamps) or of
/// `SECONDS[.NANOS]` (HTTP `ts`); None when it is neither.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Some((secs, _)) = s.split_once('.').or(Some((s, ""))) {
        if !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit()) {
            return secs.parse().ok();
        }
    }
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(y, m, d) * 86_400 + h * 3600 + mi * 60 + se)
}

/// Days since 1970-01-01 of a proleptic Gregorian date.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds in a rollup bucket: flow totals are kept per UTC day (of the flow's start).
pub const ROLLUP_BUCKET: i64 = 86_400;

/// The per-day flow rollups, by the address column each one keeps: table name and column. With
/// the destination port, protocol and probe they answer full-range aggregates by address,
/// prefix, port and protocol from a few hundred thousand rows instead of every flow.
pub const ROLLUPS: &[(&str, &str)] = &[
    ("flows_rollup_src", "src_ip"),
    ("flows_rollup_dst", "dst_ip"),
];

/// Keys absent from a flow record are kept in a rollup as these values (a primary key cannot
/// merge NULLs); queries turn them back into NULL with `nullif`.
pub const ROLLUP_NO_TEXT: &str = "";
/// See [`ROLLUP_NO_TEXT`].
pub const ROLLUP_NO_INT: i64 = -1;

/// Statements that make the rollup tables and the triggers that keep them equal to the flow
/// table at every insert (whoever inserts); idempotent.
pub fn create_rollups() -> String {
    let mut sql = String::new();
    for (t, ip) in ROLLUPS {
        sql.push_str(&format!(
            "CREATE TABLE IF NOT EXISTS \"{t}\" (day INTEGER NOT NULL, probe TEXT NOT NULL, \
             \"{ip}\" TEXT NOT NULL, dst_port INTEGER NOT NULL, proto INTEGER NOT NULL, \
             packets INTEGER NOT NULL, bytes INTEGER NOT NULL, flows INTEGER NOT NULL, \
             first INTEGER NOT NULL, last INTEGER NOT NULL, \
             PRIMARY KEY (day, probe, \"{ip}\", dst_port, proto)) WITHOUT ROWID;\n\
             CREATE TRIGGER IF NOT EXISTS \"{t}_add\" AFTER INSERT ON flows BEGIN \
             INSERT INTO \"{t}\" VALUES ({}) ON CONFLICT DO UPDATE SET \
             packets = packets + excluded.packets, bytes = bytes + excluded.bytes, \
             flows = flows + 1, first = min(first, excluded.first), \
             last = max(last, excluded.last); END;\n",
            rollup_values("NEW.", ip)
        ));
    }
    sql
}

/// The rollup row of one flow row (`row` is `NEW.` in a trigger, empty in a backfill).
fn rollup_values(row: &str, ip: &str) -> String {
    format!(
        "{row}start_time / {ROLLUP_BUCKET}, coalesce({row}probe, '{ROLLUP_NO_TEXT}'), \
         coalesce({row}\"{ip}\", '{ROLLUP_NO_TEXT}'), coalesce({row}dst_port, {ROLLUP_NO_INT}), \
         coalesce({row}proto, {ROLLUP_NO_INT}), \
         coalesce({row}fwd_packets + {row}rev_packets, 0), \
         coalesce({row}fwd_bytes + {row}rev_bytes, 0), 1, {row}start_time, {row}start_time"
    )
}

/// Fills an empty rollup from the flow rows already stored (a store written before rollups).
pub fn backfill_rollup(table: &str, ip: &str) -> String {
    format!(
        "INSERT INTO \"{table}\" SELECT start_time / {ROLLUP_BUCKET} AS d, \
         coalesce(probe, '{ROLLUP_NO_TEXT}') AS p, coalesce(\"{ip}\", '{ROLLUP_NO_TEXT}') AS a, \
         coalesce(dst_port, {ROLLUP_NO_INT}) AS dp, coalesce(proto, {ROLLUP_NO_INT}) AS pr, \
         sum(coalesce(fwd_packets + rev_packets, 0)), sum(coalesce(fwd_bytes + rev_bytes, 0)), \
         count(*), min(start_time), max(start_time) FROM flows GROUP BY d, p, a, dp, pr"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_of_both_stamp_forms() {
        assert_eq!(parse_time("1970-01-01T00:00:00.000000000Z"), Some(0));
        assert_eq!(
            parse_time("2023-11-14T22:13:20.500000000Z"),
            Some(1_700_000_000)
        );
        assert_eq!(parse_time("1700000000.123456789"), Some(1_700_000_000));
        assert_eq!(parse_time("1700000000"), Some(1_700_000_000));
        assert_eq!(parse_time("garbage"), None);
        assert_eq!(parse_time("2023-13-14T22:13:20Z"), None);
    }

    #[test]
    fn tables_have_the_clickhouse_names_and_a_time_column() {
        let sql = create_table(
            StreamKind::Flows,
            "flows",
            &record_columns(StreamKind::Flows, None),
        );
        for c in ["\"src_ip\" TEXT", "\"fwd_bytes\" INTEGER", "\"start_time\""] {
            assert!(sql.contains(c), "{c} in {sql}");
        }
        let v = record_columns(
            StreamKind::View,
            Some(&["interval_start".into(), "src_ip_24".into(), "bytes".into()]),
        );
        assert_eq!(v[1].1, "TEXT");
        assert_eq!(v[2].1, "INTEGER");
    }
}

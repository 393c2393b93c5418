//! Table layouts: the columns of each stream's table, named as the JSON record's fields, plus
//! a materialized time column for range queries and, when batches carry identifiers, the
//! `_batch` column that lets a retried insert be recognised. Documented in docs/PROBE.md.

use netspectra_sinks::stream::StreamKind;

/// Columns of the flow table, in the order of the JSON record's fields.
pub const FLOW_COLUMNS: &str = "start String, end String, duration Float64, \
src_ip String, src_port UInt16, dst_ip String, dst_port UInt16, proto UInt8, \
vlan Nullable(UInt16), community_id String, \
fwd_packets UInt64, fwd_bytes UInt64, fwd_ip_bytes UInt64, \
rev_packets UInt64, rev_bytes UInt64, rev_ip_bytes UInt64, \
fwd_tcp_flags String, rev_tcp_flags String, end_reason String, \
start_time DateTime MATERIALIZED parseDateTimeBestEffort(start)";

/// Columns of the HTTP table (every field of an HTTP record but the optional `headers` map,
/// which JSONEachRow of ClickHouse 18 cannot take; it is skipped on insert).
pub const HTTP_COLUMNS: &str = "type String, ts String, ip_version UInt8, \
src_ip String, src_port UInt16, dst_ip String, dst_port UInt16, vlan Nullable(UInt16), \
community_id String, method Nullable(String), host Nullable(String), uri Nullable(String), \
version Nullable(String), user_agent Nullable(String), referer Nullable(String), \
pragma Nullable(String), connection Nullable(String), content_type Nullable(String), \
content_length Nullable(UInt64), transfer_encoding Nullable(String), \
ua_os Nullable(String), ua_os_version Nullable(String), ua_browser Nullable(String), \
ua_browser_version Nullable(String), ua_device Nullable(String), status Nullable(UInt16), \
reason Nullable(String), resp_version Nullable(String), server Nullable(String), \
resp_content_type Nullable(String), content_encoding Nullable(String), \
cache_control Nullable(String), resp_content_length Nullable(UInt64), \
latency_us Nullable(UInt64), partial UInt8, \
time DateTime MATERIALIZED toDateTime(toUInt32(toUInt64OrZero(splitByChar('.', ts)[1])))";

/// The `time` column of record streams whose `ts` is `seconds.nanoseconds` text.
const TS_TIME: &str =
    "time DateTime MATERIALIZED toDateTime(toUInt32(toUInt64OrZero(splitByChar('.', ts)[1])))";

/// Columns shared by the TLS and DNS tables: time and the connection's addresses.
macro_rules! conn_columns {
    () => {
        "ts String, ip_version UInt8, src_ip String, src_port UInt16, dst_ip String, \
dst_port UInt16, vlan Nullable(UInt16), community_id String, transport String, "
    };
}

/// Columns of the TLS table, in the order of the JSON record's fields (booleans as UInt8,
/// lists as arrays).
pub fn tls_columns() -> String {
    format!(
        "{}sni Nullable(String), alpn_offered Array(String), client_version Nullable(UInt16), \
versions_offered Array(UInt16), ciphers_offered Array(UInt16), extensions Array(UInt16), \
groups Array(UInt16), point_formats Array(UInt8), sig_algs Array(UInt16), \
resumption_offered UInt8, ja3 Nullable(String), ja4 Nullable(String), client_hellos UInt8, \
ja4_retry Nullable(String), hello_retry UInt8, version Nullable(String), \
version_code Nullable(UInt16), cipher Nullable(UInt16), cipher_name Nullable(String), \
alpn Nullable(String), ja3s Nullable(String), resumed UInt8, \
handshake_latency_us Nullable(UInt64), cert_count UInt16, cert_subjects Array(String), \
cert_issuers Array(String), cert_serials Array(String), cert_not_before Array(String), \
cert_not_after Array(String), cert_san_dns Array(String), alert_senders Array(String), \
alert_levels Array(UInt8), alert_descriptions Array(UInt8), encrypted_alerts UInt32, \
established UInt8, partial UInt8, malformed Nullable(String), quic_version Nullable(UInt32), \
quic_dcid Nullable(String), quic_scid Nullable(String), quic_server_scid Nullable(String), \
{TS_TIME}",
        conn_columns!()
    )
}

/// Columns of the DNS table, in the order of the JSON record's fields.
pub fn dns_columns() -> String {
    let section = |s: &str| {
        format!(
            "{s}_names Array(String), {s}_types Array(UInt16), {s}_ttls Array(UInt32), \
{s}_data Array(String), "
        )
    };
    format!(
        "{}status String, id UInt16, opcode UInt8, qname String, qtype UInt16, \
qtype_name String, qclass UInt16, rcode Nullable(UInt16), rcode_name Nullable(String), \
aa UInt8, tc UInt8, rd UInt8, ra UInt8, ad UInt8, cd UInt8, {}{}{}answer_count UInt16, \
authority_count UInt16, additional_count UInt16, edns_udp_size Nullable(UInt16), \
edns_version Nullable(UInt8), edns_do UInt8, edns_client_subnet Nullable(String), \
latency_us Nullable(UInt64), query_len Nullable(UInt32), response_len Nullable(UInt32), \
malformed Nullable(String), {TS_TIME}",
        conn_columns!(),
        section("answer"),
        section("authority"),
        section("additional")
    )
}

/// The ClickHouse type of a view snapshot column, from its name (views name their columns
/// `interval_start`, key columns such as `src_ip_24` or `dst_port`, and metric columns).
pub fn view_column_type(name: &str) -> &'static str {
    match name {
        "interval_start" | "interval_end" => "String",
        "src_port" | "dst_port" => "Nullable(UInt16)",
        "proto" => "Nullable(UInt8)",
        "vlan" => "Nullable(UInt16)",
        n if (n.starts_with("src_ip") || n.starts_with("dst_ip")) && !n.contains("distinct") => {
            "Nullable(String)"
        }
        _ => "UInt64",
    }
}

/// Columns of a view's table, from its column names.
pub fn view_columns(names: &[String]) -> String {
    let mut cols: Vec<String> = names
        .iter()
        .map(|n| format!("{n} {}", view_column_type(n)))
        .collect();
    cols.push("time DateTime MATERIALIZED parseDateTimeBestEffort(interval_start)".to_string());
    cols.join(", ")
}

/// The `CREATE TABLE` of a stream's table `db.table` with these columns, plus the `probe` and
/// `_batch` columns when `ids` (a probe's tables: which probe a row came from, and the
/// identifier of the batch it arrived in).
pub fn create_table(kind: StreamKind, full: &str, columns: &str, ids: bool) -> String {
    let extra = if ids {
        ", probe String DEFAULT '', _batch String DEFAULT ''"
    } else {
        ""
    };
    let (part, order) = partition_and_order(kind);
    format!(
        "CREATE TABLE IF NOT EXISTS {full} ({columns}{extra}) ENGINE = MergeTree() \
         PARTITION BY {part} ORDER BY {order}"
    )
}

/// The partition expression and sorting key of a stream's table.
pub fn partition_and_order(kind: StreamKind) -> (&'static str, &'static str) {
    match kind {
        StreamKind::Flows => ("toYYYYMMDD(start_time)", "(start_time, src_ip, dst_ip)"),
        StreamKind::Http | StreamKind::Tls | StreamKind::Dns => {
            ("toYYYYMMDD(time)", "(time, src_ip, dst_ip)")
        }
        StreamKind::View => ("toYYYYMMDD(time)", "(time)"),
        _ => ("toYYYYMMDD(time)", "(time)"),
    }
}

/// Columns of the guard's table: the fields of its deny/log events (`netspectra guard run
/// --events`), `time` materialized from `ts` (seconds since the epoch, with a fraction).
pub const GUARD_COLUMNS: &str = "ts Float64, action String, rule String, rule_id Int64, \
src String, dst String, sport UInt16, dport UInt16, proto String, len UInt32, generation UInt32, \
flags Array(String), time DateTime MATERIALIZED toDateTime(toUInt32(ts))";

/// The columns of a stream's table (a view's from its column names, None when they are
/// not valid identifiers).
pub fn columns_of(kind: StreamKind, view_cols: Option<&[String]>) -> Option<String> {
    Some(match kind {
        StreamKind::Flows => FLOW_COLUMNS.to_string(),
        StreamKind::Http => HTTP_COLUMNS.to_string(),
        StreamKind::Tls => tls_columns(),
        StreamKind::Dns => dns_columns(),
        StreamKind::View => match view_cols {
            Some(c) if c.iter().all(|n| crate::is_ident(n)) => view_columns(c),
            _ => return None,
        },
        StreamKind::Guard => GUARD_COLUMNS.to_string(),
        _ => "time DateTime, json String".to_string(),
    })
}

/// Column names of a view snapshot batch known only as JSON lines: the keys of its first
/// line, in order.
pub fn json_keys(line: &[u8]) -> Option<Vec<String>> {
    let v: serde_json::Value = serde_json::from_slice(line).ok()?;
    Some(v.as_object()?.keys().cloned().collect())
}

//! The JSON API: one GET route per question (listed in [`API_ROUTES`], documented in
//! docs/console-openapi.json), answers as JSON objects, errors as `{"error": "..."}` with a
//! 4xx/5xx status.

use crate::backend::{Backend, QueryError, Table};
use crate::live::Live;
use crate::params::{BadRequest, Params};
use crate::queries::{self, FLOW_FILTERS, HTTP_FILTERS};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

/// Every API route (the OpenAPI file is checked against this list by a test).
pub const API_ROUTES: &[&str] = &[
    "/api/v1/summary",
    "/api/v1/flows/aggregate",
    "/api/v1/flows/top",
    "/api/v1/flows/distinct",
    "/api/v1/flows/timeseries",
    "/api/v1/flows/trace",
    "/api/v1/http/search",
    "/api/v1/http/counts",
    "/api/v1/http/latency",
    "/api/v1/alerts",
    "/api/v1/probes",
];

/// Longest wait for one probe's metrics endpoint.
const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Most rows a backend may return for one statement.
const MAX_ROWS: usize = crate::params::MAX_LIMIT as usize;

/// A failed request: status and message.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: u16,
    /// What went wrong.
    pub message: String,
}

impl From<BadRequest> for ApiError {
    fn from(e: BadRequest) -> ApiError {
        ApiError {
            status: 400,
            message: e.0,
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(e: QueryError) -> ApiError {
        let status = match e {
            QueryError::Timeout(_) => 504,
            QueryError::TooManyRows(_) => 400,
            QueryError::Backend(_) => 502,
        };
        ApiError {
            status,
            message: e.to_string(),
        }
    }
}

fn allowed(extra: &[&'static str], base: &[&'static str]) -> Vec<&'static str> {
    base.iter().chain(extra).copied().collect()
}

fn params(raw: Option<&str>, names: &[&str]) -> Result<Params, ApiError> {
    Ok(Params::parse(raw, names)?)
}

/// Answers one API request (blocking: runs the queries).
pub fn answer(
    b: &Arc<dyn Backend>,
    live: &Live,
    route: &str,
    raw: Option<&str>,
    timeout: Duration,
) -> Result<Value, ApiError> {
    let d = b.dialect().clone();
    let run =
        |sql: &crate::sql::Sql| -> Result<Table, ApiError> { Ok(b.run(sql, MAX_ROWS, timeout)?) };
    let rows = |t: &Table| Value::Array(t.objects());
    match route {
        "/api/v1/summary" => {
            let p = params(raw, FLOW_FILTERS)?;
            let f = run(&queries::totals(&d, &p)?)?;
            let hp = Params::parse(None, &[])?;
            let h = run(&queries::http_totals(&d, &hp)?)?;
            let first = |t: &Table| t.objects().into_iter().next().unwrap_or(Value::Null);
            Ok(json!({"flows": first(&f), "http": first(&h), "store": b.describe()}))
        }
        "/api/v1/flows/aggregate" | "/api/v1/flows/top" => {
            let top = route.ends_with("top");
            let p = params(raw, &allowed(&["by", "order", "limit"], FLOW_FILTERS))?;
            let (sql, keys) = queries::aggregate(&d, &p, if top { 10 } else { 100 })?;
            let t = run(&sql)?;
            let mut out = t.objects();
            let mut total = Value::Null;
            if top {
                let order = p.choice("order", &["bytes", "packets", "flows"], "bytes")?;
                let tt = run(&queries::totals(&d, &p)?)?;
                let all = tt.objects().into_iter().next().unwrap_or(Value::Null);
                let sum = all[order].as_f64().unwrap_or(0.0);
                for r in &mut out {
                    let v = r[order].as_f64().unwrap_or(0.0);
                    r["share"] = json!(if sum > 0.0 { v / sum } else { 0.0 });
                }
                total = all;
            }
            let names: Vec<&str> = keys.iter().map(|k| k.name.as_str()).collect();
            Ok(json!({"keys": names, "rows": out, "total": total}))
        }
        "/api/v1/flows/distinct" => {
            let p = params(
                raw,
                &allowed(&["by", "count", "min", "limit"], FLOW_FILTERS),
            )?;
            Ok(json!({"rows": rows(&run(&queries::distinct(&d, &p)?)?)}))
        }
        "/api/v1/flows/timeseries" => {
            let p = params(raw, &allowed(&["step", "by", "limit"], FLOW_FILTERS))?;
            Ok(json!({"rows": rows(&run(&queries::timeseries(&d, &p)?)?)}))
        }
        "/api/v1/flows/trace" => {
            let p = params(
                raw,
                &[
                    "community_id",
                    "src_ip",
                    "dst_ip",
                    "src_port",
                    "dst_port",
                    "proto",
                    "limit",
                ],
            )?;
            let cid = queries::community_id(&p)?;
            let limit = p.limit(1000)?;
            let f = run(&queries::trace_flows(&d, &cid, limit))?.objects();
            let h = run(&queries::trace_http(&d, &cid, limit))?.objects();
            Ok(json!({"community_id": cid, "summary": trace_summary(&f), "records": f, "http": h}))
        }
        "/api/v1/http/search" => {
            let p = params(raw, &allowed(&["order", "limit"], HTTP_FILTERS))?;
            Ok(json!({"rows": rows(&run(&queries::http_search(&d, &p)?)?)}))
        }
        "/api/v1/http/counts" => {
            let p = params(raw, &allowed(&["by", "step", "limit"], HTTP_FILTERS))?;
            Ok(json!({"rows": rows(&run(&queries::http_counts(&d, &p)?)?)}))
        }
        "/api/v1/http/latency" => {
            let p = params(raw, &allowed(&["by", "limit"], HTTP_FILTERS))?;
            Ok(json!({"rows": rows(&run(&queries::http_latency(&d, &p)?)?)}))
        }
        "/api/v1/alerts" => {
            let p = params(raw, &["from", "to", "limit"])?;
            let sql = queries::alerts(&d, &p)?;
            if !b.has_table("alerts") {
                return Ok(json!({"rows": []}));
            }
            let t = run(&sql)?;
            let events: Vec<Value> = t
                .rows
                .iter()
                .map(|r| {
                    r.get(1)
                        .and_then(Value::as_str)
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or(Value::Null)
                })
                .collect();
            Ok(json!({"rows": events}))
        }
        "/api/v1/probes" => {
            params(raw, &[])?;
            // Stored totals per probe, and each configured probe's metrics read now.
            let stored = rows(&run(&queries::probes(&d))?);
            let now = live.read(timeout.min(LIVE_TIMEOUT));
            Ok(json!({"rows": stored, "live": now}))
        }
        _ => Err(ApiError {
            status: 404,
            message: format!("no such route {route:?}"),
        }),
    }
}

/// First and last seen, packets and bytes per direction and end reasons of a flow's records.
fn trace_summary(recs: &[Value]) -> Value {
    let sum = |k: &str| recs.iter().filter_map(|r| r[k].as_u64()).sum::<u64>();
    let mut reasons: Vec<&str> = recs
        .iter()
        .filter_map(|r| r["end_reason"].as_str())
        .collect();
    reasons.dedup();
    json!({
        "records": recs.len(),
        "first": recs.iter().filter_map(|r| r["start"].as_str()).min(),
        "last": recs.iter().filter_map(|r| r["end"].as_str()).max(),
        "fwd_packets": sum("fwd_packets"),
        "rev_packets": sum("rev_packets"),
        "fwd_bytes": sum("fwd_bytes"),
        "rev_bytes": sum("rev_bytes"),
        "end_reasons": reasons,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_openapi_file_lists_exactly_the_routes() {
        let doc: Value = serde_json::from_str(crate::OPENAPI).unwrap();
        let mut documented: Vec<&str> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        documented.sort();
        let mut served: Vec<&str> = API_ROUTES.to_vec();
        served.push("/api/openapi.json");
        served.sort();
        assert_eq!(documented, served);
        for r in API_ROUTES {
            assert!(
                doc["paths"][r]["get"]["responses"]["400"].is_object(),
                "{r}"
            );
        }
    }
}

//! Alert rules evaluated on what the probe sees: thresholds on a view's metric per key (packets,
//! bytes, flows, a distinct count: port scans, super-spreaders), a key's share of a metric's
//! total (heavy hitters), the HTTP error rate per host, the capture's drop ratio. Each rule has a
//! `for` duration, labels and a severity. Firing and resolved are separate events, sent once per
//! change of state (never again every interval), as the `alerts` record stream, to webhooks
//! ([`webhook`]) and as Prometheus metrics ([`AlertMetrics`]). [`sink::AlertSink`] runs the
//! engine under the common delivery runner, fed with view snapshots and HTTP records.

pub mod sink;
pub mod webhook;

use netspectra_metrics::{Exposition, Kind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

/// Keys tracked per rule at most; more are counted in [`Engine::keys_dropped`] and not tracked.
pub const MAX_KEYS_PER_RULE: usize = 100_000;

/// What a rule measures.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Measure {
    /// A metric column of a view (`packets`, `bytes`, `flows`, `distinct_dst_port`, ...) per key
    /// (`view` and `metric`).
    Threshold,
    /// A key's share (0..1) of the metric's total over the view's snapshot (`view`, `metric`).
    Share,
    /// Per host: responses with status >= 500 over responses, within a snapshot interval.
    HttpErrorRate,
    /// Packets dropped by the kernel over packets it received (drops included), within a
    /// snapshot interval.
    DropRatio,
}

fn default_min() -> u64 {
    20
}

/// One rule of the probe configuration's `alerts.rules`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Name (letters, digits, `-`, `_`).
    pub name: String,
    /// What is measured.
    pub measure: Measure,
    /// The view (threshold, share).
    pub view: Option<String>,
    /// The view's metric column (threshold, share).
    pub metric: Option<String>,
    /// HTTP error rate: hosts with fewer responses in the interval are not judged.
    #[serde(default = "default_min")]
    pub min_responses: u64,
    /// Fires when the value is above this.
    pub above: f64,
    /// The value must stay above this long (snapshot time) before the rule fires; 0 = at once.
    #[serde(default, rename = "for")]
    pub for_secs: u64,
    /// `info`, `warning` or `critical`.
    #[serde(default = "default_severity")]
    pub severity: String,
    /// Labels copied into every event.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn default_severity() -> String {
    "warning".into()
}

/// Why a rule set is refused.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("alerts.rules[{index}] ({name}): {message}")]
pub struct RuleError {
    /// Position in the list.
    pub index: usize,
    /// The rule's name.
    pub name: String,
    /// What is wrong.
    pub message: String,
}

/// Checks names, severities and bounds; `views` are the configured views' names and columns.
pub fn check_rules(rules: &[Rule], views: &[(String, Vec<String>)]) -> Result<(), RuleError> {
    for (index, r) in rules.iter().enumerate() {
        let e = |message: String| RuleError {
            index,
            name: r.name.clone(),
            message,
        };
        if r.name.is_empty()
            || !r
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(e("name: letters, digits, - and _ only".into()));
        }
        if rules[..index].iter().any(|o| o.name == r.name) {
            return Err(e("name given twice".into()));
        }
        if !matches!(r.severity.as_str(), "info" | "warning" | "critical") {
            return Err(e("severity: info, warning or critical".into()));
        }
        if !r.above.is_finite() || r.above < 0.0 {
            return Err(e("above: a number >= 0".into()));
        }
        match r.measure {
            Measure::Threshold | Measure::Share => {
                let (Some(view), Some(metric)) = (&r.view, &r.metric) else {
                    return Err(e("threshold and share rules need view and metric".into()));
                };
                let Some((_, cols)) = views.iter().find(|(v, _)| v == view) else {
                    return Err(e(format!("view {view:?} is not configured")));
                };
                if !cols.iter().any(|c| c == metric) {
                    return Err(e(format!(
                        "view {view:?} has no metric {metric:?} (it has {})",
                        cols.join(", ")
                    )));
                }
            }
            Measure::HttpErrorRate | Measure::DropRatio => {
                if r.above > 1.0 {
                    return Err(e("above: a ratio, 0..1".into()));
                }
            }
        }
    }
    Ok(())
}

/// One alert event (a line of the `alerts` stream, a webhook's JSON).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    /// Seconds since the epoch: the end of the interval that changed the state.
    pub time: i64,
    /// `firing` or `resolved`.
    pub state: &'static str,
    /// The rule.
    pub rule: String,
    /// Its severity.
    pub severity: String,
    /// The key (`src_ip=10.0.0.1`; `host=...`; `capture` for the drop ratio).
    pub key: String,
    /// The value that crossed (or, resolved, the last value seen; 0 when the key went away).
    pub value: f64,
    /// The rule's threshold.
    pub above: f64,
    /// The rule's labels.
    pub labels: BTreeMap<String, String>,
}

#[derive(Clone, Debug)]
struct KeyState {
    /// Above since this time (seconds).
    since: i64,
    firing: bool,
    value: f64,
}

/// Per host HTTP counts of the current interval.
#[derive(Default)]
struct HttpCounts {
    by_host: HashMap<String, (u64, u64)>,
}

/// The rule engine: state per rule and key, bounded.
pub struct Engine {
    rules: Vec<Rule>,
    state: Vec<HashMap<String, KeyState>>,
    http: HttpCounts,
    /// Keys not tracked because a rule had [`MAX_KEYS_PER_RULE`] already.
    pub keys_dropped: u64,
    last_capture: Option<(u64, u64)>,
}

/// True for the metric columns of a view snapshot line (the rest, but the interval, is key).
fn is_metric(c: &str) -> bool {
    matches!(c, "packets" | "bytes" | "flows") || c.starts_with("distinct_")
}

fn key_of(m: &Map<String, Value>) -> String {
    let mut parts = Vec::new();
    for (k, v) in m {
        if k == "interval_start" || k == "interval_end" || is_metric(k) {
            continue;
        }
        let v = match v {
            Value::String(s) => s.clone(),
            Value::Null => "other".into(),
            v => v.to_string(),
        };
        parts.push(format!("{k}={v}"));
    }
    parts.join(",")
}

impl Engine {
    /// An engine for these (checked) rules.
    pub fn new(rules: Vec<Rule>) -> Engine {
        let state = rules.iter().map(|_| HashMap::new()).collect();
        Engine {
            rules,
            state,
            http: HttpCounts::default(),
            keys_dropped: 0,
            last_capture: None,
        }
    }

    /// The rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// Moves rule `i` to the values seen at `time` (keys absent from `values` are below).
    fn judge(&mut self, i: usize, time: i64, values: &[(String, f64)], out: &mut Vec<Event>) {
        let r = &self.rules[i];
        let st = &mut self.state[i];
        let mut seen: HashMap<&str, f64> = HashMap::new();
        for (k, v) in values {
            if *v > r.above {
                seen.insert(k.as_str(), *v);
            }
        }
        // Resolved: firing or pending keys no longer above.
        let gone: Vec<String> = st
            .keys()
            .filter(|k| !seen.contains_key(k.as_str()))
            .cloned()
            .collect();
        for k in gone {
            if let Some(s) = st.remove(&k) {
                if s.firing {
                    let last = values.iter().find(|(x, _)| *x == k).map_or(0.0, |x| x.1);
                    out.push(event(r, time, "resolved", k, last));
                }
            }
        }
        for (k, v) in seen {
            let len = st.len();
            let s = match st.get_mut(k) {
                Some(s) => s,
                None => {
                    if len >= MAX_KEYS_PER_RULE {
                        self.keys_dropped += 1;
                        continue;
                    }
                    st.entry(k.to_string()).or_insert(KeyState {
                        since: time,
                        firing: false,
                        value: v,
                    })
                }
            };
            s.value = v;
            if !s.firing && time - s.since >= r.for_secs as i64 {
                s.firing = true;
                out.push(event(r, time, "firing", k.to_string(), v));
            }
        }
    }

    /// Evaluates the rules on one view snapshot (its JSON lines) at `time`, the end of its
    /// interval (seconds).
    pub fn on_snapshot(&mut self, view: &str, time: i64, lines: &[u8]) -> Vec<Event> {
        let mut rows: Vec<Map<String, Value>> = Vec::new();
        for l in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            if let Ok(m) = serde_json::from_slice::<Map<String, Value>>(l) {
                rows.push(m);
            }
        }
        let mut out = Vec::new();
        for i in 0..self.rules.len() {
            let r = &self.rules[i];
            if r.view.as_deref() != Some(view) {
                continue;
            }
            let metric = r.metric.as_deref().unwrap_or("");
            let values: Vec<(String, f64)> = match r.measure {
                Measure::Threshold => rows
                    .iter()
                    .map(|m| {
                        (
                            key_of(m),
                            m.get(metric).and_then(Value::as_f64).unwrap_or(0.0),
                        )
                    })
                    .collect(),
                Measure::Share => {
                    let total: f64 = rows
                        .iter()
                        .filter_map(|m| m.get(metric).and_then(Value::as_f64))
                        .sum();
                    rows.iter()
                        .map(|m| {
                            let x = m.get(metric).and_then(Value::as_f64).unwrap_or(0.0);
                            (key_of(m), if total > 0.0 { x / total } else { 0.0 })
                        })
                        .collect()
                }
                _ => continue,
            };
            self.judge(i, time, &values, &mut out);
        }
        out
    }

    /// Counts HTTP responses per host (from HTTP record JSON lines) for the next interval end.
    pub fn on_http(&mut self, lines: &[u8]) {
        for l in lines.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
            let Ok(m) = serde_json::from_slice::<Map<String, Value>>(l) else {
                continue;
            };
            if m.get("type").and_then(Value::as_str) == Some("request") {
                continue;
            }
            let (Some(host), Some(status)) = (
                m.get("host").and_then(Value::as_str),
                m.get("status").and_then(Value::as_u64),
            ) else {
                continue;
            };
            let n = self.http.by_host.len();
            if n >= MAX_KEYS_PER_RULE && !self.http.by_host.contains_key(host) {
                self.keys_dropped += 1;
                continue;
            }
            let c = self.http.by_host.entry(host.to_string()).or_default();
            c.0 += 1;
            c.1 += u64::from(status >= 500);
        }
    }

    /// Ends an interval at `time`: judges the HTTP error rates of the responses counted since
    /// the last end and the drop ratio of the capture counters (totals so far), then starts a
    /// new interval.
    pub fn end_interval(&mut self, time: i64, capture: Option<(u64, u64)>) -> Vec<Event> {
        let mut out = Vec::new();
        let http = std::mem::take(&mut self.http.by_host);
        let drop = capture.map(|(rx, dr)| {
            let (prx, pdr) = self.last_capture.unwrap_or((0, 0));
            let (rx, dr) = (rx.saturating_sub(prx), dr.saturating_sub(pdr));
            // The kernel's received count includes what it dropped.
            if rx == 0 {
                0.0
            } else {
                dr as f64 / rx as f64
            }
        });
        if capture.is_some() {
            self.last_capture = capture;
        }
        for i in 0..self.rules.len() {
            let min = self.rules[i].min_responses;
            let values: Vec<(String, f64)> = match self.rules[i].measure {
                Measure::HttpErrorRate => http
                    .iter()
                    .filter(|(_, (n, _))| *n >= min)
                    .map(|(h, (n, e))| (format!("host={h}"), *e as f64 / *n as f64))
                    .collect(),
                Measure::DropRatio => match drop {
                    Some(d) => vec![("capture".to_string(), d)],
                    None => continue,
                },
                _ => continue,
            };
            self.judge(i, time, &values, &mut out);
        }
        out
    }

    /// The keys firing now, per rule: (rule, severity, key, value).
    pub fn firing(&self) -> Vec<(String, String, String, f64)> {
        let mut v = Vec::new();
        for (r, st) in self.rules.iter().zip(&self.state) {
            for (k, s) in st.iter().filter(|(_, s)| s.firing) {
                v.push((r.name.clone(), r.severity.clone(), k.clone(), s.value));
            }
        }
        v.sort_by(|a, b| (&a.0, &a.2).cmp(&(&b.0, &b.2)));
        v
    }
}

fn event(r: &Rule, time: i64, state: &'static str, key: String, value: f64) -> Event {
    Event {
        time,
        state,
        rule: r.name.clone(),
        severity: r.severity.clone(),
        key,
        value,
        above: r.above,
        labels: r.labels.clone(),
    }
}

/// Seconds since the epoch of a record stamp (`YYYY-MM-DDTHH:MM:SS...Z`).
pub fn parse_time(s: &str) -> Option<i64> {
    let num = |r: std::ops::Range<usize>| -> Option<i64> { s.get(r)?.parse().ok() };
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (h, mi, se) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let yy = if m <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let days = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + se)
}

/// Alert metrics for a Prometheus endpoint: what fires now and the events sent.
#[derive(Default)]
pub struct AlertMetrics {
    inner: Mutex<MetricsState>,
}

#[derive(Default)]
struct MetricsState {
    firing: Vec<(String, String, String, f64)>,
    events: BTreeMap<(String, &'static str), u64>,
    keys_dropped: u64,
}

impl AlertMetrics {
    /// Records the engine's state after an evaluation and the events it made.
    pub fn update(&self, engine: &Engine, events: &[Event]) {
        let mut m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        m.firing = engine.firing();
        m.keys_dropped = engine.keys_dropped;
        for e in events {
            *m.events.entry((e.rule.clone(), e.state)).or_default() += 1;
        }
    }

    /// Adds the metrics to a Prometheus exposition.
    pub fn expose(&self, e: &mut Exposition) {
        let m = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        for (r, sev, k, v) in &m.firing {
            let l = [
                ("rule", r.as_str()),
                ("severity", sev.as_str()),
                ("key", k.as_str()),
            ];
            e.sample(
                "netspectra_alert_firing",
                Kind::Gauge,
                "1 per rule and key firing now.",
                &l,
                1.0,
            );
            e.sample(
                "netspectra_alert_value",
                Kind::Gauge,
                "The measured value of a firing rule's key.",
                &l,
                *v,
            );
        }
        for ((r, s), n) in &m.events {
            e.sample(
                "netspectra_alert_events_total",
                Kind::Counter,
                "Alert events sent, per rule and state.",
                &[("rule", r.as_str()), ("state", s)],
                *n as f64,
            );
        }
        e.counter(
            "netspectra_alert_keys_dropped_total",
            "Keys not tracked because a rule's key bound was reached.",
            m.keys_dropped,
        );
    }

    /// The metrics in the Prometheus text format.
    pub fn render(&self) -> String {
        let mut e = Exposition::new();
        self.expose(&mut e);
        e.as_str().to_string()
    }
}

#[cfg(test)]
mod tests;

//! `netspectra probe`: one process that watches a network continuously: one capture, one
//! decode per packet, every analysis, every record stream to every sink, until SIGINT/SIGTERM
//! (which drain it); SIGHUP reloads the configuration. With `--read FILE...` the same pipeline
//! runs over capture files and ends with them.

use crate::exit::BadInput;
use crate::probe_guard::{self, GuardMetrics, GuardThread};
use crate::stdout::outln;
use crate::stop::Stop;
use anyhow::{Context, Result};
use clap::Args;
use netspectra_capture::{drop_privileges, give_to, FilterHandle, LiveConfig, LiveSource};
use netspectra_guard::RunConfig;
use netspectra_metrics::{EndpointOptions, MetricsServer, Readiness};
use netspectra_pcap::CaptureReader;
use netspectra_pipeline::probe::config::{
    InterfaceSection, MetricsSection, ProbeConfig, SinkSection,
};
use netspectra_pipeline::probe::{self, SinkContext, StartedSink};
use netspectra_pipeline::{Control, Pipeline, PipelineMetrics, RunReport};
use netspectra_sinks::outputs::OutputPlan;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Arguments of `netspectra probe`.
#[derive(Args)]
pub struct ProbeArgs {
    /// YAML configuration (see examples/probe.yaml). Without one: flows (default views) and
    /// HTTP into the sinks of --out / --export.
    #[arg(short = 'c', long = "config")]
    config: Option<PathBuf>,
    /// Check the configuration (keys, bounds, filters, sink URLs, key file) and exit: 0 when
    /// valid, 2 naming the key and line otherwise.
    #[arg(long)]
    check_config: bool,
    /// Run over these capture files (one continuous input) instead of capturing, then exit.
    #[arg(short = 'r', long = "read", num_args = 1..)]
    read: Vec<PathBuf>,
    /// Capture from this interface instead of the configured ones.
    #[arg(short = 'i', long = "interface", conflicts_with = "read")]
    interface: Option<String>,
    /// tcpdump filter for -i or --read (the configured interfaces have their own).
    #[arg(short = 'f', long = "filter")]
    filter: Option<String>,
    /// Worker threads (fanout sockets) for -i and --read.
    #[arg(short = 't', long, default_value_t = 1)]
    threads: usize,
    /// Write every stream as JSON lines under this folder (flows.jsonl, http.jsonl, view
    /// snapshots in <interval start>/<view>.jsonl).
    #[arg(short = 'o', long = "out")]
    out: Option<PathBuf>,
    /// Store every stream in this embedded store file (SQLite; no server): what
    /// `netspectra console --store FILE` serves. The default when no other sink is given is
    /// netspectra.db in the working directory.
    #[arg(long, value_name = "FILE")]
    store: Option<PathBuf>,
    /// Also send every stream to this destination: clickhouse://HOST:PORT/DB (one table per
    /// stream), nats://HOST:PORT[,HOST:PORT] (the JetStream bus, docs/BUS.md) or
    /// ipfix://HOST:PORT (flow records). Repeatable.
    #[arg(long, value_name = "URL")]
    export: Vec<String>,
    /// Metrics and health endpoint address (overrides the configuration's).
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
    /// Drop to this user once sockets, listeners and output folders are open (as tcpdump -Z).
    #[arg(short = 'Z', long = "user")]
    user: Option<String>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
    /// No progress or status lines.
    #[arg(short = 'q', long)]
    quiet: bool,
}

/// Largest configuration file read.
const MAX_CONFIG: u64 = 1 << 20;

/// The configuration as loaded: parsed, with its text and name for error lines.
struct Loaded {
    cfg: ProbeConfig,
    text: String,
    origin: String,
}

fn load(path: Option<&Path>) -> Result<Loaded> {
    let Some(p) = path else {
        return Ok(Loaded {
            cfg: ProbeConfig::from_yaml("{}", "<defaults>").map_err(|e| BadInput(e.to_string()))?,
            text: String::new(),
            origin: "<defaults>".into(),
        });
    };
    let mut text = String::new();
    std::fs::File::open(p)
        .and_then(|f| f.take(MAX_CONFIG + 1).read_to_string(&mut text))
        .map_err(|e| BadInput(format!("config {}: {e}", p.display())))?;
    if text.len() as u64 > MAX_CONFIG {
        return Err(BadInput(format!("config {}: larger than 1 MiB", p.display())).into());
    }
    let origin = p.display().to_string();
    let cfg = ProbeConfig::from_yaml(&text, &origin).map_err(|e| BadInput(e.to_string()))?;
    Ok(Loaded { cfg, text, origin })
}

/// Where packets come from.
enum Input {
    Files(Vec<PathBuf>),
    Live(Vec<InterfaceSection>),
}

fn input_of(a: &ProbeArgs, cfg: &ProbeConfig) -> Result<Input> {
    if !a.read.is_empty() {
        return Ok(Input::Files(a.read.clone()));
    }
    if let Some(i) = &a.interface {
        return Ok(Input::Live(vec![InterfaceSection {
            name: i.clone(),
            threads: a.threads,
            filter: a.filter.clone(),
            block_size: None,
            blocks: None,
            snaplen: 0,
            promisc: true,
        }]));
    }
    if cfg.capture.interfaces.is_empty() {
        return Err(BadInput(
            "nothing to capture: give --read FILE..., -i IFACE, or capture.interfaces in the configuration".into(),
        )
        .into());
    }
    Ok(Input::Live(cfg.capture.interfaces.clone()))
}

/// Checks every filter by compiling it (before anything starts).
fn check_filters(input: &Input, filter: Option<&str>) -> Result<()> {
    match input {
        Input::Files(_) => {
            crate::live::user_filter(filter)?;
        }
        Input::Live(ifaces) => {
            for i in ifaces {
                crate::live::user_filter(i.filter.as_deref())
                    .with_context(|| format!("capture.interfaces '{}'", i.name))?;
            }
        }
    }
    Ok(())
}

/// The embedded store a probe writes when no sink is given: the file `netspectra console` reads
/// when given none.
const DEFAULT_STORE: &str = "netspectra.db";

/// Runs `netspectra probe`.
pub fn run(a: ProbeArgs) -> Result<ExitCode> {
    if a.threads == 0 || a.threads > netspectra_engine::MAX_THREADS {
        return Err(BadInput(format!(
            "--threads must be 1..={}",
            netspectra_engine::MAX_THREADS
        ))
        .into());
    }
    let loaded = load(a.config.as_deref())?;
    let set = probe::analyses(&loaded.cfg, &loaded.text, &loaded.origin)
        .map_err(|e| BadInput(e.to_string()))?;
    probe::check_alerts(&loaded.cfg, &set).map_err(BadInput)?;
    // One host needs no server: with no sink given, records go to the embedded store that
    // `netspectra console` reads by default.
    let store = a.store.clone().or_else(|| {
        (loaded.cfg.sinks.is_empty() && a.out.is_none() && a.export.is_empty())
            .then(|| PathBuf::from(DEFAULT_STORE))
    });
    if a.store.is_none() && store.is_some() && !a.check_config {
        eprintln!(
            "probe: no sink given: every stream goes to the embedded store {DEFAULT_STORE} \
             (`netspectra console` serves it)"
        );
    }
    let mut cfg_sinks = loaded.cfg.sinks.clone();
    cfg_sinks.extend(
        probe::shortcut_sinks(a.out.as_deref(), store.as_deref(), &a.export).map_err(BadInput)?,
    );
    let input = input_of(&a, &loaded.cfg)?;
    check_filters(&input, a.filter.as_deref())?;
    let metrics_cfg = match &a.metrics {
        Some(addr) => Some(MetricsSection {
            listen: addr.clone(),
            token: loaded
                .cfg
                .metrics
                .as_ref()
                .and_then(|m| m.token.clone())
                .or_else(|| std::env::var("NETSPECTRA_METRICS_TOKEN").ok()),
        }),
        None => loaded.cfg.metrics.clone(),
    };
    let inputs: Vec<PathBuf> = match &input {
        Input::Files(f) => f.clone(),
        Input::Live(_) => Vec::new(),
    };
    // No output may be an input (a files sink writing into the folder it reads).
    let mut plan = OutputPlan::new();
    for f in &inputs {
        plan.input(f);
    }
    for s in &cfg_sinks {
        match s {
            SinkSection::Files { dir, .. } => plan
                .output_dir(dir)
                .map_err(|e| BadInput(format!("sinks: {e}")))?,
            SinkSection::Store { path, .. } => plan
                .output(path)
                .map_err(|e| BadInput(format!("sinks: {e}")))?,
            _ => {}
        }
    }
    if loaded.cfg.guard.is_some() && !a.read.is_empty() {
        return Err(BadInput(
            "guard: the guard protects a live interface; it does not run with --read".into(),
        )
        .into());
    }
    if a.check_config {
        outln!(
            "probe: configuration ok: {} ({}; analyses: {}; sinks: {}{})",
            loaded.origin,
            match &input {
                Input::Files(f) => format!("{} file(s)", f.len()),
                Input::Live(i) => format!(
                    "interfaces {}",
                    i.iter()
                        .map(|x| x.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            },
            [
                set.flows.as_ref().map(|_| "flows"),
                set.http.as_ref().map(|_| "http"),
                set.tls.as_ref().map(|_| "tls"),
                set.dns.as_ref().map(|_| "dns"),
            ]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(", "),
            cfg_sinks.len(),
            match &loaded.cfg.guard {
                Some(g) => format!("; guard on {}", g.interface),
                None => String::new(),
            }
        );
        return Ok(ExitCode::SUCCESS);
    }

    let stop = Stop::new();
    let workers = match &input {
        Input::Files(_) => a.threads,
        Input::Live(i) => i.iter().map(|x| x.threads).sum(),
    };
    let mut pipeline = Pipeline::new(
        set,
        workers,
        match &input {
            Input::Files(_) => a.filter.clone(),
            Input::Live(_) => None,
        },
    );
    let metrics = pipeline.metrics();
    let capture_open = Arc::new(AtomicBool::new(false));
    let live_counters = Arc::new(crate::metrics::LiveCounters::default());
    let alert_metrics = Arc::new(netspectra_alerts::AlertMetrics::default());
    let guard_metrics = GuardMetrics::default();
    let _endpoint = match &metrics_cfg {
        Some(m) => Some(start_endpoint(
            m,
            Arc::clone(&metrics),
            Arc::clone(&live_counters),
            Arc::clone(&alert_metrics),
            guard_metrics.clone(),
            Arc::clone(&capture_open),
            a.quiet,
        )?),
        None => None,
    };
    // Sockets first (they need the privileges), then sinks and their folders.
    let mut sources: Vec<LiveSource> = Vec::new();
    let mut filters: Vec<(String, FilterHandle)> = Vec::new();
    if let Input::Live(ifaces) = &input {
        for i in ifaces {
            let mut lc = LiveConfig::new(&i.name);
            lc.threads = i.threads;
            lc.filter = i.filter.clone().filter(|f| !f.trim().is_empty());
            lc.snaplen = i.snaplen;
            lc.promisc = i.promisc;
            lc.block_size = i.block_size.map_or(0, |b| b.0 as u32);
            lc.block_count = i.blocks.unwrap_or(0);
            let s = crate::live::open(&mut lc, &stop)?;
            filters.extend(s.iter().map(|x| (i.name.clone(), x.filter_handle())));
            sources.extend(s);
        }
        live_counters.set(
            &ifaces
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            &sources,
        );
    }
    let offline = matches!(input, Input::Files(_));
    let ctx = SinkContext {
        probe: &loaded.cfg.probe.name,
        site: &loaded.cfg.probe.site,
        offline,
        inputs: &inputs,
        stop: stop.handle().shared(),
    };
    let started = probe::start_sinks(&cfg_sinks, &ctx).map_err(|e| anyhow::anyhow!(e))?;
    let counters = Arc::clone(&live_counters);
    let alerts = probe::start_alerts(
        &loaded.cfg,
        pipeline.analyses(),
        &cfg_sinks,
        &ctx,
        Arc::clone(&alert_metrics),
        Some(Arc::new(move || counters.totals())),
    )
    .map_err(BadInput)?;
    // The guard loads and attaches while the privileges are there.
    let guard = match (&loaded.cfg.guard, &a.config) {
        (Some(g), Some(path)) => {
            let r = probe_guard::start(g, path, &guard_metrics, a.quiet)?;
            Some(GuardThread::spawn(
                r,
                pipeline.producer(),
                stop.handle().shared(),
                path.clone(),
            )?)
        }
        _ => None,
    };
    let user = a.user.clone().or_else(|| loaded.cfg.capture.user.clone());
    if let Some(u) = &user {
        // Folders made for outputs stay writable by the user we become.
        for s in &cfg_sinks {
            let dirs: Vec<&PathBuf> = match s {
                SinkSection::Files { dir, .. } => vec![dir],
                SinkSection::Clickhouse {
                    spool: Some(sp), ..
                }
                | SinkSection::Nats {
                    spool: Some(sp), ..
                } => vec![&sp.dir],
                _ => vec![],
            };
            for d in dirs {
                std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
                give_to(d, u)?;
            }
        }
        drop_privileges(u)?;
    }
    for s in started {
        pipeline.add_sink(s.runner);
    }
    if let Some(r) = alerts {
        pipeline.add_sink(r);
    }
    let control = pipeline.control();
    let base_tick = pipeline.analyses().base_tick();
    let running = Arc::new(Mutex::new(loaded.cfg));
    if let Some(path) = &a.config {
        watch_reloads(
            path.clone(),
            Arc::clone(&running),
            control.clone(),
            filters,
            base_tick,
            SinkSetup {
                extra: probe::shortcut_sinks(a.out.as_deref(), store.as_deref(), &a.export)
                    .unwrap_or_default(),
                stop: stop.handle().shared(),
                guard: guard.as_ref().map(GuardThread::reloader),
            },
        )?;
    }
    let t0 = Instant::now();
    let report = match input {
        Input::Live(ifaces) => {
            stop.arm()?;
            capture_open.store(true, Ordering::Relaxed);
            if !a.quiet {
                let names: Vec<&str> = ifaces.iter().map(|i| i.name.as_str()).collect();
                crate::live::announce("probe", &names.join(","), workers);
            }
            let r = pipeline.run_live(sources);
            capture_open.store(false, Ordering::Relaxed);
            r
        }
        Input::Files(files) => {
            stop.arm()?;
            capture_open.store(true, Ordering::Relaxed);
            pipeline.run_files(
                &files,
                &mut |f| CaptureReader::open(f),
                &stop.handle().shared(),
                &mut |_, _| {},
            )
        }
    };
    drop(control);
    // The stop that ended the capture ended the guard's loop too (the run waited for its last
    // events); if the capture ended otherwise, stop it here.
    stop.handle().shared().store(true, Ordering::Relaxed);
    let guard = guard.map(GuardThread::join);
    finish(
        &a,
        report,
        t0.elapsed().as_secs_f64(),
        &stop,
        offline,
        guard,
    )
}

/// What a reload needs to start new sinks.
struct SinkSetup {
    /// Sinks from the command line, kept across reloads.
    extra: Vec<SinkSection>,
    stop: Arc<AtomicBool>,
    /// Where a new `guard:` section goes (when a guard runs).
    guard: Option<Sender<RunConfig>>,
}

/// Reloads the configuration on every SIGHUP: a valid one takes effect at the next interval
/// boundary (views, sinks; filters at once); an invalid one is refused, and the running one
/// stays. Changes that need new sockets or other analyses are refused with that reason.
fn watch_reloads(
    path: PathBuf,
    running: Arc<Mutex<ProbeConfig>>,
    control: Control,
    filters: Vec<(String, FilterHandle)>,
    base_tick: Option<i64>,
    setup: SinkSetup,
) -> Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([signal_hook::consts::SIGHUP])
        .context("installing the SIGHUP handler")?;
    std::thread::Builder::new()
        .name("reload".into())
        .spawn(move || {
            for _ in signals.forever() {
                match reload(&path, &running, &control, &filters, base_tick, &setup) {
                    Ok(what) => eprintln!("netspectra probe: reloaded {}: {what}", path.display()),
                    Err(e) => eprintln!(
                        "netspectra probe: reload of {} refused, the running configuration stays: {e}",
                        path.display()
                    ),
                }
            }
        })
        .context("starting the reload thread")?;
    Ok(())
}

fn reload(
    path: &Path,
    running: &Mutex<ProbeConfig>,
    control: &Control,
    filters: &[(String, FilterHandle)],
    base_tick: Option<i64>,
    setup: &SinkSetup,
) -> Result<String, String> {
    let loaded = load(Some(path)).map_err(|e| format!("{e:#}"))?;
    let new = &loaded.cfg;
    let set = probe::analyses(new, &loaded.text, &loaded.origin).map_err(|e| e.to_string())?;
    let mut old = running.lock().unwrap_or_else(|p| p.into_inner());
    // What a running capture cannot change.
    let ifaces = |c: &ProbeConfig| -> Vec<(String, usize, u32, bool)> {
        c.capture
            .interfaces
            .iter()
            .map(|i| (i.name.clone(), i.threads, i.snaplen, i.promisc))
            .collect()
    };
    if ifaces(&old) != ifaces(new) {
        return Err("interfaces, threads, snaplen or promisc changed: that needs a restart".into());
    }
    if old.analyses.flows.is_some() != new.analyses.flows.is_some()
        || old.analyses.http.is_some() != new.analyses.http.is_some()
        || old.analyses.tls.is_some() != new.analyses.tls.is_some()
        || old.analyses.dns.is_some() != new.analyses.dns.is_some()
        || old.anonymize.is_some() != new.anonymize.is_some()
    {
        return Err("analyses or anonymization switched on or off: that needs a restart".into());
    }
    match (&old.guard, &new.guard, &setup.guard) {
        (None, None, _) => {}
        (Some(o), Some(n), Some(_)) => probe_guard::reloadable(o, n)?,
        _ => return Err("the guard section was added or removed: that needs a restart".into()),
    }
    if let (Some(f), Some(base)) = (&set.flows, base_tick) {
        if let Some(v) = f.views.iter().find(|v| v.interval % base != 0) {
            return Err(format!(
                "view {:?}: its interval must be a multiple of the running tick ({} ms); that \
                 needs a restart",
                v.name,
                base / 1_000_000
            ));
        }
    }
    for (i, s) in new.sinks.iter().enumerate() {
        if let SinkSection::Clickhouse { url, .. } = s {
            netspectra_clickhouse::parse_database_url(url)
                .map_err(|e| format!("sinks[{i}]: {e}"))?;
        }
    }
    // Valid: start the new sinks, then hand everything over.
    let mut list = new.sinks.clone();
    list.extend(setup.extra.iter().cloned());
    let ctx = SinkContext {
        probe: &new.probe.name,
        site: &new.probe.site,
        offline: false,
        inputs: &[],
        stop: Arc::clone(&setup.stop),
    };
    let started: Vec<StartedSink> = probe::start_sinks(&list, &ctx)?;
    for (name, h) in filters {
        let expr = new
            .capture
            .interfaces
            .iter()
            .find(|i| &i.name == name)
            .and_then(|i| i.filter.clone())
            .filter(|f| !f.trim().is_empty());
        h.set(expr.as_deref())
            .map_err(|e| format!("filter of {name}: {e}"))?;
    }
    let views = set.flows.map(|f| f.views).unwrap_or_default();
    let n = (views.len(), started.len());
    control.views(views);
    control.sinks(started.into_iter().map(|s| s.runner).collect());
    if let (Some(g), Some(tx)) = (&new.guard, &setup.guard) {
        // The guard's thread installs the new policy at once (its log says so).
        let _ = tx.send(g.clone());
    }
    *old = loaded.cfg;
    Ok(format!(
        "{} views and {} sinks from the next interval boundary",
        n.0, n.1
    ))
}

fn start_endpoint(
    m: &MetricsSection,
    metrics: Arc<PipelineMetrics>,
    live: Arc<crate::metrics::LiveCounters>,
    alerts: Arc<netspectra_alerts::AlertMetrics>,
    guard: GuardMetrics,
    capture_open: Arc<AtomicBool>,
    quiet: bool,
) -> Result<MetricsServer> {
    let readiness_metrics = Arc::clone(&metrics);
    let opts = EndpointOptions {
        token: m.token.clone(),
        readiness: Some(Box::new(move || {
            let mut reasons = Vec::new();
            if !capture_open.load(Ordering::Relaxed) {
                reasons.push("capture not open".to_string());
            }
            let sinks = readiness_metrics
                .sinks
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (name, s) in sinks.iter() {
                if s.failed.load(Ordering::Relaxed) {
                    reasons.push(format!("sink {name} failed"));
                } else if !s.healthy.load(Ordering::Relaxed) {
                    reasons.push(format!("sink {name} is not delivering"));
                }
            }
            Readiness {
                ready: reasons.is_empty(),
                reasons,
            }
        })),
    };
    let srv = MetricsServer::start_with(
        m.listen.as_str(),
        move |e| {
            metrics.render(e);
            live.render(e);
            alerts.expose(e);
            guard.render(e);
        },
        opts,
    )
    .map_err(|e| BadInput(format!("metrics.listen {}: {e}", m.listen)))?;
    if !quiet {
        eprintln!("probe: metrics on http://{}/metrics", srv.local_addr());
    }
    Ok(srv)
}

/// Prints the summary and picks the exit status.
fn finish(
    a: &ProbeArgs,
    report: RunReport,
    secs: f64,
    stop: &Stop,
    offline: bool,
    guard: Option<(String, u64)>,
) -> Result<ExitCode> {
    let mut failure = None;
    let mut waiting = Vec::new();
    let mut sinks = Vec::new();
    for (rep, closed) in &report.sinks {
        if let Err(e) = closed {
            failure.get_or_insert(e.to_string());
        }
        if let Some(f) = &rep.failure {
            failure.get_or_insert(f.clone());
        }
        if offline && (rep.dropped_full > 0 || rep.dropped_refused > 0) {
            failure.get_or_insert(format!(
                "{}: {} records not delivered ({})",
                rep.sink,
                rep.dropped_full + rep.dropped_refused,
                rep.last_error.as_deref().unwrap_or("dropped")
            ));
        }
        if rep.backlog > 0 {
            waiting.push(format!(
                "{}: {} records wait in its spool and go first next run ({})",
                rep.sink,
                rep.backlog,
                rep.last_error.as_deref().unwrap_or("not delivered yet")
            ));
        }
        sinks.push(serde_json::to_value(rep)?);
    }
    let flows = report.analyses.flows.as_ref();
    let http = report.analyses.http.as_ref().map(|h| h.report(10));
    let tls = report.analyses.tls.as_ref().map(|s| s.report(10));
    let dns = report.analyses.dns.as_ref().map(|s| s.report(10));
    if a.json {
        let v = serde_json::json!({
            "packets": report.stats.packets,
            "bytes": report.stats.bytes,
            "kernel_drops": report.stats.kernel_drops,
            "seconds": secs,
            "stopped": report.stopped && offline,
            "flows": flows.map(|f| serde_json::json!({
                "records": f.flows,
                "packets": f.packets,
                "bytes": f.bytes,
                "snapshots": f.snapshots,
                "by_proto": f.by_proto,
            })),
            "http": http.as_ref().map(|h| serde_json::json!({
                "requests": h.requests,
                "responses": h.responses,
                "paired": h.paired,
            })),
            "tls": tls.as_ref().map(|s| serde_json::json!({
                "records": s.records,
                "connections": s.connections,
                "quic_connections": s.quic_connections,
            })),
            "dns": dns.as_ref().map(|s| serde_json::json!({
                "records": s.records,
                "answered": s.answered,
                "unanswered": s.unanswered,
            })),
            "guard": guard.as_ref().map(|(iface, n)| serde_json::json!({
                "interface": iface,
                "events": n,
            })),
            "sinks": sinks,
            "warnings": report.warnings,
        });
        outln!("{v}");
    } else if !a.quiet {
        let mut t = format!(
            "Probe: {} packets ({} bytes) in {secs:.2} s, kernel drops {}",
            report.stats.packets, report.stats.bytes, report.stats.kernel_drops
        );
        if let Some(f) = flows {
            t.push_str(&format!(
                "\n  flows: {} records, {} packets, {} snapshots",
                f.flows, f.packets, f.snapshots
            ));
        }
        if let Some(h) = &http {
            t.push_str(&format!(
                "\n  http: {} requests, {} responses",
                h.requests, h.responses
            ));
        }
        if let Some(s) = &tls {
            t.push_str(&format!(
                "\n  tls: {} records ({} TLS, {} QUIC connections)",
                s.records, s.connections, s.quic_connections
            ));
        }
        if let Some(s) = &dns {
            t.push_str(&format!(
                "\n  dns: {} records ({} answered, {} unanswered)",
                s.records, s.answered, s.unanswered
            ));
        }
        if let Some((iface, n)) = &guard {
            t.push_str(&format!("\n  guard on {iface}: {n} deny/log events"));
        }
        for (rep, _) in &report.sinks {
            t.push_str(&format!(
                "\n  sink {}: {} of {} records delivered, {} spooled, {} dropped (full), {} refused, {} waiting",
                rep.sink, rep.delivered, rep.records_in, rep.spooled, rep.dropped_full,
                rep.dropped_refused, rep.backlog
            ));
        }
        for w in &report.warnings {
            t.push_str(&format!("\nwarning: {w}"));
        }
        outln!("{t}");
    }
    if let Some(f) = failure {
        return Err(anyhow::anyhow!("{f}"));
    }
    if let Some(e) = report.error {
        let what = report.error_input.map_or("capturing".to_string(), |f| {
            format!("reading {}", f.display())
        });
        return Err(anyhow::Error::new(e).context(what));
    }
    for w in &waiting {
        eprintln!("netspectra probe: {w}");
    }
    if offline && report.stopped {
        return Err(stop
            .interrupted(if waiting.is_empty() {
                "the records of the packets read until then were delivered"
            } else {
                "the records of the packets read until then were delivered or spooled"
            })
            .into());
    }
    if offline && !waiting.is_empty() {
        // A run over files ends when its records are delivered; these were not (yet).
        return Err(anyhow::anyhow!(
            "records not delivered: {}",
            waiting.join("; ")
        ));
    }
    Ok(ExitCode::SUCCESS)
}

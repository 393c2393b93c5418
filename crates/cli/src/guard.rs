//! `netspectra guard`: run the eBPF guard on an interface and inspect it (status, events,
//! sessions), validate policies (check) and reload them (reload or SIGHUP).
//!
//! A running guard pins its maps under /sys/fs/bpf/netspectra/<iface>/ (bpffs is mounted if
//! needed) and writes /run/netspectra/<iface>.json (pid, policy file, rule names) so that the other
//! subcommands can find it.

use crate::exit::BadInput;
use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use netspectra_guard::abi::{c, GuardEvent, SessKey, SessVal};
use netspectra_guard::events::{action_name, event_json, proto_name};
use netspectra_guard::loader::monotonic_ns;
use netspectra_guard::policy::{rule_name, u128_to_ip};
use netspectra_guard::run::{pid_alive, read_state, state_path, write_state, State};
use netspectra_guard::{compile, GuardError, Maps, Policy, PolicySource, RunConfig, Running};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Arguments of `netspectra guard`.
#[derive(Args)]
pub struct GuardArgs {
    #[command(subcommand)]
    cmd: GuardCmd,
}

#[derive(Subcommand)]
enum GuardCmd {
    /// Attach the guard to an interface and enforce a policy (stays in the foreground).
    Run(RunArgs),
    /// Show counters, map fill and policy generation of a running guard.
    Status(StatusArgs),
    /// Stream deny/log events of a running guard as JSON lines.
    Events(EventsArgs),
    /// List the top sessions of a running guard.
    Sessions(SessionsArgs),
    /// Validate a policy file and print the compiled rules.
    Check(CheckArgs),
    /// Reload the policy of a running guard (SIGHUP), or install one into a pinned guard.
    Reload(ReloadArgs),
    /// Detach a guard left attached by `run --pin` and remove its pins.
    Unpin(IfaceArg),
}

#[derive(Args)]
struct RunArgs {
    /// Interface to protect.
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// Policy file (YAML).
    #[arg(long)]
    policy: PathBuf,
    /// Attach on TC ingress (default: ingress and egress).
    #[arg(long)]
    ingress: bool,
    /// Attach on TC egress (default: ingress and egress).
    #[arg(long)]
    egress: bool,
    /// Attach with XDP instead of TC (ingress only).
    #[arg(long)]
    xdp: bool,
    /// Report what would be denied without dropping (overrides the policy's `audit`).
    #[arg(long)]
    audit: bool,
    /// Pin programs and maps to bpffs so that they stay attached after exit (`guard unpin` detaches).
    #[arg(long)]
    pin: bool,
    /// Session map capacity (LRU).
    #[arg(long, default_value_t = c::GUARD_DEFAULT_MAX_SESSIONS as u32)]
    max_sessions: u32,
    /// Print deny/log events as JSON lines on stdout (otherwise `guard events` reads them).
    #[arg(long)]
    events: bool,
    /// Serve Prometheus metrics (counters, map fill, policy generation) on this address,
    /// e.g. 127.0.0.1:9464, at GET /metrics.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<String>,
}

#[derive(Args)]
struct IfaceArg {
    /// Interface the guard runs on.
    #[arg(short = 'i', long = "interface")]
    iface: String,
}

#[derive(Args)]
struct StatusArgs {
    /// Interface the guard runs on.
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EventsArgs {
    /// Interface the guard runs on.
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// Stop after this many events.
    #[arg(long)]
    count: Option<u64>,
    /// Stop after this many seconds.
    #[arg(long)]
    duration: Option<f64>,
}

#[derive(Args)]
struct SessionsArgs {
    /// Interface the guard runs on.
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// How many sessions to show (by bytes).
    #[arg(long, default_value_t = 20)]
    top: usize,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct CheckArgs {
    /// Policy file (YAML).
    #[arg(long)]
    policy: PathBuf,
}

#[derive(Args)]
struct ReloadArgs {
    /// Interface the guard runs on.
    #[arg(short = 'i', long = "interface")]
    iface: String,
    /// Install this policy file (default: the running guard re-reads its own file).
    #[arg(long)]
    policy: Option<PathBuf>,
}

/// Guard library errors as `netspectra guard` reports them (see [`guard_failure`]).
fn lib_err(e: GuardError) -> anyhow::Error {
    guard_failure(e, None)
}

/// Maps guard library errors to exit codes: configuration problems are bad input (2), under
/// the name of where the guard runs (`within`: "guard" under a probe; none for the command).
pub(crate) fn guard_failure(e: GuardError, within: Option<&str>) -> anyhow::Error {
    let bad = matches!(
        e,
        GuardError::Policy(_)
            | GuardError::Compile(_)
            | GuardError::Config(_)
            | GuardError::NoInterface(_)
    );
    match (bad, within) {
        (true, None) => BadInput(e.to_string()).into(),
        (true, Some(w)) => BadInput(format!("{w}: {e}")).into(),
        (false, None) => e.into(),
        (false, Some(w)) => anyhow::Error::new(e).context(w.to_string()),
    }
}

fn load_policy(path: &Path) -> Result<Policy> {
    Policy::from_file(path).map_err(lib_err)
}

/// Entry point of `netspectra guard`.
pub fn run(a: GuardArgs) -> Result<ExitCode> {
    // behave like other Unix tools when piped into `head`: die quietly on a closed pipe
    // SAFETY: restoring the default disposition of SIGPIPE has no preconditions.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    match a.cmd {
        GuardCmd::Run(r) => cmd_run(r),
        GuardCmd::Status(s) => cmd_status(s),
        GuardCmd::Events(e) => cmd_events(e),
        GuardCmd::Sessions(s) => cmd_sessions(s),
        GuardCmd::Check(c) => cmd_check(c),
        GuardCmd::Reload(r) => cmd_reload(r),
        GuardCmd::Unpin(u) => cmd_unpin(u),
    }
}

/// Writes one event as a JSON line (reuses `line`).
fn write_event(
    out: &mut impl Write,
    e: &GuardEvent,
    names: &[String],
    line: &mut String,
) -> std::io::Result<()> {
    event_json(e, &[], names, line);
    line.push('\n');
    out.write_all(line.as_bytes())
}

fn cmd_run(r: RunArgs) -> Result<ExitCode> {
    let cfg = RunConfig {
        interface: r.iface.clone(),
        policy: PolicySource::File(r.policy.clone()),
        ingress: r.ingress,
        egress: r.egress,
        xdp: r.xdp,
        audit: r.audit,
        max_sessions: r.max_sessions,
    };
    cfg.load_policy().map_err(lib_err)?;
    netspectra_guard::check_capabilities().map_err(lib_err)?;
    if let Some(st) = read_state(&r.iface) {
        if pid_alive(st.pid) && st.pid != std::process::id() {
            bail!("a guard is already running on {} (pid {})", r.iface, st.pid);
        }
    }
    let mut guard = Running::start(cfg).map_err(lib_err)?;
    let policy_file = std::fs::canonicalize(&r.policy).unwrap_or(r.policy.clone());
    let mut state = State::of(&guard, policy_file, "");
    state.pinned = r.pin;
    write_state(&r.iface, &state).map_err(lib_err)?;
    eprintln!("guard: {}", guard.summary());

    // Scrapes read the pinned maps on the metrics thread: the loop below never waits for them.
    let _metrics = match &r.metrics {
        Some(addr) => {
            let maps = Maps::open_pinned(&r.iface).map_err(lib_err)?;
            let iface = r.iface.clone();
            Some(crate::metrics::serve("guard", addr, false, move |e| {
                netspectra_guard::events::render_metrics(e, &iface, &maps)
            })?)
        }
        None => None,
    };
    let term = Arc::new(AtomicBool::new(false));
    let hup = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handler")?;
    }
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&hup))
        .context("installing SIGHUP handler")?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    while !term.load(Ordering::Relaxed) {
        if r.events {
            guard
                .poll(Duration::from_millis(200), |line| {
                    let _ = out
                        .write_all(line.as_bytes())
                        .and_then(|()| out.write_all(b"\n"));
                })
                .map_err(lib_err)?;
            out.flush().ok();
        } else {
            // The events stay in the ring buffer for `guard events`.
            std::thread::sleep(Duration::from_millis(200));
        }
        if hup.swap(false, Ordering::Relaxed) {
            // `guard reload --policy FILE` records the new file in the state before signalling
            if let Some(st) = read_state(&r.iface) {
                if st.pid == state.pid {
                    state.policy = st.policy;
                }
            }
            match load_policy(&state.policy).and_then(|p| guard.reload(p).map_err(lib_err)) {
                Ok(g) => {
                    eprintln!(
                        "guard: reloaded {} -> generation {g} ({} rules)",
                        state.policy.display(),
                        guard.policy().rules.len()
                    );
                    state.generation = g;
                    state.rules = guard
                        .policy()
                        .rules
                        .iter()
                        .map(|x| x.name.clone())
                        .collect();
                    write_state(&r.iface, &state).map_err(lib_err)?;
                }
                Err(e) => eprintln!(
                    "guard: reload failed, keeping generation {}: {e:#}",
                    state.generation
                ),
            }
        }
        if let Some(w) = guard.tick() {
            eprintln!("guard: {w}");
        }
    }
    out.flush().ok();
    let dir = guard.pin_dir().to_path_buf();
    guard.stop(r.pin).map_err(lib_err)?;
    if r.pin {
        eprintln!("guard: exiting; programs stay attached (pinned in {}); `netspectra guard unpin -i {}` detaches", dir.display(), r.iface);
    } else {
        eprintln!("guard: detached from {}", r.iface);
    }
    Ok(ExitCode::SUCCESS)
}

fn open(iface: &str) -> Result<Maps> {
    netspectra_guard::check_capabilities().map_err(lib_err)?;
    netspectra_guard::ensure_bpffs().map_err(lib_err)?;
    Maps::open_pinned(iface).map_err(lib_err)
}

fn cmd_status(s: StatusArgs) -> Result<ExitCode> {
    let maps = open(&s.iface)?;
    let cfg = maps.config().map_err(lib_err)?;
    let counters = maps.counters().map_err(lib_err)?;
    let usage = maps.usage().map_err(lib_err)?;
    let state = read_state(&s.iface).unwrap_or_default();
    let sess = usage.iter().find(|u| u.name == "sessions");
    let live = sess.and_then(|u| u.entries).unwrap_or(0) as u64;
    let created = counters.get(c::GUARD_C_SESS_CREATED);
    let retired = counters.get(c::GUARD_C_SESS_RETIRED);
    // LRU evictions are not reported by the kernel: estimate them from created - live - retired
    let evicted = created.saturating_sub(live).saturating_sub(retired);
    if s.json {
        let mut m = serde_json::Map::new();
        m.insert("interface".into(), s.iface.clone().into());
        m.insert("pid".into(), state.pid.into());
        m.insert("running".into(), pid_alive(state.pid).into());
        m.insert("generation".into(), cfg.generation.into());
        m.insert("audit".into(), (cfg.audit != 0).into());
        m.insert("rules".into(), state.rules.len().into());
        let mut cm = serde_json::Map::new();
        for (i, name) in netspectra_guard::abi::COUNTER_NAMES.iter().enumerate() {
            cm.insert((*name).into(), counters.0[i].into());
        }
        m.insert("counters".into(), cm.into());
        let mut um = serde_json::Map::new();
        for u in &usage {
            um.insert(
                u.name.into(),
                serde_json::json!({"entries": u.entries, "max_entries": u.max_entries}),
            );
        }
        m.insert("maps".into(), um.into());
        m.insert("sessions_evicted_estimate".into(), evicted.into());
        println!("{}", serde_json::Value::Object(m));
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "guard on {}: {} (pid {}), policy generation {}, {} rules{}, hooks {}",
        s.iface,
        if pid_alive(state.pid) {
            "running"
        } else {
            "not running (pinned)"
        },
        state.pid,
        cfg.generation,
        state.rules.len(),
        if cfg.audit != 0 { ", AUDIT mode" } else { "" },
        state.hooks.join(",")
    );
    println!("counters:");
    for (i, name) in netspectra_guard::abi::COUNTER_NAMES.iter().enumerate() {
        println!("  {:<24} {}", name, counters.0[i]);
    }
    println!("maps:");
    for u in &usage {
        let e = u.entries.unwrap_or(0);
        println!(
            "  {:<10} {:>9} / {:<9} ({:.1}% full)",
            u.name,
            e,
            u.max_entries,
            100.0 * e as f64 / u.max_entries.max(1) as f64
        );
    }
    println!("  sessions evicted (estimate: created - live - retired): {evicted}");
    Ok(ExitCode::SUCCESS)
}

fn cmd_events(e: EventsArgs) -> Result<ExitCode> {
    let mut maps = open(&e.iface)?;
    let names = read_state(&e.iface).map(|s| s.rules).unwrap_or_default();
    let term = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, Arc::clone(&term)).context("installing signal handler")?;
    }
    let start = Instant::now();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut line = String::with_capacity(256);
    let mut n = 0u64;
    let limit = e.count.unwrap_or(u64::MAX);
    let deadline = e.duration.map(Duration::from_secs_f64);
    while !term.load(Ordering::Relaxed) && n < limit && deadline.is_none_or(|d| start.elapsed() < d)
    {
        let mut io_err = None;
        maps.poll_events(Duration::from_millis(100), |ev| {
            if n < limit {
                if let Err(err) = write_event(&mut out, ev, &names, &mut line) {
                    io_err = Some(err);
                }
                n += 1;
            }
        })
        .map_err(lib_err)?;
        if let Some(err) = io_err {
            if err.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(ExitCode::SUCCESS);
            }
            return Err(err.into());
        }
        out.flush().ok();
    }
    Ok(ExitCode::SUCCESS)
}

fn fmt_ep(a: &[u8; 16], p: u16, proto: u8) -> String {
    let ip = u128_to_ip(u128::from_be_bytes(*a));
    let host = if ip.is_ipv6() {
        format!("[{ip}]")
    } else {
        ip.to_string()
    };
    if matches!(proto, 6 | 17 | 132) {
        format!("{host}:{p}")
    } else {
        host
    }
}

fn cmd_sessions(s: SessionsArgs) -> Result<ExitCode> {
    let maps = open(&s.iface)?;
    let names = read_state(&s.iface).map(|s| s.rules).unwrap_or_default();
    let mut all: Vec<(SessKey, SessVal)> = maps.sessions().map_err(lib_err)?;
    all.sort_by_key(|(_, v)| std::cmp::Reverse(v.bytes[0] + v.bytes[1]));
    let now = monotonic_ns();
    let rn = |id: u32| {
        names
            .get(id as usize)
            .cloned()
            .unwrap_or_else(|| rule_name(&[], id))
    };
    if !s.json {
        println!(
            "{} sessions; top {} by bytes:",
            all.len(),
            s.top.min(all.len())
        );
        println!(
            "{:<7} {:<44} {:<44} {:<6} {:<16} {:>9} {:>9} {:>12} {:>8} {:>4}",
            "proto",
            "initiator",
            "responder",
            "action",
            "rule",
            "pkts->",
            "pkts<-",
            "bytes",
            "idle_s",
            "gen"
        );
    }
    for (k, v) in all.iter().take(s.top) {
        let (ia, ip, ra, rp, fwd, rev) = if v.init_b == 1 {
            (&k.b, k.pb, &k.a, k.pa, 1, 0)
        } else {
            (&k.a, k.pa, &k.b, k.pb, 0, 1)
        };
        let idle = now.saturating_sub(v.last_ns) as f64 / 1e9;
        if s.json {
            println!(
                "{}",
                serde_json::json!({
                    "proto": proto_name(k.proto),
                    "initiator": fmt_ep(ia, ip, k.proto),
                    "responder": fmt_ep(ra, rp, k.proto),
                    "action": action_name(v.action as u32),
                    "rule": rn(v.rule_id),
                    "packets_fwd": v.pkts[fwd], "packets_rev": v.pkts[rev],
                    "bytes_fwd": v.bytes[fwd], "bytes_rev": v.bytes[rev],
                    "idle_s": idle, "age_s": now.saturating_sub(v.first_ns) as f64 / 1e9,
                    "generation": v.generation, "closed": v.closed_ns != 0,
                })
            );
        } else {
            println!(
                "{:<7} {:<44} {:<44} {:<6} {:<16} {:>9} {:>9} {:>12} {:>8.1} {:>4}{}",
                proto_name(k.proto),
                fmt_ep(ia, ip, k.proto),
                fmt_ep(ra, rp, k.proto),
                action_name(v.action as u32),
                rn(v.rule_id),
                v.pkts[fwd],
                v.pkts[rev],
                v.bytes[0] + v.bytes[1],
                idle,
                v.generation,
                if v.closed_ns != 0 { " closed" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_check(a: CheckArgs) -> Result<ExitCode> {
    let policy = load_policy(&a.policy)?;
    let compiled = compile(&policy).map_err(lib_err)?;
    println!(
        "{}: ok — {} rules, default {}, audit {}, on_full {:?}, fragments {}, event_rate {}/s per session",
        a.policy.display(),
        policy.rules.len(),
        policy.default.as_str(),
        policy.audit,
        policy.on_full,
        policy.fragments.as_str(),
        policy.event_rate
    );
    let cls = compiled.class_counts();
    println!(
        "compiled: {} exact entries, {} destination nodes (depth {}), {} rule LPM entries, port classes tcp/udp/sctp {}/{}/{}",
        compiled.exact.len(),
        compiled.dst.len(),
        compiled.depth,
        compiled.rules.len(),
        cls[0],
        cls[1],
        cls[2]
    );
    println!(
        "{:>5}  {:<20} {:<26} {:<26} {:<7} {:<12} {:<6} compiled as",
        "#", "name", "src", "dst", "proto", "port", "action"
    );
    let mut per_rule = vec![0usize; policy.rules.len()];
    for (_, v) in &compiled.rules {
        if let Some(n) = per_rule.get_mut(v.rule_id as usize) {
            *n += 1;
        }
    }
    for (i, r) in policy.rules.iter().enumerate() {
        let port = match r.ports {
            None => "any".to_string(),
            Some((l, h)) if l == h => l.to_string(),
            Some((l, h)) => format!("{l}-{h}"),
        };
        let is_exact =
            compiled.exact.iter().any(|(_, v)| v.rule_id == i as u32) && per_rule[i] == 0;
        let how = if is_exact {
            "exact".to_string()
        } else if per_rule[i] == 0 {
            "shadowed (never first match)".to_string()
        } else {
            format!("LPM x{}", per_rule[i])
        };
        println!(
            "{:>5}  {:<20} {:<26} {:<26} {:<7} {:<12} {:<6} {}",
            i,
            r.name,
            r.src.to_string(),
            r.dst.to_string(),
            r.proto.map(proto_name).unwrap_or_else(|| "any".into()),
            port,
            r.action.as_str(),
            how
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_reload(r: ReloadArgs) -> Result<ExitCode> {
    netspectra_guard::check_capabilities().map_err(lib_err)?;
    let state = read_state(&r.iface);
    let maps = open(&r.iface)?;
    let before = maps.config().map_err(lib_err)?.generation;
    match state {
        Some(st) if pid_alive(st.pid) => {
            if st.owner == "probe" && r.policy.is_some() {
                return Err(BadInput(format!(
                    "the guard on {} runs under `netspectra probe` (pid {}): its policy is the \
                     probe's `guard.policy`; change that and reload without --policy (or send \
                     the probe SIGHUP)",
                    r.iface, st.pid
                ))
                .into());
            }
            if let Some(p) = &r.policy {
                // validate first so that a bad file fails here, loudly, with exit code 2
                load_policy(p)?;
                let mut st2 = st;
                st2.policy = std::fs::canonicalize(p).unwrap_or(p.clone());
                write_state(&r.iface, &st2)?;
                signal_and_wait(st2.pid, &maps, before)
            } else {
                // a probe validates its whole configuration when signalled
                if st.owner != "probe" {
                    load_policy(&st.policy)?;
                }
                signal_and_wait(st.pid, &maps, before)
            }
        }
        st => {
            let path = r
                .policy
                .clone()
                .or(st.as_ref().map(|s| s.policy.clone()))
                .ok_or_else(|| BadInput("no running guard process: pass --policy FILE".into()))?;
            let policy = load_policy(&path)?;
            let compiled = compile(&policy).map_err(lib_err)?;
            let gen = maps.install(&policy, &compiled).map_err(lib_err)?;
            let mut st = st.unwrap_or_default();
            st.policy = path;
            st.generation = gen;
            st.rules = policy.rules.iter().map(|x| x.name.clone()).collect();
            write_state(&r.iface, &st)?;
            println!(
                "reloaded pinned guard on {}: generation {before} -> {gen}",
                r.iface
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn signal_and_wait(pid: u32, maps: &Maps, before: u32) -> Result<ExitCode> {
    // SAFETY: sending SIGHUP to a pid we read from our own state file.
    if unsafe { libc::kill(pid as libc::pid_t, libc::SIGHUP) } != 0 {
        bail!(
            "cannot signal guard pid {pid}: {}",
            std::io::Error::last_os_error()
        );
    }
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(10) {
        let g = maps.config().map_err(lib_err)?.generation;
        if g != before {
            println!("reloaded: generation {before} -> {g}");
            return Ok(ExitCode::SUCCESS);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    bail!("guard pid {pid} did not install a new generation within 10 s (see its stderr)")
}

fn cmd_unpin(u: IfaceArg) -> Result<ExitCode> {
    netspectra_guard::check_capabilities().map_err(lib_err)?;
    netspectra_guard::ensure_bpffs().map_err(lib_err)?;
    if let Some(st) = read_state(&u.iface) {
        if pid_alive(st.pid) {
            bail!(
                "a guard process is still running on {} (pid {}); stop it instead",
                u.iface,
                st.pid
            );
        }
    }
    let dir = netspectra_guard::pin_dir(&u.iface);
    if !dir.exists() {
        return Err(BadInput(format!("nothing pinned in {}", dir.display())).into());
    }
    let links: Vec<u32> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("link_"))
                .filter_map(|e| netspectra_guard::sys::pinned_link_id(&e.path()))
                .collect()
        })
        .unwrap_or_default();
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    // the kernel releases unpinned links asynchronously: wait until they are gone
    let start = Instant::now();
    while links
        .iter()
        .any(|&id| netspectra_guard::sys::link_exists(id))
        && start.elapsed() < Duration::from_secs(5)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_file(state_path(&u.iface));
    println!(
        "detached guard from {} (removed {})",
        u.iface,
        dir.display()
    );
    Ok(ExitCode::SUCCESS)
}

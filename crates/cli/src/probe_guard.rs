//! The eBPF guard under `netspectra probe` (a `guard:` section in its configuration): loaded and
//! attached before privileges are dropped, its event loop on its own thread, every deny/log
//! event a record of the `guard` stream (the JSON object `netspectra guard run --events`
//! prints), its policy reloaded with the configuration (SIGHUP), detached when the probe stops.

use anyhow::{bail, Context, Result};
use netspectra_guard::run::{pid_alive, read_state, write_state, State};
use netspectra_guard::{GuardError, Maps, PolicySource, RunConfig, Running};
use netspectra_metrics::Exposition;
use netspectra_pipeline::Producer;
use netspectra_sinks::stream::{Stream, StreamKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// The guard's maps for the metrics endpoint, once the guard runs (the endpoint starts first).
#[derive(Clone, Default)]
pub struct GuardMetrics(Arc<Mutex<Option<(String, Maps)>>>);

impl GuardMetrics {
    /// Adds the guard's counters, map fill and policy generation (as `netspectra guard run
    /// --metrics` serves them) when a guard runs.
    pub fn render(&self, e: &mut Exposition) {
        if let Some((iface, maps)) = self.0.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            netspectra_guard::events::render_metrics(e, iface, maps);
        }
    }
}

/// Guard library errors as the probe reports them (see [`crate::guard::guard_failure`]).
fn lib_err(e: GuardError) -> anyhow::Error {
    crate::guard::guard_failure(e, Some("guard"))
}

/// What the state file names as the policy: the policy file, or the probe's configuration.
fn policy_origin(cfg: &RunConfig, config: &Path) -> PathBuf {
    let p = match &cfg.policy {
        PolicySource::File(f) => f.clone(),
        PolicySource::Inline(_) => config.to_path_buf(),
    };
    std::fs::canonicalize(&p).unwrap_or(p)
}

/// Loads the guard, installs its policy and attaches it (needs root: call it before the
/// privileges are dropped); publishes its state and its maps for the metrics endpoint.
pub fn start(
    cfg: &RunConfig,
    config: &Path,
    metrics: &GuardMetrics,
    quiet: bool,
) -> Result<Running> {
    if let Some(st) = read_state(&cfg.interface) {
        if pid_alive(st.pid) && st.pid != std::process::id() {
            bail!(
                "guard: a guard is already running on {} (pid {})",
                cfg.interface,
                st.pid
            );
        }
    }
    let r = Running::start(cfg.clone()).map_err(lib_err)?;
    write_state(
        &cfg.interface,
        &State::of(&r, policy_origin(cfg, config), "probe"),
    )
    .map_err(lib_err)?;
    // Scrapes read the pinned maps on the endpoint's thread, never waiting for the event loop.
    let maps = Maps::open_pinned(&cfg.interface).map_err(lib_err)?;
    *metrics.0.lock().unwrap_or_else(|p| p.into_inner()) = Some((cfg.interface.clone(), maps));
    if !quiet {
        eprintln!("probe: guard {}", r.summary());
    }
    Ok(r)
}

/// The guard's event loop on its thread.
pub struct GuardThread {
    thread: JoinHandle<u64>,
    reload: Sender<RunConfig>,
    iface: String,
}

/// How the guard's policy may change on a reload: the same interface and hooks (a new
/// policy, or audit on or off), or else a restart is needed.
pub fn reloadable(old: &RunConfig, new: &RunConfig) -> Result<(), String> {
    let fixed = |c: &RunConfig| (c.interface.clone(), c.hooks(), c.max_sessions);
    if fixed(old) != fixed(new) {
        return Err(
            "guard.interface, its hooks (ingress, egress, xdp) or max_sessions changed: that needs a restart"
                .into(),
        );
    }
    Ok(())
}

impl GuardThread {
    /// Starts the event loop: every deny/log event goes to the pipeline as a `guard` record
    /// until `stop` is raised; then the last events are handed over and the guard detached.
    pub fn spawn(
        mut r: Running,
        producer: Producer,
        stop: Arc<AtomicBool>,
        config: PathBuf,
    ) -> Result<GuardThread> {
        let (tx, rx) = channel::<RunConfig>();
        let iface = r.config().interface.clone();
        let thread = std::thread::Builder::new()
            .name("guard".into())
            .spawn(move || {
                let n = event_loop(&mut r, &producer, &stop, &rx, &config);
                let iface = r.config().interface.clone();
                match r.stop(false) {
                    Ok(()) => eprintln!("probe: guard detached from {iface}"),
                    Err(e) => eprintln!("probe: guard on {iface}: {e}"),
                }
                // The run's end waits for this: the last events are in the pipeline now.
                drop(producer);
                n
            })
            .context("starting the guard thread")?;
        Ok(GuardThread {
            thread,
            reload: tx,
            iface,
        })
    }

    /// Where a reload sends the new `guard:` section (checked already).
    pub fn reloader(&self) -> Sender<RunConfig> {
        self.reload.clone()
    }

    /// Waits for the loop to end (after the stop); returns the interface and the events it
    /// delivered.
    pub fn join(self) -> (String, u64) {
        let n = self.thread.join().unwrap_or(0);
        (self.iface, n)
    }
}

fn event_loop(
    r: &mut Running,
    producer: &Producer,
    stop: &AtomicBool,
    reloads: &Receiver<RunConfig>,
    config: &Path,
) -> u64 {
    let stream = Stream::of(StreamKind::Guard);
    let mut total = 0u64;
    let mut buf = Vec::with_capacity(64 << 10);
    let mut poll = |r: &mut Running, timeout: Duration| -> Result<u64, GuardError> {
        let mut n = 0u64;
        r.poll(timeout, |line| {
            buf.extend_from_slice(line.as_bytes());
            buf.push(b'\n');
            n += 1;
        })?;
        if n > 0 {
            producer
                .control()
                .lines(stream.clone(), n, std::mem::take(&mut buf));
        }
        Ok(n)
    };
    let mut failed = false;
    while !stop.load(Ordering::Relaxed) {
        match poll(r, Duration::from_millis(100)) {
            Ok(n) => total += n,
            Err(e) if !failed => {
                eprintln!("probe: guard: reading events: {e}");
                failed = true;
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
        while let Ok(cfg) = reloads.try_recv() {
            let before = r.generation();
            match r.reload_from_config(&cfg) {
                Ok(g) => {
                    eprintln!(
                        "probe: guard: policy reloaded, generation {before} -> {g} ({} rules)",
                        r.policy().rules.len()
                    );
                    // After `capture.user` dropped the privileges the state stays as it was
                    // (`guard status` reads the generation from the maps).
                    if netspectra_guard::is_root() {
                        let iface = &r.config().interface;
                        let st = State::of(r, policy_origin(&cfg, config), "probe");
                        if let Err(e) = write_state(iface, &st) {
                            eprintln!("probe: guard: {e}");
                        }
                    }
                }
                Err(e) => {
                    eprintln!("probe: guard: reload failed, keeping generation {before}: {e}")
                }
            }
        }
        if let Some(w) = r.tick() {
            eprintln!("probe: guard: {w}");
        }
    }
    // What the ring buffer still holds.
    while let Ok(n @ 1..) = poll(r, Duration::ZERO) {
        total += n;
    }
    total
}

//! Running the guard on an interface, shared by `netspectra guard run` and the probe (a `guard:`
//! section of its configuration): [`RunConfig`] (the command's flags, the section's keys),
//! [`Running`] (load, install, attach; the steps of the event loop; reload; detach), and the
//! state file that lets the other `guard` subcommands find a running guard.

use crate::abi::c;
use crate::loader::monotonic_ns;
use crate::{check_capabilities, pin_dir, Compiled, Guard, GuardError, Hook, Policy};
use serde::{Deserialize, Deserializer, Serialize};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where a guard's policy comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum PolicySource {
    /// A policy file (YAML), read again on every reload.
    File(PathBuf),
    /// The policy written in place (the same keys as a policy file), e.g. in the probe's
    /// configuration.
    Inline(serde_yaml::Value),
}

impl<'de> Deserialize<'de> for PolicySource {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        match serde_yaml::Value::deserialize(d)? {
            serde_yaml::Value::String(s) if !s.trim().is_empty() => {
                Ok(PolicySource::File(PathBuf::from(s)))
            }
            v @ serde_yaml::Value::Mapping(_) => Ok(PolicySource::Inline(v)),
            _ => Err(D::Error::custom(
                "policy: a policy file name, or the policy itself (a mapping with default, rules, ...)",
            )),
        }
    }
}

/// How to run a guard: the flags of `netspectra guard run`, and the keys of the probe's `guard:`
/// section (same names, same meaning).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Interface to protect.
    pub interface: String,
    /// The policy: a file name, or the policy itself.
    pub policy: PolicySource,
    /// Attach on TC ingress (neither `ingress` nor `egress`: both).
    #[serde(default)]
    pub ingress: bool,
    /// Attach on TC egress (neither `ingress` nor `egress`: both).
    #[serde(default)]
    pub egress: bool,
    /// Attach with XDP instead of TC (ingress only).
    #[serde(default)]
    pub xdp: bool,
    /// Report what would be denied without dropping (overrides the policy's `audit`).
    #[serde(default)]
    pub audit: bool,
    /// Session map capacity (LRU).
    #[serde(default = "default_max_sessions")]
    pub max_sessions: u32,
}

/// Default session map capacity.
pub fn default_max_sessions() -> u32 {
    c::GUARD_DEFAULT_MAX_SESSIONS as u32
}

impl RunConfig {
    /// The hooks it attaches to.
    pub fn hooks(&self) -> Vec<Hook> {
        let mut hooks = Vec::new();
        if self.xdp {
            hooks.push(Hook::Xdp);
        } else {
            if self.ingress || !self.egress {
                hooks.push(Hook::TcIngress);
            }
            if self.egress || !self.ingress {
                hooks.push(Hook::TcEgress);
            }
        }
        hooks
    }

    /// Reads and validates the policy (with `audit` applied).
    pub fn load_policy(&self) -> Result<Policy, GuardError> {
        let mut p = match &self.policy {
            PolicySource::File(f) => Policy::from_file(f)?,
            PolicySource::Inline(v) => Policy::from_value(v.clone())?,
        };
        if self.audit {
            p.audit = true;
        }
        Ok(p)
    }

    /// Checks what can be checked without loading anything: the interface name, the session
    /// map capacity, and the policy (read, validated and compiled). Errors name the key.
    pub fn check(&self) -> Result<Policy, GuardError> {
        let name = &self.interface;
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ', '\0']) {
            return Err(GuardError::Config(format!(
                "interface: {name:?} is not an interface name"
            )));
        }
        if self.xdp && self.egress {
            return Err(GuardError::Config(
                "egress: XDP attaches on ingress only (drop `xdp` or `egress`)".into(),
            ));
        }
        if self.max_sessions == 0 || self.max_sessions > 1 << 26 {
            return Err(GuardError::Config(format!(
                "max_sessions: {} is out of 1..=67108864",
                self.max_sessions
            )));
        }
        let p = self.load_policy()?;
        crate::compile(&p)?;
        Ok(p)
    }
}

/// A guard loaded, with its policy installed and attached to its interface; dropping it (or
/// [`Running::stop`]) detaches it.
pub struct Running {
    guard: Guard,
    cfg: RunConfig,
    policy: Policy,
    generation: u32,
    hooks: Vec<Hook>,
    dir: PathBuf,
    summary: String,
    last_gc: Instant,
    warned_full: bool,
    line: String,
}

impl Running {
    /// Loads the guard, installs the policy, pins the maps under [`pin_dir`] (where `guard
    /// status`, `events`, `sessions` and the metrics find them) and attaches it.
    pub fn start(cfg: RunConfig) -> Result<Running, GuardError> {
        let policy = cfg.load_policy()?;
        check_capabilities()?;
        let cname = std::ffi::CString::new(cfg.interface.clone())
            .map_err(|_| GuardError::NoInterface(cfg.interface.clone()))?;
        // SAFETY: valid NUL-terminated string; if_nametoindex looks in this process's namespace.
        if unsafe { libc::if_nametoindex(cname.as_ptr()) } == 0 {
            return Err(GuardError::NoInterface(cfg.interface.clone()));
        }
        // leftovers of an earlier --pin run: remove them (this detaches the old programs)
        let dir = pin_dir(&cfg.interface);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        let hooks = cfg.hooks();
        let mut guard = Guard::load_for(cfg.max_sessions, cfg.xdp)?;
        let (generation, compiled) = guard.install(&policy)?;
        guard.pin_maps(&cfg.interface)?;
        for h in &hooks {
            if let Err(e) = guard.attach(&cfg.interface, *h) {
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        }
        let summary = summary(&cfg, &hooks, &policy, &compiled, generation, &dir);
        Ok(Running {
            guard,
            cfg,
            policy,
            generation,
            hooks,
            dir,
            summary,
            last_gc: Instant::now(),
            warned_full: false,
            line: String::with_capacity(256),
        })
    }

    /// One line saying what was attached where (for the log).
    pub fn summary(&self) -> &str {
        &self.summary
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &RunConfig {
        &self.cfg
    }

    /// The installed policy.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The generation of the installed policy.
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The hooks it is attached to.
    pub fn hooks(&self) -> &[Hook] {
        &self.hooks
    }

    /// Where its maps are pinned.
    pub fn pin_dir(&self) -> &Path {
        &self.dir
    }

    /// Waits up to `timeout` for deny/log events and calls `f` with each one rendered as a JSON
    /// object (see [`crate::events::event_json`]); returns how many there were.
    pub fn poll(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&str),
    ) -> Result<usize, GuardError> {
        let rules = &self.policy.rules;
        let line = &mut self.line;
        self.guard.maps.poll_events(timeout, |e| {
            crate::events::event_json(e, rules, &[], line);
            f(line);
        })
    }

    /// Installs a new policy (with the configured `audit` applied); the running one stays when
    /// it fails. Returns the new generation.
    pub fn reload(&mut self, mut policy: Policy) -> Result<u32, GuardError> {
        if self.cfg.audit {
            policy.audit = true;
        }
        let (g, _) = self.guard.install(&policy)?;
        self.generation = g;
        self.policy = policy;
        Ok(g)
    }

    /// Reads the configured policy again and installs it (see [`Running::reload`]).
    pub fn reload_from_config(&mut self, cfg: &RunConfig) -> Result<u32, GuardError> {
        let p = cfg.load_policy()?;
        self.cfg.policy = cfg.policy.clone();
        self.reload(p)
    }

    /// Housekeeping, at most every 10 s: retires closed sessions, and returns a warning (once)
    /// when the session map is over 90% full.
    pub fn tick(&mut self) -> Option<String> {
        if self.last_gc.elapsed() < Duration::from_secs(10) {
            return None;
        }
        self.last_gc = Instant::now();
        let _ = self.guard.maps.gc_closed(monotonic_ns());
        let u = self.guard.maps.usage().ok()?;
        let s = u.iter().find(|m| m.name == "sessions")?;
        let fill = s.entries.unwrap_or(0) as f64 / s.max_entries.max(1) as f64;
        if fill > 0.9 && !self.warned_full {
            self.warned_full = true;
            return Some(format!(
                "session map {:.0}% full; LRU evictions are happening (on_full: {:?})",
                fill * 100.0,
                self.policy.on_full
            ));
        }
        None
    }

    /// Ends the run: with `pin`, the programs stay attached (their links pinned next to the
    /// maps; `guard unpin` detaches them); otherwise they are detached and the pins removed.
    pub fn stop(mut self, pin: bool) -> Result<(), GuardError> {
        if pin {
            self.guard.pin_links(&self.cfg.interface)?;
            std::mem::forget(self.guard);
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
            let _ = std::fs::remove_file(state_path(&self.cfg.interface));
            drop(self.guard);
        }
        Ok(())
    }
}

fn summary(
    cfg: &RunConfig,
    hooks: &[Hook],
    policy: &Policy,
    compiled: &Compiled,
    generation: u32,
    dir: &Path,
) -> String {
    format!(
        "attached to {} ({}), generation {generation}, {} rules ({} exact, {} LPM entries, {} destination nodes){}; maps pinned in {}",
        cfg.interface,
        hooks
            .iter()
            .map(|h| format!("{h:?}"))
            .collect::<Vec<_>>()
            .join(", "),
        policy.rules.len(),
        compiled.exact.len(),
        compiled.rules.len(),
        compiled.dst.len(),
        if policy.audit { ", AUDIT mode" } else { "" },
        dir.display()
    )
}

/// What a running guard publishes for the other subcommands (/run/netspectra/<iface>.json).
#[derive(Serialize, Deserialize, Default)]
pub struct State {
    /// The process running it.
    pub pid: u32,
    /// Its policy file (for a probe's guard: the probe's configuration).
    pub policy: PathBuf,
    /// Generation of the installed policy.
    pub generation: u32,
    /// Rule names, by rule id.
    pub rules: Vec<String>,
    /// Hooks attached.
    pub hooks: Vec<String>,
    /// Left attached after exit.
    pub pinned: bool,
    /// `probe` when a probe runs it (its policy is reloaded with the probe's configuration).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub owner: String,
}

impl State {
    /// The state of `r`, run by this process.
    pub fn of(r: &Running, policy: PathBuf, owner: &str) -> State {
        State {
            pid: std::process::id(),
            policy,
            generation: r.generation,
            rules: r.policy.rules.iter().map(|x| x.name.clone()).collect(),
            hooks: r.hooks.iter().map(|h| format!("{h:?}")).collect(),
            pinned: false,
            owner: owner.to_string(),
        }
    }
}

/// Where the state of the guard on `iface` is published.
pub fn state_path(iface: &str) -> PathBuf {
    Path::new("/run/netspectra").join(format!("{iface}.json"))
}

/// The published state of the guard on `iface`, if any.
pub fn read_state(iface: &str) -> Option<State> {
    let text = std::fs::read_to_string(state_path(iface)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Publishes the state of the guard on `iface` (atomically).
pub fn write_state(iface: &str, s: &State) -> Result<(), GuardError> {
    let io = |what: &str| {
        let what = what.to_string();
        move |e| GuardError::Io { what, source: e }
    };
    std::fs::create_dir_all("/run/netspectra").map_err(io("creating /run/netspectra"))?;
    let tmp = state_path(iface).with_extension("tmp");
    let body = serde_json::to_vec_pretty(s).unwrap_or_default();
    std::fs::write(&tmp, body).map_err(io(&format!("writing {}", tmp.display())))?;
    std::fs::rename(&tmp, state_path(iface)).map_err(io("publishing guard state"))
}

/// True when `pid` is a live `netspectra guard run` or `netspectra probe` (a recycled pid must
/// not receive a SIGHUP meant for a guard).
pub fn pid_alive(pid: u32) -> bool {
    // SAFETY: kill with signal 0 only checks for existence.
    let exists = pid != 0 && unsafe { libc::kill(pid as libc::pid_t, 0) } == 0;
    exists
        && std::fs::read(format!("/proc/{pid}/cmdline"))
            .map(|c| {
                let args: Vec<&[u8]> = c.split(|&b| b == 0).collect();
                args.windows(2).any(|w| w[0] == b"guard" && w[1] == b"run")
                    || args.iter().skip(1).any(|a| *a == b"probe")
            })
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> Result<RunConfig, serde_yaml::Error> {
        serde_yaml::from_str(text)
    }

    #[test]
    fn the_policy_is_a_file_or_written_in_place() {
        let c = cfg("interface: eth0\npolicy: /etc/p.yaml\n").unwrap();
        assert_eq!(c.policy, PolicySource::File("/etc/p.yaml".into()));
        assert_eq!(c.hooks(), vec![Hook::TcIngress, Hook::TcEgress]);
        assert_eq!(c.max_sessions, default_max_sessions());
        let c = cfg("interface: eth0\nxdp: true\naudit: true\npolicy:\n  default: allow\n  rules:\n    - {name: x, proto: udp, port: 9, action: deny}\n").unwrap();
        assert_eq!(c.hooks(), vec![Hook::Xdp]);
        let p = c.check().unwrap();
        assert!(p.audit && p.rules.len() == 1);
        assert!(cfg("interface: eth0\npolicy: [1]\n")
            .unwrap_err()
            .to_string()
            .contains("policy file name"));
        assert!(cfg("interface: eth0\npolicy: x\nhook: tc\n").is_err());
        let c =
            cfg("interface: eth0\npolicy:\n  rules:\n    - {proto: icmp, port: 7, action: deny}\n")
                .unwrap();
        assert!(c.check().unwrap_err().to_string().contains(".port"));
        let c =
            cfg("interface: eth0\nxdp: true\negress: true\npolicy: {default: allow}\n").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("egress"));
        let c = cfg("interface: eth0\nmax_sessions: 0\npolicy: {default: allow}\n").unwrap();
        assert!(c.check().unwrap_err().to_string().contains("max_sessions"));
    }
}

//! Loads the BPF object with aya, attaches it (TC via TCX/cls_bpf, or XDP), pins maps for the
//! other `guard` subcommands, installs policies atomically (two banks + a generation number) and
//! reads counters, sessions and events.

use crate::abi::{
    self, c, from_bytes, DstKey, ExactKey, GuardConfig, GuardEvent, NodeVal, RuleKey, RuleVal,
    SessKey, SessRaw, SessVal,
};
use crate::compile::{compile, Compiled};
use crate::policy::{OnFull, Policy};
use crate::sys;
use crate::GuardError;
use aya::maps::{Map, MapData, RingBuf};
use aya::programs::{SchedClassifier, TcAttachType, TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, EbpfLoader};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Root of the guard's pinned maps (one directory per interface).
pub const PIN_ROOT: &str = "/sys/fs/bpf/netspectra";
/// Names of the maps the guard pins.
pub const MAP_NAMES: [&str; 10] = [
    "guard_config",
    "sessions",
    "dst_lpm",
    "rule_lpm",
    "exact",
    "nodes",
    "port_class",
    "counters",
    "events",
    "frags",
];

/// Pin directory of the guard attached to `iface`.
pub fn pin_dir(iface: &str) -> PathBuf {
    Path::new(PIN_ROOT).join(iface)
}

fn ioerr(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GuardError {
    let what = what.into();
    move |source| GuardError::Io { what, source }
}

fn bpf_err(what: &str, e: impl std::fmt::Display) -> GuardError {
    GuardError::Bpf(format!("{what}: {e}"))
}

/// Checks that the process holds the capabilities BPF needs; names the missing ones.
pub fn check_capabilities() -> Result<(), GuardError> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(ioerr("reading /proc/self/status"))?;
    let eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |bit: u32| eff & (1u64 << bit) != 0;
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    const PERFMON: u32 = 38;
    const BPF: u32 = 39;
    let mut missing = Vec::new();
    if !has(BPF) && !has(SYS_ADMIN) {
        missing.push("CAP_BPF");
    }
    if !has(NET_ADMIN) {
        missing.push("CAP_NET_ADMIN");
    }
    if !has(PERFMON) && !has(SYS_ADMIN) {
        missing.push("CAP_PERFMON");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GuardError::Capability(missing.join(", ")))
    }
}

/// Mounts bpffs on /sys/fs/bpf when it is not mounted yet.
pub fn ensure_bpffs() -> Result<(), GuardError> {
    let mounts =
        std::fs::read_to_string("/proc/self/mounts").map_err(ioerr("reading /proc/self/mounts"))?;
    if mounts.lines().any(|l| {
        let mut f = l.split_whitespace();
        let (_, mp, fs) = (f.next(), f.next(), f.next());
        mp == Some("/sys/fs/bpf") && fs == Some("bpf")
    }) {
        return Ok(());
    }
    std::fs::create_dir_all("/sys/fs/bpf").ok();
    // SAFETY: plain mount(2) with static NUL-terminated strings.
    let r = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if r != 0 {
        return Err(GuardError::Io {
            what: "mounting bpffs on /sys/fs/bpf".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    Ok(())
}

fn into_data(m: Map) -> Result<MapData, GuardError> {
    match m {
        Map::Array(d)
        | Map::HashMap(d)
        | Map::LpmTrie(d)
        | Map::LruHashMap(d)
        | Map::PerCpuArray(d)
        | Map::RingBuf(d) => Ok(d),
        _ => Err(GuardError::Bpf("unexpected map type".into())),
    }
}

/// Handles on the guard's maps (from a fresh load or from the pins of a running guard).
pub struct Maps {
    config: MapData,
    sessions: MapData,
    dst_lpm: MapData,
    rule_lpm: MapData,
    exact: MapData,
    nodes: MapData,
    port_class: MapData,
    counters: MapData,
    frags: MapData,
    events: Option<RingBuf<MapData>>,
    ncpus: usize,
}

/// Aggregated counters (summed over CPUs) in `abi::COUNTER_NAMES` order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters(pub Vec<u64>);

impl Counters {
    /// Value of counter `idx` (a `c::GUARD_C_*` constant).
    pub fn get(&self, idx: u64) -> u64 {
        self.0.get(idx as usize).copied().unwrap_or(0)
    }
}

/// Map usage as reported by the kernel.
#[derive(Clone, Debug)]
pub struct MapUsage {
    /// Map name.
    pub name: &'static str,
    /// Entries present (counted by iteration; None for arrays and ring buffers).
    pub entries: Option<usize>,
    /// Capacity.
    pub max_entries: u32,
}

/// CLOCK_MONOTONIC in ns (the clock of the BPF program's bpf_ktime_get_coarse_ns).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

fn fd(m: &MapData) -> RawFd {
    m.fd().as_fd().as_raw_fd()
}

impl Maps {
    fn from_named(
        mut take: impl FnMut(&str) -> Result<MapData, GuardError>,
    ) -> Result<Maps, GuardError> {
        let events = RingBuf::try_from(Map::RingBuf(take("events")?))
            .map_err(|e| bpf_err("events ring buffer", e))?;
        Ok(Maps {
            config: take("guard_config")?,
            sessions: take("sessions")?,
            dst_lpm: take("dst_lpm")?,
            rule_lpm: take("rule_lpm")?,
            exact: take("exact")?,
            nodes: take("nodes")?,
            port_class: take("port_class")?,
            counters: take("counters")?,
            frags: take("frags")?,
            events: Some(events),
            ncpus: sys::possible_cpus().map_err(ioerr("reading possible CPUs"))?,
        })
    }

    /// Opens the maps pinned by a running guard on `iface`.
    pub fn open_pinned(iface: &str) -> Result<Maps, GuardError> {
        let dir = pin_dir(iface);
        if !dir.join("guard_config").exists() {
            return Err(GuardError::NotRunning(dir.display().to_string()));
        }
        Maps::from_named(|name| {
            MapData::from_pin(dir.join(name)).map_err(|e| {
                bpf_err(
                    &format!("opening pinned map {}", dir.join(name).display()),
                    e,
                )
            })
        })
    }

    /// Current configuration (generation 0 = no policy yet).
    pub fn config(&self) -> Result<GuardConfig, GuardError> {
        Ok(sys::lookup(fd(&self.config), &0u32)
            .map_err(ioerr("reading guard_config"))?
            .unwrap_or_default())
    }

    /// Sums the per-CPU counters.
    pub fn counters(&self) -> Result<Counters, GuardError> {
        let mut out = vec![0u64; abi::COUNTERS];
        let mut buf = Vec::with_capacity(self.ncpus);
        for (i, slot) in out.iter_mut().enumerate() {
            sys::lookup_percpu_u64(fd(&self.counters), i as u32, self.ncpus, &mut buf)
                .map_err(ioerr("reading counters"))?;
            *slot = buf.iter().sum();
        }
        Ok(Counters(out))
    }

    /// All sessions (a snapshot taken by iteration), decoded against the current
    /// CLOCK_MONOTONIC time.
    pub fn sessions(&self) -> Result<Vec<(SessKey, SessVal)>, GuardError> {
        let f = fd(&self.sessions);
        let keys: Vec<SessKey> = sys::keys(f).map_err(ioerr("listing sessions"))?;
        let now = monotonic_ns();
        let mut out = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(v) =
                sys::lookup::<SessKey, SessRaw>(f, &k).map_err(ioerr("reading a session"))?
            {
                out.push((k, v.decode(now)));
            }
        }
        Ok(out)
    }

    /// Inserts a session directly (benchmarks pre-populate the map this way).
    pub fn insert_session(&self, k: &SessKey, v: &SessVal) -> Result<(), GuardError> {
        sys::update(fd(&self.sessions), k, &v.encode(), sys::BPF_ANY)
            .map_err(ioerr("inserting a session"))
    }

    /// Deletes a session.
    pub fn delete_session(&self, k: &SessKey) -> Result<bool, GuardError> {
        sys::delete(fd(&self.sessions), k).map_err(ioerr("deleting a session"))
    }

    /// Deletes closed sessions older than the linger time; returns how many were removed.
    pub fn gc_closed(&self, now_ns: u64) -> Result<usize, GuardError> {
        let mut n = 0;
        for (k, v) in self.sessions()? {
            if v.closed_ns != 0
                && now_ns.saturating_sub(v.closed_ns) > c::GUARD_SESSION_LINGER_NS
                && self.delete_session(&k)?
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Entry counts and capacities of every map.
    pub fn usage(&self) -> Result<Vec<MapUsage>, GuardError> {
        let count = |m: &MapData, ksz: usize| -> Result<Option<usize>, GuardError> {
            let f = fd(m);
            let n = match ksz {
                24 => sys::keys::<DstKey>(f).map(|v| v.len()),
                32 => sys::keys::<RuleKey>(f).map(|v| v.len()),
                40 => sys::keys::<SessKey>(f).map(|v| v.len()),
                _ => return Ok(None),
            };
            n.map(Some).map_err(ioerr("counting map entries"))
        };
        let max = |m: &MapData| m.info().map(|i| i.max_entries()).unwrap_or(0);
        Ok(vec![
            MapUsage {
                name: "sessions",
                entries: count(&self.sessions, 40)?,
                max_entries: max(&self.sessions),
            },
            MapUsage {
                name: "dst_lpm",
                entries: count(&self.dst_lpm, 24)?,
                max_entries: max(&self.dst_lpm),
            },
            MapUsage {
                name: "rule_lpm",
                entries: count(&self.rule_lpm, 32)?,
                max_entries: max(&self.rule_lpm),
            },
            MapUsage {
                name: "exact",
                entries: Some(
                    sys::keys::<ExactKey>(fd(&self.exact))
                        .map_err(ioerr("counting exact"))?
                        .len(),
                ),
                max_entries: max(&self.exact),
            },
            MapUsage {
                name: "frags",
                entries: count(&self.frags, 40)?,
                max_entries: max(&self.frags),
            },
        ])
    }

    /// Waits up to `timeout` for events and calls `f` for each (returns how many were read).
    pub fn poll_events(
        &mut self,
        timeout: Duration,
        mut f: impl FnMut(&GuardEvent),
    ) -> Result<usize, GuardError> {
        let Some(rb) = self.events.as_mut() else {
            return Ok(0);
        };
        let mut n = 0;
        while let Some(item) = rb.next() {
            if let Some(e) = from_bytes::<GuardEvent>(&item) {
                f(&e);
                n += 1;
            }
        }
        if n > 0 {
            return Ok(n);
        }
        let mut pfd = libc::pollfd {
            fd: rb.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe {
            libc::poll(
                &mut pfd,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        while let Some(item) = rb.next() {
            if let Some(e) = from_bytes::<GuardEvent>(&item) {
                f(&e);
                n += 1;
            }
        }
        Ok(n)
    }

    /// Writes a compiled policy into the inactive bank, then flips the generation (one array
    /// update), then clears the old bank. Returns the new generation.
    pub fn install(&self, policy: &Policy, compiled: &Compiled) -> Result<u32, GuardError> {
        let old = self.config()?;
        let mut gen = old.generation.wrapping_add(1);
        if gen == 0 {
            gen = 2; // generation 0 means "no policy"; keep the bank parity
        }
        let bank = gen & 1;
        self.clear_bank(bank)?;

        // nodes
        let base = bank * c::GUARD_NODES_PER_BANK as u32;
        let keys: Vec<u32> = (0..compiled.nodes.len() as u32).map(|i| base + i).collect();
        sys::update_many(fd(&self.nodes), &keys, &compiled.nodes)
            .map_err(ioerr("writing nodes"))?;
        // port classes
        for (pi, table) in compiled.port_classes.iter().enumerate() {
            if table.is_empty() {
                continue;
            }
            let base =
                (bank * c::GUARD_PORT_PROTOS as u32 + pi as u32) * c::GUARD_PORT_CLASS_SLOTS as u32;
            let packed: Vec<u64> = table
                .chunks(4)
                .map(|q| {
                    q.iter()
                        .enumerate()
                        .fold(0u64, |acc, (i, &cl)| acc | (cl as u64) << (16 * i))
                })
                .collect();
            let keys: Vec<u32> = (0..packed.len() as u32).map(|p| base + p).collect();
            sys::update_many(fd(&self.port_class), &keys, &packed)
                .map_err(ioerr("writing port classes"))?;
        }
        // destination prefixes
        for (cidr, node) in &compiled.dst {
            let k = DstKey {
                prefixlen: 32 + cidr.len as u32,
                bank: bank.to_be(),
                addr: cidr.addr.to_be_bytes(),
            };
            sys::update(fd(&self.dst_lpm), &k, node, sys::BPF_ANY)
                .map_err(ioerr("writing dst_lpm"))?;
        }
        for (k, v) in &compiled.rules {
            let mut k = *k;
            k.node |= bank << 31;
            sys::update(fd(&self.rule_lpm), &k, v, sys::BPF_ANY)
                .map_err(ioerr("writing rule_lpm"))?;
        }
        let (ek, ev): (Vec<ExactKey>, Vec<RuleVal>) = compiled
            .exact
            .iter()
            .map(|(k, v)| {
                (
                    ExactKey {
                        bank: bank as u8,
                        ..*k
                    },
                    *v,
                )
            })
            .unzip();
        sys::update_many(fd(&self.exact), &ek, &ev).map_err(ioerr("writing exact"))?;

        let cfg = GuardConfig {
            generation: gen,
            default_action: policy.default.code(),
            audit: policy.audit as u8,
            fail_closed: (policy.on_full == OnFull::FailClosed) as u8,
            frag_action: policy.fragments.code(),
            event_rate: policy.event_rate,
            flags: if compiled.exact.is_empty() {
                0
            } else {
                c::GUARD_CFG_HAS_EXACT as u32
            },
        };
        sys::update(fd(&self.config), &0u32, &cfg, sys::BPF_ANY)
            .map_err(ioerr("writing guard_config"))?;
        if old.generation != 0 {
            // let packets that read the old generation finish before its entries go away
            std::thread::sleep(Duration::from_millis(20));
            self.clear_bank(bank ^ 1)?;
        }
        Ok(gen)
    }

    /// Changes only the audit flag of the running configuration.
    pub fn set_audit(&self, audit: bool) -> Result<(), GuardError> {
        let mut cfg = self.config()?;
        cfg.audit = audit as u8;
        sys::update(fd(&self.config), &0u32, &cfg, sys::BPF_ANY)
            .map_err(ioerr("writing guard_config"))
    }

    fn clear_bank(&self, bank: u32) -> Result<(), GuardError> {
        let f = fd(&self.dst_lpm);
        for k in sys::keys::<DstKey>(f).map_err(ioerr("listing dst_lpm"))? {
            if u32::from_be(k.bank) == bank {
                sys::delete(f, &k).map_err(ioerr("clearing dst_lpm"))?;
            }
        }
        let f = fd(&self.rule_lpm);
        for k in sys::keys::<RuleKey>(f).map_err(ioerr("listing rule_lpm"))? {
            if k.node >> 31 == bank {
                sys::delete(f, &k).map_err(ioerr("clearing rule_lpm"))?;
            }
        }
        let f = fd(&self.exact);
        for k in sys::keys::<ExactKey>(f).map_err(ioerr("listing exact"))? {
            if k.bank as u32 == bank {
                sys::delete(f, &k).map_err(ioerr("clearing exact"))?;
            }
        }
        let zero = NodeVal {
            parent: abi::NODE_NONE,
            shapes: 0,
        };
        let base = bank * c::GUARD_NODES_PER_BANK as u32;
        let keys: Vec<u32> = (0..c::GUARD_NODES_PER_BANK as u32)
            .map(|i| base + i)
            .collect();
        let vals = vec![zero; keys.len()];
        sys::update_many(fd(&self.nodes), &keys, &vals).map_err(ioerr("clearing nodes"))?;
        Ok(())
    }

    /// Pins every map under `dir` (created if missing; stale pins are replaced).
    fn pin_all(&self, dir: &Path, ebpf: &Ebpf) -> Result<(), GuardError> {
        std::fs::create_dir_all(dir).map_err(ioerr(format!("creating {}", dir.display())))?;
        let _ = ebpf;
        let pairs: [(&str, &MapData); 9] = [
            ("guard_config", &self.config),
            ("sessions", &self.sessions),
            ("dst_lpm", &self.dst_lpm),
            ("rule_lpm", &self.rule_lpm),
            ("exact", &self.exact),
            ("nodes", &self.nodes),
            ("port_class", &self.port_class),
            ("counters", &self.counters),
            ("frags", &self.frags),
        ];
        for (name, m) in pairs {
            let p = dir.join(name);
            let _ = std::fs::remove_file(&p);
            m.pin(&p)
                .map_err(|e| bpf_err(&format!("pinning {}", p.display()), e))?;
        }
        if let Some(rb) = &self.events {
            let p = dir.join("events");
            let _ = std::fs::remove_file(&p);
            // RingBuf does not expose pin(); pin its fd with BPF_OBJ_PIN through a MapData clone.
            let md = MapData::from_fd(
                rb.as_fd()
                    .try_clone_to_owned()
                    .map_err(ioerr("dup events fd"))?,
            )
            .map_err(|e| bpf_err("events map", e))?;
            md.pin(&p)
                .map_err(|e| bpf_err(&format!("pinning {}", p.display()), e))?;
        }
        Ok(())
    }
}

/// Where to attach.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hook {
    /// TC ingress (TCX on kernels >= 6.6).
    TcIngress,
    /// TC egress.
    TcEgress,
    /// XDP (driver mode when available, generic otherwise).
    Xdp,
}

/// A loaded guard: the BPF object plus its maps.
pub struct Guard {
    ebpf: Ebpf,
    /// The maps.
    pub maps: Maps,
    tc_links: Vec<aya::programs::tc::SchedClassifierLinkId>,
    xdp_links: Vec<aya::programs::xdp::XdpLinkId>,
}

impl Guard {
    /// Loads and verifies the TC program (nothing attached yet).
    pub fn load(max_sessions: u32) -> Result<Guard, GuardError> {
        Guard::load_for(max_sessions, false)
    }

    /// Loads and verifies the TC program, or the XDP program when `xdp` (the verifier takes
    /// about a second per program, so only the needed one is loaded).
    pub fn load_for(max_sessions: u32, xdp: bool) -> Result<Guard, GuardError> {
        check_capabilities()?;
        let mut ebpf = EbpfLoader::new()
            .map_max_entries("sessions", max_sessions)
            .load(abi::BPF_OBJECT)
            .map_err(|e| bpf_err("loading the BPF object", e))?;
        let name = if xdp { "guard_xdp" } else { "guard_tc" };
        let prog = ebpf
            .program_mut(name)
            .ok_or_else(|| GuardError::Bpf(format!("program {name} missing")))?;
        match prog {
            aya::programs::Program::SchedClassifier(p) => p.load(),
            aya::programs::Program::Xdp(p) => p.load(),
            _ => {
                return Err(GuardError::Bpf(format!(
                    "program {name} has an unexpected type"
                )))
            }
        }
        .map_err(|e| bpf_err(&format!("verifying {name}"), e))?;
        let maps = Maps::from_named(|name| {
            ebpf.take_map(name)
                .ok_or_else(|| GuardError::Bpf(format!("map {name} missing")))
                .and_then(into_data)
        })?;
        Ok(Guard {
            ebpf,
            maps,
            tc_links: Vec::new(),
            xdp_links: Vec::new(),
        })
    }

    fn tc(&mut self) -> Result<&mut SchedClassifier, GuardError> {
        self.ebpf
            .program_mut("guard_tc")
            .ok_or_else(|| GuardError::Bpf("guard_tc missing".into()))?
            .try_into()
            .map_err(|e| bpf_err("guard_tc", e))
    }

    fn xdp(&mut self) -> Result<&mut Xdp, GuardError> {
        self.ebpf
            .program_mut("guard_xdp")
            .ok_or_else(|| GuardError::Bpf("guard_xdp missing".into()))?
            .try_into()
            .map_err(|e| bpf_err("guard_xdp", e))
    }

    /// Attaches to `iface` at `hook`; detached when the Guard is dropped (unless pinned).
    pub fn attach(&mut self, iface: &str, hook: Hook) -> Result<(), GuardError> {
        match hook {
            Hook::TcIngress | Hook::TcEgress => {
                let t = if hook == Hook::TcIngress {
                    TcAttachType::Ingress
                } else {
                    TcAttachType::Egress
                };
                let id = self
                    .tc()?
                    .attach(iface, t)
                    .map_err(|e| bpf_err(&format!("attaching TC {t:?} on {iface}"), e))?;
                self.tc_links.push(id);
            }
            Hook::Xdp => {
                let p = self.xdp()?;
                let id = p
                    .attach(iface, XdpMode::Default)
                    .or_else(|_| p.attach(iface, XdpMode::Skb))
                    .map_err(|e| bpf_err(&format!("attaching XDP on {iface}"), e))?;
                self.xdp_links.push(id);
            }
        }
        Ok(())
    }

    /// Pins all maps under `pin_dir(iface)` so that status/events/sessions/reload can find them.
    pub fn pin_maps(&self, iface: &str) -> Result<PathBuf, GuardError> {
        ensure_bpffs()?;
        let dir = pin_dir(iface);
        self.maps.pin_all(&dir, &self.ebpf)?;
        Ok(dir)
    }

    /// Pins the attachment links (TCX/XDP bpf_links) under `pin_dir(iface)` so that the programs
    /// stay attached after this process exits (`guard unpin` or removing the pins detaches them).
    pub fn pin_links(&mut self, iface: &str) -> Result<(), GuardError> {
        let dir = pin_dir(iface);
        let tc_ids = std::mem::take(&mut self.tc_links);
        for (i, id) in tc_ids.into_iter().enumerate() {
            let link = self
                .tc()?
                .take_link(id)
                .map_err(|e| bpf_err("taking TC link", e))?;
            let fd: aya::programs::links::FdLink = link
                .try_into()
                .map_err(|e| bpf_err("TC link is not a bpf_link (legacy tc)", e))?;
            let p = dir.join(format!("link_tc_{i}"));
            let _ = std::fs::remove_file(&p);
            let pinned = fd
                .pin(&p)
                .map_err(|e| bpf_err(&format!("pinning {}", p.display()), e))?;
            std::mem::forget(pinned);
        }
        let xdp_ids = std::mem::take(&mut self.xdp_links);
        for (i, id) in xdp_ids.into_iter().enumerate() {
            let link = self
                .xdp()?
                .take_link(id)
                .map_err(|e| bpf_err("taking XDP link", e))?;
            let fd: aya::programs::links::FdLink = link
                .try_into()
                .map_err(|e| bpf_err("XDP link is not a bpf_link", e))?;
            let p = dir.join(format!("link_xdp_{i}"));
            let _ = std::fs::remove_file(&p);
            let pinned = fd
                .pin(&p)
                .map_err(|e| bpf_err(&format!("pinning {}", p.display()), e))?;
            std::mem::forget(pinned);
        }
        Ok(())
    }

    /// Compiles and installs a policy; returns (generation, compiled form).
    pub fn install(&self, policy: &Policy) -> Result<(u32, Compiled), GuardError> {
        let compiled = compile(policy)?;
        let gen = self.maps.install(policy, &compiled)?;
        Ok((gen, compiled))
    }

    /// Runs the TC program once per `repeat` on `frame` with BPF_PROG_TEST_RUN; returns the
    /// program's return code and the kernel-measured average duration.
    pub fn test_run(&self, frame: &[u8], repeat: u32) -> Result<(u32, Duration), GuardError> {
        self.test_run_program("guard_tc", frame, repeat)
    }

    /// Loads (verifies) another classifier program of the object, e.g. the benchmark entry
    /// point `guard_bench_newflow`; a no-op when it is loaded already.
    pub fn load_program(&mut self, name: &str) -> Result<(), GuardError> {
        let p: &mut SchedClassifier = self
            .ebpf
            .program_mut(name)
            .ok_or_else(|| GuardError::Bpf(format!("{name} missing")))?
            .try_into()
            .map_err(|e| bpf_err(name, e))?;
        if p.fd().is_err() {
            p.load()
                .map_err(|e| bpf_err(&format!("verifying {name}"), e))?;
        }
        Ok(())
    }

    /// BPF_PROG_TEST_RUN of the loaded classifier program `name` (see `test_run`).
    pub fn test_run_program(
        &self,
        name: &str,
        frame: &[u8],
        repeat: u32,
    ) -> Result<(u32, Duration), GuardError> {
        let p: &SchedClassifier = self
            .ebpf
            .program(name)
            .ok_or_else(|| GuardError::Bpf(format!("{name} missing")))?
            .try_into()
            .map_err(|e| bpf_err(name, e))?;
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.repeat = repeat.max(1);
        let r = p
            .test_run(opts)
            .map_err(|e| bpf_err("BPF_PROG_TEST_RUN", e))?;
        Ok((r.return_value, r.duration))
    }
}

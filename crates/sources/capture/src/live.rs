//! AF_PACKET TPACKET_V3 receive rings, one per worker, joined in a PACKET_FANOUT group.

use crate::filter::{Filter, LiveCompileError, DEFAULT_SNAPLEN};
use crate::sys;
use crate::{CaptureError, StopHandle};
use netspectra_packet::{
    Batch, InterfaceInfo, LinkType, PacketMeta, PacketSource, SourceError, SourceStats, Timestamp,
};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::str::FromStr;
use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How the kernel spreads packets over the sockets of a fanout group.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum FanoutMode {
    /// Symmetric flow hash: both directions of a flow reach the same worker (default).
    #[default]
    Hash,
    /// Round robin (splits flows).
    Lb,
    /// By the CPU that received the packet.
    Cpu,
    /// By the NIC's receive queue (recorded queue mapping).
    Qm,
    /// Fill one socket, roll over to the next when it is full.
    Rollover,
    /// Random (splits flows).
    Random,
}

impl FanoutMode {
    fn kernel_value(self) -> u32 {
        match self {
            FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
            FanoutMode::Lb => libc::PACKET_FANOUT_LB,
            FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            FanoutMode::Qm => libc::PACKET_FANOUT_QM,
            FanoutMode::Rollover => libc::PACKET_FANOUT_ROLLOVER,
            FanoutMode::Random => libc::PACKET_FANOUT_RND,
        }
    }
}

impl FromStr for FanoutMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s.to_ascii_lowercase().as_str() {
            "hash" => FanoutMode::Hash,
            "lb" => FanoutMode::Lb,
            "cpu" => FanoutMode::Cpu,
            "qm" => FanoutMode::Qm,
            "rollover" => FanoutMode::Rollover,
            "random" | "rnd" => FanoutMode::Random,
            _ => {
                return Err(format!(
                    "unknown fanout mode {s:?} (hash, lb, cpu, qm, rollover, random)"
                ))
            }
        })
    }
}

/// Everything needed to open live sources on one interface. `LiveConfig::new(iface)` gives the
/// defaults; change fields as needed.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name (in the calling thread's network namespace).
    pub iface: String,
    /// Number of sockets (= worker threads) in the fanout group; 1 = no fanout.
    pub threads: usize,
    /// Fanout distribution.
    pub fanout: FanoutMode,
    /// PACKET_FANOUT_FLAG_ROLLOVER: spill to another socket when one ring is full (splits flows).
    pub fanout_rollover: bool,
    /// PACKET_FANOUT_FLAG_DEFRAG: reassemble IP fragments before hashing (keeps them on their
    /// flow's worker). On by default.
    pub fanout_defrag: bool,
    /// Fanout group id; `None` picks one unique to this process.
    pub fanout_group: Option<u16>,
    /// Ring block size in bytes (power of two multiple of the page size); 0 = automatic (1 MiB).
    pub block_size: u32,
    /// Blocks per ring; 0 = automatic from the link speed (about 50 ms of line rate in total).
    pub block_count: u32,
    /// Frame size hint (TPACKET_V3 packs frames of any size; used for the ring request only).
    pub frame_size: u32,
    /// The kernel hands a partly filled block to user space after this long.
    pub retire_timeout: Duration,
    /// `next_batch` returns an empty batch when nothing arrived for this long.
    pub poll_timeout: Duration,
    /// Put the interface in promiscuous mode while the sockets are open.
    pub promisc: bool,
    /// tcpdump filter expression compiled by libpcap and attached to every socket.
    pub filter: Option<String>,
    /// Bytes kept per packet (0 = 262144).
    pub snaplen: u32,
    /// Optional CPU per worker (`cpus[i % len]`), applied by [`LiveSource::pin_current_thread`].
    pub cpus: Vec<usize>,
    /// Do not capture packets this host sends (PACKET_IGNORE_OUTGOING).
    pub ignore_outgoing: bool,
    /// Raised to end the capture: sources then drain their rings and report end of input.
    pub stop: StopHandle,
}

impl LiveConfig {
    /// Defaults for one interface: one thread, hash fanout, automatic ring size, 10 ms block
    /// retire timeout, 100 ms poll timeout, promiscuous, no filter, full snaplen.
    pub fn new(iface: impl Into<String>) -> Self {
        LiveConfig {
            iface: iface.into(),
            threads: 1,
            fanout: FanoutMode::Hash,
            fanout_rollover: false,
            fanout_defrag: true,
            fanout_group: None,
            block_size: 0,
            block_count: 0,
            frame_size: 2048,
            retire_timeout: Duration::from_millis(10),
            poll_timeout: Duration::from_millis(100),
            promisc: true,
            filter: None,
            snaplen: 0,
            cpus: Vec::new(),
            ignore_outgoing: false,
            stop: StopHandle::new(),
        }
    }

    /// Block size and count per socket after applying the automatic defaults, for a link of
    /// `speed_mbps` (None = unknown, taken as 1 Gbit/s).
    pub fn ring_geometry(&self, speed_mbps: Option<u64>) -> (u32, u32) {
        let block = if self.block_size == 0 {
            1 << 20
        } else {
            self.block_size
        };
        let count = if self.block_count != 0 {
            self.block_count
        } else {
            let mbps = speed_mbps.unwrap_or(1000);
            // ~100 ms of line rate over the whole group, 32..256 MiB, 16..1024 blocks a socket.
            let total = (mbps * 1_000_000 / 8 / 10).clamp(32 << 20, 256 << 20);
            let per = total / self.threads.max(1) as u64 / block as u64;
            per.clamp(16, 1024) as u32
        };
        (block, count)
    }
}

/// Counters of one socket (or a sum over a group), including the kernel's.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LiveStats {
    /// Packets handed to user space.
    pub packets: u64,
    /// Captured bytes handed to user space.
    pub bytes: u64,
    /// Wire bytes of those packets.
    pub wire_bytes: u64,
    /// Packets cut by the snaplen.
    pub snapped: u64,
    /// Packets the kernel passed to the socket (PACKET_STATISTICS tp_packets, drops included).
    pub kernel_received: u64,
    /// Packets the kernel dropped because the ring was full.
    pub kernel_drops: u64,
    /// Times the kernel froze the ring queue.
    pub freezes: u64,
    /// Packets dropped in user space by a consumer that fell behind (see
    /// [`LiveStatsHandle::add_user_drops`]).
    pub user_drops: u64,
    /// Ring blocks handed to user space.
    pub blocks: u64,
}

impl std::ops::AddAssign for LiveStats {
    fn add_assign(&mut self, o: Self) {
        self.packets += o.packets;
        self.bytes += o.bytes;
        self.wire_bytes += o.wire_bytes;
        self.snapped += o.snapped;
        self.kernel_received += o.kernel_received;
        self.kernel_drops += o.kernel_drops;
        self.freezes += o.freezes;
        self.user_drops += o.user_drops;
        self.blocks += o.blocks;
    }
}

impl std::iter::Sum for LiveStats {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        let mut s = LiveStats::default();
        for x in iter {
            s += x;
        }
        s
    }
}

impl LiveStats {
    /// Kernel drops as a fraction of what the kernel received (0 when nothing was received).
    pub fn drop_ratio(&self) -> f64 {
        if self.kernel_received == 0 {
            0.0
        } else {
            (self.kernel_drops + self.user_drops) as f64 / self.kernel_received as f64
        }
    }
}

impl From<LiveStats> for SourceStats {
    fn from(s: LiveStats) -> Self {
        SourceStats {
            packets: s.packets,
            bytes: s.bytes,
            wire_bytes: s.wire_bytes,
            snapped: s.snapped,
            kernel_drops: s.kernel_drops,
            user_drops: s.user_drops,
            freezes: s.freezes,
            ..Default::default()
        }
    }
}

#[derive(Debug, Default)]
struct KernelTotals {
    received: u64,
    drops: u64,
    freezes: u64,
}

/// State shared between a source (its worker thread) and its stats handles.
#[derive(Debug)]
struct Shared {
    fd: OwnedFd,
    iface: String,
    packets: AtomicU64,
    bytes: AtomicU64,
    wire_bytes: AtomicU64,
    snapped: AtomicU64,
    blocks: AtomicU64,
    user_drops: AtomicU64,
    kernel: Mutex<KernelTotals>,
}

impl Shared {
    /// Reads (and thereby resets) the kernel counters and adds them to the running totals.
    fn snapshot(&self) -> LiveStats {
        let mut k = self.kernel.lock().unwrap_or_else(|p| p.into_inner());
        if let Ok(st) = sys::getsockopt::<libc::tpacket_stats_v3>(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
        ) {
            k.received += st.tp_packets as u64;
            k.drops += st.tp_drops as u64;
            k.freezes += st.tp_freeze_q_cnt as u64;
        }
        LiveStats {
            packets: self.packets.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
            wire_bytes: self.wire_bytes.load(Ordering::Relaxed),
            snapped: self.snapped.load(Ordering::Relaxed),
            kernel_received: k.received,
            kernel_drops: k.drops,
            freezes: k.freezes,
            user_drops: self.user_drops.load(Ordering::Relaxed),
            blocks: self.blocks.load(Ordering::Relaxed),
        }
    }
}

/// A cheap, thread-safe view of one live source's counters, for periodic and final reports from
/// another thread than the worker's.
#[derive(Clone, Debug)]
pub struct LiveStatsHandle(Arc<Shared>);

impl LiveStatsHandle {
    /// Current counters, kernel ones included.
    pub fn snapshot(&self) -> LiveStats {
        self.0.snapshot()
    }

    /// Records packets a consumer of this source dropped in user space.
    pub fn add_user_drops(&self, n: u64) {
        self.0.user_drops.fetch_add(n, Ordering::Relaxed);
    }

    /// Interface name.
    pub fn iface(&self) -> &str {
        &self.0.iface
    }
}

/// Sums the counters of several sources.
pub fn group_stats(handles: &[LiveStatsHandle]) -> LiveStats {
    handles.iter().map(LiveStatsHandle::snapshot).sum()
}

/// The memory-mapped ring of one socket.
#[derive(Debug)]
struct Ring {
    base: NonNull<u8>,
    len: usize,
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: `base`/`len` come from a successful mmap that nothing else unmaps.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

/// One socket of a fanout group with its TPACKET_V3 ring: a [`PacketSource`] whose batches are
/// ring blocks, lent to the callback without copying and returned to the kernel afterwards.
///
/// Drive each `LiveSource` from its own thread. When the config's [`StopHandle`] is raised,
/// `next_batch` stops new packets from entering the ring, hands out what is already in it, and
/// then returns `Ok(false)`.
#[derive(Debug)]
pub struct LiveSource {
    shared: Arc<Shared>,
    ring: Ring,
    block_size: usize,
    block_count: usize,
    cur: usize,
    metas: Vec<PacketMeta>,
    ifaces: Vec<InterfaceInfo>,
    link: LinkType,
    index: usize,
    cpu: Option<usize>,
    poll_ms: i32,
    drain_ms: i32,
    stop: StopHandle,
    draining: bool,
    done: bool,
}

// SAFETY: the ring mapping is owned by this value alone (no aliasing pointer escapes except
// through `&self` borrows tied to a `next_batch` call), and the kernel side is synchronised
// through the block status word; moving the owner to another thread is sound.
unsafe impl Send for LiveSource {}

static GROUP_SEQ: AtomicU32 = AtomicU32::new(0);

/// The program attached to the sockets of `iface`: compiled on a live libpcap handle, so VLAN
/// expressions test the tag the kernel stripped (as tcpdump does on Linux). When no live handle
/// can be used there, falls back to the file compile with a one-line warning on stderr.
fn live_filter(
    iface: &str,
    expr: &str,
    link: LinkType,
    snaplen: u32,
) -> Result<Filter, CaptureError> {
    let why = match Filter::compile_live(iface, expr, snaplen) {
        Ok(f) if f.link() == link => return Ok(f),
        Ok(f) => format!(
            "the libpcap handle on {iface:?} has link type {} instead of {}",
            f.link().0,
            link.0
        ),
        Err(LiveCompileError::Filter(e)) => return Err(e),
        Err(LiveCompileError::Handle(m)) => m,
    };
    eprintln!(
        "netspectra: warning: {why}; filter {expr:?} compiled as for a file, so `vlan` tests \
         miss tags the kernel stripped"
    );
    Filter::compile(expr, link, snaplen)
}

/// Opens `cfg.threads` sockets on `cfg.iface` in one fanout group (one socket and no fanout when
/// `threads == 1`). The filter is attached only after every socket joined the group, so no flow
/// is split while the group forms. Needs CAP_NET_RAW.
pub fn open_fanout(cfg: &LiveConfig) -> Result<Vec<LiveSource>, CaptureError> {
    if cfg.threads == 0 || cfg.threads > 256 {
        return Err(CaptureError::Config(format!(
            "threads must be 1..=256, got {}",
            cfg.threads
        )));
    }
    let ifindex = sys::ifindex(&cfg.iface)?;
    let probe = sys::packet_socket(&cfg.iface)?;
    let page = 4096u32;
    let (block_size, block_count) =
        cfg.ring_geometry(sys::link_speed_mbps(probe.as_fd(), &cfg.iface));
    drop(probe);
    if block_size < page || block_size % page != 0 || !(block_size / page).is_power_of_two() {
        return Err(CaptureError::Config(format!(
            "block size {block_size} must be a power-of-two multiple of the page size (4096)"
        )));
    }
    if block_count == 0 || block_count as u64 * block_size as u64 > 4 << 30 {
        return Err(CaptureError::Config(format!(
            "ring of {block_count} blocks of {block_size} bytes is empty or above 4 GiB"
        )));
    }
    let frame_size = cfg.frame_size.max(64).next_multiple_of(16);
    if frame_size > block_size {
        return Err(CaptureError::Config("frame size above block size".into()));
    }
    let snaplen = if cfg.snaplen == 0 {
        DEFAULT_SNAPLEN
    } else {
        cfg.snaplen
    };
    let group = cfg.fanout_group.unwrap_or_else(|| {
        let seq = GROUP_SEQ.fetch_add(1, Ordering::Relaxed);
        (std::process::id() as u16)
            .wrapping_mul(31)
            .wrapping_add(seq as u16)
    });
    let mut link = None;
    let mut filter = None;
    let mut out = Vec::with_capacity(cfg.threads);
    for index in 0..cfg.threads {
        let iface = cfg.iface.as_str();
        let fd = sys::packet_socket(iface)?;
        let link = match link {
            Some(l) => l,
            None => {
                let hw = sys::hw_type(fd.as_fd(), iface)?;
                let l = match hw {
                    libc::ARPHRD_ETHER | libc::ARPHRD_LOOPBACK => LinkType::ETHERNET,
                    libc::ARPHRD_NONE => LinkType::RAW,
                    _ => {
                        return Err(CaptureError::UnsupportedLink {
                            iface: iface.into(),
                            hw,
                        })
                    }
                };
                link = Some(l);
                filter = Some(match &cfg.filter {
                    Some(e) => live_filter(iface, e, l, snaplen)?,
                    None => Filter::accept_all(l, snaplen),
                });
                l
            }
        };
        let io = |op: &'static str| move |e| CaptureError::from_io(op, iface, e);
        sys::setsockopt(
            fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &(libc::tpacket_versions::TPACKET_V3 as libc::c_int),
        )
        .map_err(io("PACKET_VERSION TPACKET_V3"))?;
        Filter::reject_all(link)
            .attach(fd.as_fd())
            .map_err(io("SO_ATTACH_FILTER"))?;
        let req = libc::tpacket_req3 {
            tp_block_size: block_size,
            tp_block_nr: block_count,
            tp_frame_size: frame_size,
            tp_frame_nr: (block_size / frame_size) * block_count,
            tp_retire_blk_tov: cfg.retire_timeout.as_millis().clamp(1, 60_000) as u32,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_RX_RING, &req)
            .map_err(io("PACKET_RX_RING"))?;
        let len = block_size as usize * block_count as usize;
        // SAFETY: maps the ring the kernel just allocated for this socket; the result is checked.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(CaptureError::last_os("mmap of the RX ring", iface));
        }
        let ring = Ring {
            base: NonNull::new(p.cast()).ok_or_else(|| CaptureError::Config("null ring".into()))?,
            len,
        };
        if cfg.ignore_outgoing {
            sys::setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &1i32,
            )
            .map_err(io("PACKET_IGNORE_OUTGOING"))?;
        }
        sys::bind_ll(fd.as_fd(), ifindex, libc::ETH_P_ALL as u16).map_err(io("bind"))?;
        if cfg.promisc {
            // SAFETY: `packet_mreq` is plain old data; all-zero is valid.
            let mut mr: libc::packet_mreq = unsafe { std::mem::zeroed() };
            mr.mr_ifindex = ifindex;
            mr.mr_type = libc::PACKET_MR_PROMISC as u16;
            sys::setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &mr,
            )
            .map_err(io("promiscuous mode (PACKET_ADD_MEMBERSHIP)"))?;
        }
        if cfg.threads > 1 {
            let mut mode = cfg.fanout.kernel_value();
            if cfg.fanout_defrag {
                mode |= libc::PACKET_FANOUT_FLAG_DEFRAG;
            }
            if cfg.fanout_rollover {
                mode |= libc::PACKET_FANOUT_FLAG_ROLLOVER;
            }
            let arg: u32 = group as u32 | (mode << 16);
            sys::setsockopt(fd.as_fd(), libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)
                .map_err(io("PACKET_FANOUT"))?;
        }
        let poll_ms = cfg.poll_timeout.as_millis().clamp(1, 60_000) as i32;
        let retire_ms = cfg.retire_timeout.as_millis().clamp(1, 60_000) as i32;
        out.push(LiveSource {
            shared: Arc::new(Shared {
                fd,
                iface: cfg.iface.clone(),
                packets: AtomicU64::new(0),
                bytes: AtomicU64::new(0),
                wire_bytes: AtomicU64::new(0),
                snapped: AtomicU64::new(0),
                blocks: AtomicU64::new(0),
                user_drops: AtomicU64::new(0),
                kernel: Mutex::new(KernelTotals::default()),
            }),
            ring,
            block_size: block_size as usize,
            block_count: block_count as usize,
            cur: 0,
            metas: Vec::with_capacity(block_size as usize / 64),
            ifaces: vec![InterfaceInfo {
                link,
                snaplen,
                name: Some(cfg.iface.clone()),
                description: None,
                filter: cfg.filter.clone(),
                ts_precision: 9,
            }],
            link,
            index,
            cpu: (!cfg.cpus.is_empty()).then(|| cfg.cpus[index % cfg.cpus.len()]),
            poll_ms,
            drain_ms: 2 * retire_ms + 20,
            stop: cfg.stop.clone(),
            draining: false,
            done: false,
        });
    }
    // Every socket is in the group now: let packets in. Counters start from here.
    if let Some(f) = &filter {
        for s in &out {
            f.attach(s.shared.fd.as_fd())
                .map_err(|e| CaptureError::from_io("SO_ATTACH_FILTER", &cfg.iface, e))?;
            let _ = s.shared.snapshot();
            *s.shared.kernel.lock().unwrap_or_else(|p| p.into_inner()) = KernelTotals::default();
        }
    }
    Ok(out)
}

/// Opens a single live source (no fanout); shorthand for `open_fanout` with `threads = 1`.
pub fn open_live(cfg: &LiveConfig) -> Result<LiveSource, CaptureError> {
    let mut c = cfg.clone();
    c.threads = 1;
    open_fanout(&c)?
        .pop()
        .ok_or_else(|| CaptureError::Config("no socket opened".into()))
}

/// Replaces the kernel filter of a live socket while it captures (a configuration reload):
/// the new program is attached atomically, so every packet meets either the old or the new
/// filter. Keeps the socket alive for as long as the handle lives.
#[derive(Clone, Debug)]
pub struct FilterHandle {
    shared: Arc<Shared>,
    link: LinkType,
    snaplen: u32,
}

impl FilterHandle {
    /// Compiles `expr` (`None`: accept everything) as the live capture does and attaches it.
    pub fn set(&self, expr: Option<&str>) -> Result<(), CaptureError> {
        let f = match expr {
            Some(e) => live_filter(&self.shared.iface, e, self.link, self.snaplen)?,
            None => Filter::accept_all(self.link, self.snaplen),
        };
        f.attach(self.shared.fd.as_fd())
            .map_err(|e| CaptureError::from_io("SO_ATTACH_FILTER", &self.shared.iface, e))
    }

    /// The interface.
    pub fn iface(&self) -> &str {
        &self.shared.iface
    }
}

impl LiveSource {
    /// A handle that changes this socket's kernel filter while it runs.
    pub fn filter_handle(&self) -> FilterHandle {
        FilterHandle {
            shared: Arc::clone(&self.shared),
            link: self.link,
            snaplen: self.ifaces.first().map_or(0, |i| i.snaplen),
        }
    }

    /// Position of this source in its fanout group (0-based).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Link type of the frames.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// A handle to this source's counters, usable from other threads.
    pub fn stats_handle(&self) -> LiveStatsHandle {
        LiveStatsHandle(Arc::clone(&self.shared))
    }

    /// Counters including the kernel's.
    pub fn live_stats(&self) -> LiveStats {
        self.shared.snapshot()
    }

    /// The socket, e.g. to attach another filter with [`Filter::attach`].
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.shared.fd.as_fd()
    }

    /// Ring geometry: (block size in bytes, block count).
    pub fn ring_size(&self) -> (usize, usize) {
        (self.block_size, self.block_count)
    }

    /// The CPU configured for this worker, if any.
    pub fn cpu(&self) -> Option<usize> {
        self.cpu
    }

    /// Pins the calling thread to this worker's configured CPU (no-op without one).
    pub fn pin_current_thread(&self) -> std::io::Result<()> {
        match self.cpu {
            Some(c) => sys::pin_current_thread(c),
            None => Ok(()),
        }
    }

    /// Status word of block `i`.
    #[inline]
    fn block_status(&self, i: usize) -> &AtomicU32 {
        // SAFETY: block `i` < block_count lies inside the mapping, and each block starts with a
        // `tpacket_block_desc` whose `block_status` (4-byte aligned u32 at offset 8) is shared
        // with the kernel: accessing it atomically is the documented protocol.
        unsafe {
            let desc = self.ring.base.as_ptr().add(i * self.block_size) as *const u8;
            &*(desc.add(8) as *const AtomicU32)
        }
    }

    /// Hands block `cur` to `f` if user space owns it; returns whether it did.
    fn take_block(&mut self, f: &mut dyn FnMut(&Batch<'_>)) -> bool {
        let status = self.block_status(self.cur).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return false;
        }
        fence(Ordering::Acquire);
        // SAFETY: the block is owned by user space until we write TP_STATUS_KERNEL below; the
        // slice covers exactly this block inside the live mapping and is only lent to `f`.
        let block: &[u8] = unsafe {
            std::slice::from_raw_parts(
                self.ring.base.as_ptr().add(self.cur * self.block_size),
                self.block_size,
            )
        };
        let rd32 = |off: usize| -> Option<u32> {
            block
                .get(off..off + 4)
                .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        };
        let rd16 = |off: usize| -> Option<u16> {
            block
                .get(off..off + 2)
                .map(|b| u16::from_ne_bytes([b[0], b[1]]))
        };
        // tpacket_block_desc: version u32, offset_to_priv u32, then tpacket_hdr_v1:
        // block_status@8, num_pkts@12, offset_to_first_pkt@16, blk_len@20.
        let num = rd32(12).unwrap_or(0) as usize;
        let mut off = rd32(16).unwrap_or(0) as usize;
        self.metas.clear();
        let (mut bytes, mut wire, mut snapped) = (0u64, 0u64, 0u64);
        for _ in 0..num {
            // tpacket3_hdr: next_offset@0 sec@4 nsec@8 snaplen@12 len@16 status@20 mac@24
            // net@26 hv1{rxhash@28 vlan_tci@32 vlan_tpid@36}.
            let (Some(next), Some(sec), Some(nsec), Some(caplen), Some(len), Some(st), Some(mac)) = (
                rd32(off),
                rd32(off + 4),
                rd32(off + 8),
                rd32(off + 12),
                rd32(off + 16),
                rd32(off + 20),
                rd16(off + 24),
            ) else {
                break;
            };
            let start = off + mac as usize;
            let caplen = (caplen as usize).min(self.block_size.saturating_sub(start)) as u32;
            let vlan_tci = if st & libc::TP_STATUS_VLAN_VALID != 0 {
                rd32(off + 32).map(|v| v as u16)
            } else {
                None
            };
            bytes += caplen as u64;
            snapped += (caplen < len) as u64;
            // On the wire the frame carried the tag the kernel moved into the ring's metadata:
            // count it, so live byte counts equal those of a file of the same traffic.
            let len = if vlan_tci.is_some() && self.link == LinkType::ETHERNET {
                len.saturating_add(4)
            } else {
                len
            };
            wire += len as u64;
            self.metas.push(PacketMeta {
                ts: Timestamp::from_parts(sec as i64, nsec),
                offset: start as u32,
                caplen,
                orig_len: len,
                iface: 0,
                link: self.link,
                vlan_tci,
            });
            if next == 0 {
                break;
            }
            off += next as usize;
        }
        f(&Batch::new(block, &self.metas));
        let s = &self.shared;
        s.packets
            .fetch_add(self.metas.len() as u64, Ordering::Relaxed);
        s.bytes.fetch_add(bytes, Ordering::Relaxed);
        s.wire_bytes.fetch_add(wire, Ordering::Relaxed);
        s.snapped.fetch_add(snapped, Ordering::Relaxed);
        s.blocks.fetch_add(1, Ordering::Relaxed);
        self.block_status(self.cur)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
        self.cur = (self.cur + 1) % self.block_count;
        true
    }

    /// Stops new packets from entering this ring (a reject-all filter); what is in it stays.
    fn start_drain(&mut self) {
        self.draining = true;
        let _ = Filter::reject_all(self.link).attach(self.shared.fd.as_fd());
    }
}

impl PacketSource for LiveSource {
    fn next_batch(&mut self, f: &mut dyn FnMut(&Batch<'_>)) -> Result<bool, SourceError> {
        if self.done {
            return Ok(false);
        }
        if !self.draining && self.stop.is_stopped() {
            self.start_drain();
        }
        if self.take_block(f) {
            return Ok(true);
        }
        let timeout = if self.draining {
            self.drain_ms
        } else {
            self.poll_ms
        };
        sys::poll1(self.fd(), libc::POLLIN | libc::POLLERR, timeout).map_err(|e| {
            SourceError::Io {
                context: format!("poll on interface {:?}", self.shared.iface),
                source: e,
            }
        })?;
        if self.take_block(f) {
            return Ok(true);
        }
        if self.draining {
            // The retire timer closed every partly filled block during the wait: all drained.
            self.done = true;
            let _ = self.shared.snapshot();
            return Ok(false);
        }
        f(&Batch::new(&[], &[]));
        Ok(true)
    }

    fn stats(&self) -> SourceStats {
        self.shared.snapshot().into()
    }

    fn interfaces(&self) -> &[InterfaceInfo] {
        &self.ifaces
    }
}

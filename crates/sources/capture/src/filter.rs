//! tcpdump filter expressions compiled by libpcap to classic BPF, attached to sockets, and run
//! over offline packets by an interpreter with libpcap's `bpf_filter` semantics.

use crate::CaptureError;
use netspectra_packet::{LinkType, Packet};
use std::os::fd::BorrowedFd;
use std::sync::Mutex;

/// Default snapshot length (libpcap's MAXIMUM_SNAPLEN).
pub const DEFAULT_SNAPLEN: u32 = 262_144;

/// libpcap's compiler is not documented as thread-safe on every version; serialise it.
static COMPILE_LOCK: Mutex<()> = Mutex::new(());

/// A compiled classic BPF program for one link type.
///
/// The same program runs in the kernel (attached with [`Filter::attach`]) and in user space
/// ([`Filter::matches`]), so `capture -i IFACE -f EXPR` and `flows -r FILE -f EXPR` select the
/// same packets.
#[derive(Clone, Debug)]
pub struct Filter {
    expr: String,
    link: LinkType,
    insns: Vec<libc::sock_filter>,
    /// Compiled on an activated live handle: may contain Linux ancillary-data loads.
    live: bool,
}

/// Linux classic-BPF ancillary data: an absolute load at `SKF_AD_OFF + n` (k >= 0xfffff000)
/// reads socket-buffer metadata instead of packet bytes (`linux/filter.h`).
pub const SKF_AD_OFF: u32 = 0xffff_f000;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG`: the 802.1Q TCI the kernel moved into the metadata.
pub const SKF_AD_VLAN_TAG: u32 = SKF_AD_OFF + 44;
/// `SKF_AD_OFF + SKF_AD_VLAN_TAG_PRESENT`: 1 when the kernel stripped an 802.1Q/802.1ad tag.
pub const SKF_AD_VLAN_TAG_PRESENT: u32 = SKF_AD_OFF + 48;

const BPF_LD: u16 = 0x00;
const BPF_LDX: u16 = 0x01;
const BPF_ST: u16 = 0x02;
const BPF_STX: u16 = 0x03;
const BPF_ALU: u16 = 0x04;
const BPF_JMP: u16 = 0x05;
const BPF_RET: u16 = 0x06;
const BPF_MISC: u16 = 0x07;
const BPF_W: u16 = 0x00;
const BPF_H: u16 = 0x08;
const BPF_B: u16 = 0x10;
const BPF_IMM: u16 = 0x00;
const BPF_ABS: u16 = 0x20;
const BPF_IND: u16 = 0x40;
const BPF_MEM: u16 = 0x60;
const BPF_LEN: u16 = 0x80;
const BPF_MSH: u16 = 0xa0;
const BPF_K: u16 = 0x00;
const BPF_X: u16 = 0x08;
const BPF_A: u16 = 0x10;
const BPF_MEMWORDS: usize = 16;
const MAX_INSNS: usize = 4096;

/// The DLT_ value libpcap's compiler expects for a LINKTYPE_ value (they differ for a few
/// historical types; libpcap's own `linktype_to_dlt`).
fn dlt_of(link: LinkType) -> i32 {
    match link.0 {
        100 => 11, // ATM_RFC1483
        101 => 12, // RAW (DLT_RAW on Linux)
        102 => 15, // SLIP_BSDOS
        103 => 16, // PPP_BSDOS
        l => l as i32,
    }
}

/// A libpcap savefile handle for `link`, opened on a header-only temporary pcap file. libpcap
/// compiles some link types differently for files than for a dead handle (DLT_NULL accepts
/// every OS's AF_INET6 value in a file), and files are what `matches` filters.
fn offline_handle(link: LinkType) -> Option<pcap::Capture<pcap::Offline>> {
    static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        ".netspectra-filter-{}-{n}.pcap",
        std::process::id()
    ));
    let mut h = [0u8; 24];
    h[0..4].copy_from_slice(&0xa1b2_c3d4u32.to_ne_bytes());
    h[4..6].copy_from_slice(&2u16.to_ne_bytes());
    h[6..8].copy_from_slice(&4u16.to_ne_bytes());
    h[16..20].copy_from_slice(&DEFAULT_SNAPLEN.to_ne_bytes());
    h[20..24].copy_from_slice(&(link.0 as u32).to_ne_bytes());
    std::fs::write(&path, h).ok()?;
    let cap = pcap::Capture::from_file(&path);
    let _ = std::fs::remove_file(&path);
    cap.ok()
}

fn insn(code: u16, jt: u8, jf: u8, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// The LINKTYPE_ value of a DLT_ value (inverse of [`dlt_of`]).
fn link_of_dlt(dlt: i32) -> LinkType {
    match dlt {
        11 => LinkType(100),
        12 => LinkType(101),
        15 => LinkType(102),
        16 => LinkType(103),
        d => LinkType(d as u16),
    }
}

/// Reads a libpcap program back as `sock_filter`s, every accepting `RET` set to `snaplen`.
fn read_program(prog: &pcap::BpfProgram, snaplen: u32) -> Result<Vec<libc::sock_filter>, String> {
    // The instruction fields are private in the pcap crate; its Display prints
    // "code jt jf k", which is exact and needs no unsafe transmute.
    let mut insns = Vec::with_capacity(prog.get_instructions().len());
    for i in prog.get_instructions() {
        let line = i.to_string();
        let mut it = line.split_ascii_whitespace().map(str::parse::<u64>);
        let mut next = || it.next().and_then(Result::ok);
        let (Some(code), Some(jt), Some(jf), Some(k)) = (next(), next(), next(), next()) else {
            return Err(format!("unexpected instruction text {line:?}"));
        };
        let mut i = insn(code as u16, jt as u8, jf as u8, k as u32);
        // libpcap's handle has its own snaplen; accept with the configured snaplen.
        if i.code == BPF_RET | BPF_K && i.k != 0 {
            i.k = snaplen;
        }
        insns.push(i);
    }
    Ok(insns)
}

/// Why [`Filter::compile_live`] could not compile on a live handle.
#[derive(Debug)]
pub enum LiveCompileError {
    /// The expression is bad (libpcap's message): the caller should report it.
    Filter(CaptureError),
    /// No libpcap handle could be activated on the interface (e.g. it is down); the caller may
    /// fall back to [`Filter::compile`].
    Handle(String),
}

impl std::fmt::Display for LiveCompileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LiveCompileError::Filter(e) => e.fmt(f),
            LiveCompileError::Handle(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for LiveCompileError {}

/// `snaplen`, or [`DEFAULT_SNAPLEN`] for 0.
fn snaplen_or_default(snaplen: u32) -> u32 {
    if snaplen == 0 {
        DEFAULT_SNAPLEN
    } else {
        snaplen
    }
}

impl Filter {
    /// Compiles a tcpdump expression (libpcap syntax, optimised) for frames of `link`.
    /// Accepted packets are cut to `snaplen` bytes when attached to a socket (0 = default).
    /// An empty or all-blank expression accepts everything.
    pub fn compile(expr: &str, link: LinkType, snaplen: u32) -> Result<Self, CaptureError> {
        let snaplen = snaplen_or_default(snaplen);
        if expr.trim().is_empty() {
            let mut f = Self::accept_all(link, snaplen);
            f.expr = expr.to_string();
            return Ok(f);
        }
        let err = |reason: String| CaptureError::Filter {
            expr: expr.to_string(),
            reason,
        };
        let insns = {
            let _guard = COMPILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let prog = match offline_handle(link) {
                Some(h) => h.compile(expr, true),
                None => pcap::Capture::dead(pcap::Linktype(dlt_of(link)))
                    .map_err(|e| err(e.to_string()))?
                    .compile(expr, true),
            }
            .map_err(|e| err(e.to_string()))?;
            read_program(&prog, snaplen).map_err(err)?
        };
        Filter::checked(expr, link, insns, false)
    }

    /// Compiles a tcpdump expression the way libpcap does for a live capture on interface
    /// `iface` (in the calling thread's network namespace), for attaching to AF_PACKET sockets
    /// on that interface.
    ///
    /// Opens and activates a real libpcap handle on the interface (not promiscuous, 128-byte
    /// snaplen, 64 KiB buffer; needs CAP_NET_RAW), compiles there and closes it. On Linux an
    /// activated handle lets libpcap use the kernel's ancillary data (`SO_BPF_EXTENSIONS`), so
    /// `vlan`, `vlan N` and `not vlan` test the tag the kernel stripped into the socket buffer
    /// (`SKF_AD_VLAN_TAG_PRESENT`, `SKF_AD_VLAN_TAG`) as well as a tag still in the frame, exactly
    /// like tcpdump; `inbound`/`outbound` (`SKF_AD_PKTTYPE`) also compile. The result's link type
    /// is the handle's. Accepting `RET`s are set to `snaplen` (0 = default).
    ///
    /// [`Filter::matches`] evaluates the VLAN ancillary loads from the packet's `vlan_tci`;
    /// other ancillary loads reject in user space (see [`Filter::user_space_exact`]).
    pub fn compile_live(iface: &str, expr: &str, snaplen: u32) -> Result<Self, LiveCompileError> {
        let snaplen = snaplen_or_default(snaplen);
        let err = |reason: String| {
            LiveCompileError::Filter(CaptureError::Filter {
                expr: expr.to_string(),
                reason,
            })
        };
        let handle_err = |e: pcap::Error| {
            LiveCompileError::Handle(format!(
                "cannot activate a libpcap handle on interface {iface:?}: {e}"
            ))
        };
        let (link, insns) = {
            let _guard = COMPILE_LOCK.lock().unwrap_or_else(|p| p.into_inner());
            let cap = pcap::Capture::from_device(iface)
                .map_err(handle_err)?
                .promisc(false)
                .snaplen(128)
                .buffer_size(64 << 10)
                .timeout(1)
                .open()
                .map_err(handle_err)?;
            let link = link_of_dlt(cap.get_datalink().0);
            if expr.trim().is_empty() {
                (link, vec![insn(BPF_RET | BPF_K, 0, 0, snaplen)])
            } else {
                let prog = cap.compile(expr, true).map_err(|e| err(e.to_string()))?;
                (link, read_program(&prog, snaplen).map_err(err)?)
            }
            // `cap` (and its socket) is closed here.
        };
        Filter::checked(expr, link, insns, true).map_err(LiveCompileError::Filter)
    }

    /// The filter of a compiled program, after [`Filter::validate`]'s checks.
    fn checked(
        expr: &str,
        link: LinkType,
        insns: Vec<libc::sock_filter>,
        live: bool,
    ) -> Result<Self, CaptureError> {
        let f = Filter {
            expr: expr.to_string(),
            link,
            insns,
            live,
        };
        f.validate().map_err(|r| CaptureError::Filter {
            expr: expr.to_string(),
            reason: r.into(),
        })?;
        Ok(f)
    }

    /// True when this program was compiled on a live handle ([`Filter::compile_live`]).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// True when [`Filter::run`]/[`Filter::matches`] decide exactly as the kernel would: the
    /// program has no ancillary-data loads other than the VLAN ones, which the interpreter takes
    /// from the packet's `vlan_tci`. Programs that read other metadata (`inbound`/`outbound`:
    /// `SKF_AD_PKTTYPE`) are for sockets only; in user space those loads reject the packet.
    pub fn user_space_exact(&self) -> bool {
        self.insns
            .iter()
            .all(|i| !is_ancillary(i) || matches!(i.k, SKF_AD_VLAN_TAG | SKF_AD_VLAN_TAG_PRESENT))
    }

    /// A program that accepts every packet, cut to `snaplen` bytes.
    pub fn accept_all(link: LinkType, snaplen: u32) -> Self {
        let snaplen = snaplen_or_default(snaplen);
        Filter {
            expr: String::new(),
            link,
            insns: vec![insn(BPF_RET | BPF_K, 0, 0, snaplen)],
            live: false,
        }
    }

    /// A program that rejects every packet (used while sockets join a fanout group and to drain).
    pub fn reject_all(link: LinkType) -> Self {
        Filter {
            expr: "<reject all>".into(),
            link,
            insns: vec![insn(BPF_RET | BPF_K, 0, 0, 0)],
            live: false,
        }
    }

    /// The source expression.
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// The link type the program was compiled for.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The classic BPF instructions.
    pub fn instructions(&self) -> &[libc::sock_filter] {
        &self.insns
    }

    /// True when this packet passes the filter (as libpcap's `pcap_offline_filter` decides it).
    /// Packets of another link type than the program's never match.
    ///
    /// For LINKTYPE_NULL (BSD loopback), whose 4-byte address family is in the byte order of the
    /// machine that wrote the file, a header in the other byte order is read swapped, as libpcap
    /// does for a swapped file.
    ///
    /// The packet's `vlan_tci` (a tag the kernel stripped, as live sources report it) is what
    /// the VLAN ancillary loads of a live-compiled program read.
    #[inline]
    pub fn matches(&self, p: &Packet<'_>) -> bool {
        p.link == self.link && self.run_meta(p.data, p.orig_len, p.vlan_tci) != 0
    }

    /// Runs the program over captured bytes `data` of a packet `wirelen` bytes long on the wire
    /// that carries no stripped VLAN tag (a packet of a file); returns the program's verdict
    /// (0 = reject, else the number of bytes to keep).
    pub fn run(&self, data: &[u8], wirelen: u32) -> u32 {
        self.run_meta(data, wirelen, None)
    }

    /// Like [`Filter::run`] for a packet whose 802.1Q tag the kernel moved into its metadata
    /// (`vlan_tci`): `SKF_AD_VLAN_TAG_PRESENT` reads 1 and `SKF_AD_VLAN_TAG` the TCI, as in the
    /// kernel. Every other ancillary load rejects the packet.
    pub fn run_meta(&self, data: &[u8], wirelen: u32, vlan_tci: Option<u16>) -> u32 {
        let m = Meta { wirelen, vlan_tci };
        if self.link == LinkType::NULL {
            if let Some(h) = data.get(..4) {
                let host = u32::from_ne_bytes([h[0], h[1], h[2], h[3]]);
                if host > 0xffff && host.swap_bytes() <= 0xffff {
                    let head = [h[3], h[2], h[1], h[0]];
                    return run_bpf(&self.insns, &Swapped { head, data }, m);
                }
            }
        }
        run_bpf(&self.insns, data, m)
    }

    /// Attaches the program to a socket (SO_ATTACH_FILTER), replacing any previous one.
    pub fn attach(&self, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.insns.len() as u16,
            filter: self.insns.as_ptr() as *mut libc::sock_filter,
        };
        crate::sys::setsockopt(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &prog)
    }

    /// Checks jumps stay inside the program, memory slots exist and the program ends in RET,
    /// so that [`Filter::run`] and the kernel accept it. Ancillary-data loads
    /// (`ld[bhw] [k]`, k >= `SKF_AD_OFF`) are allowed only in live programs, which are attached
    /// to sockets; a file's program never reads socket metadata.
    fn validate(&self) -> Result<(), &'static str> {
        let n = self.insns.len();
        if n == 0 || n > MAX_INSNS {
            return Err("program is empty or too long");
        }
        for (pc, i) in self.insns.iter().enumerate() {
            let class = i.code & 7;
            match class {
                BPF_JMP => {
                    let far = if i.code & 0xf0 == 0 {
                        i.k as usize
                    } else {
                        i.jt.max(i.jf) as usize
                    };
                    if pc + 1 + far >= n {
                        return Err("jump out of the program");
                    }
                }
                BPF_ST | BPF_STX if i.k as usize >= BPF_MEMWORDS => {
                    return Err("bad scratch memory slot")
                }
                BPF_LD | BPF_LDX if i.code & 0xe0 == BPF_MEM && i.k as usize >= BPF_MEMWORDS => {
                    return Err("bad scratch memory slot")
                }
                BPF_LD if is_ancillary(i) && !self.live => {
                    return Err("ancillary-data load in a program for files")
                }
                _ => {}
            }
        }
        if self.insns[n - 1].code & 7 != BPF_RET {
            return Err("program does not end in RET");
        }
        Ok(())
    }
}

/// An absolute load from the Linux ancillary-data area (`SKF_AD_OFF` and above).
fn is_ancillary(i: &libc::sock_filter) -> bool {
    i.code & 7 == BPF_LD && i.code & 0xe0 == BPF_ABS && i.k >= SKF_AD_OFF
}

/// What the interpreter knows about a packet besides its bytes.
#[derive(Clone, Copy)]
struct Meta {
    /// Length on the wire (`len`, `greater`, `less`).
    wirelen: u32,
    /// 802.1Q TCI the kernel stripped into the metadata (live packets only).
    vlan_tci: Option<u16>,
}

/// Packet bytes as the interpreter reads them.
trait Bytes {
    fn get(&self, i: usize) -> Option<u8>;
    fn load(&self, off: u32, size: u16) -> Option<u32>;
}

impl Bytes for [u8] {
    #[inline]
    fn get(&self, i: usize) -> Option<u8> {
        <[u8]>::get(self, i).copied()
    }
    #[inline]
    fn load(&self, off: u32, size: u16) -> Option<u32> {
        load(self, off, size)
    }
}

/// A packet whose first four bytes are replaced (a byte-swapped DLT_NULL header), no copy.
struct Swapped<'a> {
    head: [u8; 4],
    data: &'a [u8],
}

impl Bytes for Swapped<'_> {
    fn get(&self, i: usize) -> Option<u8> {
        if i < 4 {
            self.data.get(i).map(|_| self.head[i])
        } else {
            self.data.get(i).copied()
        }
    }
    fn load(&self, off: u32, size: u16) -> Option<u32> {
        let n = match size {
            BPF_W => 4,
            BPF_H => 2,
            BPF_B => 1,
            _ => return None,
        };
        let off = off as usize;
        let mut v = 0u32;
        for i in off..off.checked_add(n)? {
            v = v << 8 | self.get(i)? as u32;
        }
        Some(v)
    }
}

#[inline]
fn load(data: &[u8], off: u32, size: u16) -> Option<u32> {
    let off = off as usize;
    match size {
        BPF_W => data
            .get(off..off.checked_add(4)?)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]])),
        BPF_H => data
            .get(off..off.checked_add(2)?)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as u32),
        BPF_B => data.get(off).map(|&b| b as u32),
        _ => None,
    }
}

/// Classic BPF interpreter with libpcap's semantics: out-of-bounds loads, division by zero and
/// unknown instructions reject the packet; it never panics and always terminates (jumps only go
/// forward). Absolute loads at `SKF_AD_OFF` and above follow the Linux kernel: the VLAN ones
/// read the whole value whatever the load size (libpcap emits `ldb [vlan_tci]` and masks with
/// 0xfff); any other ancillary field is unknown here and rejects the packet.
fn run_bpf<B: Bytes + ?Sized>(insns: &[libc::sock_filter], data: &B, meta: Meta) -> u32 {
    let wirelen = meta.wirelen;
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; BPF_MEMWORDS];
    let mut pc = 0usize;
    while let Some(i) = insns.get(pc) {
        pc += 1;
        let k = i.k;
        match i.code & 7 {
            BPF_RET => {
                return match i.code & 0x18 {
                    BPF_K => k,
                    BPF_X => x,
                    BPF_A => a,
                    _ => 0,
                }
            }
            BPF_LD => {
                a = match i.code & 0xe0 {
                    BPF_ABS if k >= SKF_AD_OFF => match k {
                        SKF_AD_VLAN_TAG_PRESENT => meta.vlan_tci.is_some() as u32,
                        SKF_AD_VLAN_TAG => meta.vlan_tci.unwrap_or(0) as u32,
                        _ => return 0,
                    },
                    BPF_ABS => match data.load(k, i.code & 0x18) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_IND => match x.checked_add(k).and_then(|o| data.load(o, i.code & 0x18)) {
                        Some(v) => v,
                        None => return 0,
                    },
                    BPF_LEN => wirelen,
                    BPF_IMM => k,
                    BPF_MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            BPF_LDX => {
                x = match i.code & 0xe0 {
                    BPF_IMM => k,
                    BPF_LEN => wirelen,
                    BPF_MEM => match mem.get(k as usize) {
                        Some(&v) => v,
                        None => return 0,
                    },
                    BPF_MSH => match data.get(k as usize) {
                        Some(b) => ((b & 0x0f) as u32) << 2,
                        None => return 0,
                    },
                    _ => return 0,
                }
            }
            BPF_ST => match mem.get_mut(k as usize) {
                Some(m) => *m = a,
                None => return 0,
            },
            BPF_STX => match mem.get_mut(k as usize) {
                Some(m) => *m = x,
                None => return 0,
            },
            BPF_ALU => {
                let v = if i.code & 0x08 == BPF_X { x } else { k };
                a = match i.code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 => match a.checked_div(v) {
                        Some(r) => r,
                        None => return 0,
                    },
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => match a.checked_rem(v) {
                        Some(r) => r,
                        None => return 0,
                    },
                    0xa0 => a ^ v,
                    _ => return 0,
                }
            }
            BPF_JMP => {
                let v = if i.code & 0x08 == BPF_X { x } else { k };
                let taken = match i.code & 0xf0 {
                    0x00 => {
                        pc = pc.saturating_add(k as usize);
                        continue;
                    }
                    0x10 => a == v,
                    0x20 => a > v,
                    0x30 => a >= v,
                    0x40 => a & v != 0,
                    _ => return 0,
                };
                pc += if taken { i.jt as usize } else { i.jf as usize };
            }
            BPF_MISC => {
                if i.code & 0xf8 == 0 {
                    x = a;
                } else {
                    a = x;
                }
            }
            _ => return 0,
        }
    }
    0
}

/// One expression for offline packets of any link type: compiled for each link type on first
/// sight (a pcapng file may mix them) and kept. A link type libpcap rejects the expression for
/// matches nothing, as tcpdump reading such a file would show nothing of it.
#[derive(Debug)]
pub struct FileFilter {
    expr: String,
    programs: Vec<(LinkType, Option<Filter>)>,
}

impl FileFilter {
    /// A filter for `expr` (checked for syntax with [`Filter::compile`] by the caller).
    pub fn new(expr: &str) -> Self {
        FileFilter {
            expr: expr.to_string(),
            programs: Vec::new(),
        }
    }

    /// True when the packet passes the expression compiled for its link type.
    pub fn matches(&mut self, p: &Packet<'_>) -> bool {
        let i = match self.programs.iter().position(|(l, _)| *l == p.link) {
            Some(i) => i,
            None => {
                let f = Filter::compile(&self.expr, p.link, 0).ok();
                self.programs.push((p.link, f));
                self.programs.len() - 1
            }
        };
        self.programs[i].1.as_ref().is_some_and(|f| f.matches(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp_frame(dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 8 + 4];
        f[12] = 0x08; // IPv4
        f[14] = 0x45;
        f[14 + 9] = 17;
        f[14 + 2..14 + 4].copy_from_slice(&((20 + 8 + 4) as u16).to_be_bytes());
        f[14 + 12..14 + 16].copy_from_slice(&[10, 0, 0, 1]);
        f[14 + 16..14 + 20].copy_from_slice(&[10, 0, 0, 2]);
        f[34 + 2..34 + 4].copy_from_slice(&dport.to_be_bytes());
        f
    }

    #[test]
    fn compiles_and_matches_like_libpcap() {
        for expr in [
            "udp port 53",
            "udp",
            "tcp",
            "host 10.0.0.2",
            "len > 40",
            "not ip6",
        ] {
            let f = Filter::compile(expr, LinkType::ETHERNET, 0).unwrap();
            let prog = pcap::Capture::dead(pcap::Linktype(1))
                .unwrap()
                .compile(expr, true)
                .unwrap();
            for port in [53u16, 80] {
                let fr = udp_frame(port);
                assert_eq!(
                    f.run(&fr, fr.len() as u32) != 0,
                    prog.filter(&fr),
                    "{expr} {port}"
                );
            }
        }
    }

    /// libpcap 1.10's program for `vlan 10` on an activated Linux handle (`tcpdump -d -i IF`).
    fn live_vlan10() -> Filter {
        let vlanp = SKF_AD_VLAN_TAG_PRESENT;
        let j = |k, jt, jf| insn(BPF_JMP | 0x10, jt, jf, k);
        Filter {
            expr: "vlan 10".into(),
            link: LinkType::ETHERNET,
            insns: vec![
                insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, vlanp),
                j(1, 4, 0),
                insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 12),
                j(0x8100, 2, 0),
                j(0x88a8, 1, 0),
                j(0x9100, 0, 8),
                insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, vlanp),
                j(1, 0, 2),
                insn(BPF_LD | BPF_B | BPF_ABS, 0, 0, SKF_AD_VLAN_TAG),
                insn(BPF_JMP, 0, 0, 1),
                insn(BPF_LD | BPF_H | BPF_ABS, 0, 0, 14),
                insn(BPF_ALU | 0x50, 0, 0, 0xfff),
                j(10, 0, 1),
                insn(BPF_RET | BPF_K, 0, 0, 65535),
                insn(BPF_RET | BPF_K, 0, 0, 0),
            ],
            live: true,
        }
    }

    #[test]
    fn vlan_ancillary_loads_read_the_stripped_tag() {
        let f = live_vlan10();
        assert!(f.validate().is_ok() && f.user_space_exact());
        let fr = udp_frame(53);
        let mut tagged = fr[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0, 0x20, 10]);
        tagged.extend_from_slice(&fr[12..]);
        let n = fr.len() as u32;
        // Stripped tag in the metadata: the whole TCI is read (even by `ldb`), PCP masked.
        assert_ne!(f.run_meta(&fr, n, Some(10)), 0);
        assert_ne!(f.run_meta(&fr, n, Some(0xe00a)), 0);
        assert_eq!(f.run_meta(&fr, n, Some(20)), 0);
        assert_eq!(f.run_meta(&fr, n, None), 0);
        // Tag in the bytes (a file): the program's own fallback.
        assert_ne!(f.run(&tagged, n + 4), 0);
        // The same program compiled for files is refused; other ancillary fields reject.
        let mut file = f.clone();
        file.live = false;
        assert!(file.validate().is_err());
        let mut pkttype = f.clone();
        pkttype.insns[0].k = SKF_AD_OFF + 4;
        assert!(!pkttype.user_space_exact());
        assert_eq!(pkttype.run_meta(&fr, n, Some(10)), 0);
        // Dead-handle programs never contain ancillary loads.
        let dead = Filter::compile("vlan 10", LinkType::ETHERNET, 0).unwrap();
        assert!(!dead.is_live() && dead.insns.iter().all(|i| !is_ancillary(i)));
        assert_ne!(dead.run(&tagged, n + 4), 0);
        assert_eq!(
            dead.run_meta(&fr, n, Some(10)),
            0,
            "file program ignores metadata"
        );
    }

    #[test]
    fn interpreter_never_panics_and_terminates_on_random_programs() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let n = (next() % 24) as usize;
            let prog: Vec<_> = (0..n)
                .map(|_| {
                    let r = next();
                    let k = match r >> 60 {
                        0 => u32::MAX,
                        1..=3 => (r >> 8) as u32 % 64,
                        4 => SKF_AD_OFF + (r >> 8) as u32 % 64,
                        _ => (r >> 16) as u32,
                    };
                    insn(r as u16, (r >> 16) as u8, (r >> 24) as u8, k)
                })
                .collect();
            let data: Vec<u8> = (0..(next() % 80)).map(|_| next() as u8).collect();
            let m = Meta {
                wirelen: next() as u32,
                vlan_tci: (next() & 1 == 1).then_some(next() as u16),
            };
            let _ = run_bpf(&prog, &data[..], m);
            let sw = Swapped {
                head: [1, 2, 3, 4],
                data: &data,
            };
            let _ = run_bpf(&prog, &sw, m);
        }
    }

    #[test]
    fn bad_expressions_are_errors_and_garbage_never_panics() {
        assert!(Filter::compile("tcp port", LinkType::ETHERNET, 0).is_err());
        assert!(Filter::compile("tcp\0", LinkType::ETHERNET, 0).is_err());
        let f = Filter::compile("tcp[100:4] = 1 or udp[8] = 2", LinkType::ETHERNET, 0).unwrap();
        for n in 0..80 {
            let _ = f.run(&vec![0x45; n], n as u32);
        }
        assert_eq!(
            Filter::compile("", LinkType::ETHERNET, 96)
                .unwrap()
                .run(&[], 0),
            96
        );
        assert_eq!(Filter::reject_all(LinkType::ETHERNET).run(&[1, 2], 2), 0);
    }
}

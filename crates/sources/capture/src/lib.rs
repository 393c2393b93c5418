//! Live capture on Linux: AF_PACKET TPACKET_V3 rings with PACKET_FANOUT, classic BPF filters
//! compiled by libpcap, and an AF_PACKET replay sender.
//!
//! A [`LiveSource`] is a [`PacketSource`](netspectra_packet::PacketSource) whose batches are
//! TPACKET_V3 ring blocks (zero copy). [`open_fanout`] opens one per worker thread in one fanout
//! group (symmetric flow hash by default, so a flow never spans two workers). Raising the
//! [`StopHandle`] makes every source drain its ring and then return `Ok(false)`, like a file
//! that ended, so analyses run on a live interface exactly as on a file.
//!
//! ```no_run
//! use netspectra_capture::{open_fanout, LiveConfig, StopHandle};
//! use netspectra_packet::PacketSource;
//!
//! let stop = StopHandle::new();
//! stop.stop_on_signals()?; // SIGINT/SIGTERM end the capture cleanly
//! let mut cfg = LiveConfig::new("eth0");
//! cfg.threads = 2;
//! cfg.filter = Some("tcp port 80".into());
//! cfg.stop = stop.clone();
//! let sources = open_fanout(&cfg)?;
//! let handles: Vec<_> = sources.iter().map(|s| s.stats_handle()).collect();
//! std::thread::scope(|sc| {
//!     for mut src in sources {
//!         sc.spawn(move || {
//!             let _ = src.pin_current_thread();
//!             let mut n = 0u64;
//!             // Empty batches arrive on poll timeouts: run timers there.
//!             while src.next_batch(&mut |b| n += b.len() as u64)? {}
//!             Ok::<u64, netspectra_packet::SourceError>(n)
//!         });
//!     }
//! });
//! let total = netspectra_capture::group_stats(&handles);
//! println!("{} received, {} dropped", total.kernel_received, total.kernel_drops);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Offline, a [`Filter`] compiled for files selects packets of a file:
//! `Filter::compile("tcp port 80", LinkType::ETHERNET, 0)?.matches(&packet)`. Live sockets get
//! [`Filter::compile_live`]'s program (a libpcap handle activated on the interface), whose `vlan`
//! tests read the tag the kernel stripped into the packet's metadata, as tcpdump's do.

#![cfg(target_os = "linux")]

mod error;
mod filter;
mod live;
mod privs;
mod stop;
mod sys;
mod tx;

pub use error::CaptureError;
pub use filter::{
    FileFilter, Filter, LiveCompileError, DEFAULT_SNAPLEN, SKF_AD_OFF, SKF_AD_VLAN_TAG,
    SKF_AD_VLAN_TAG_PRESENT,
};
pub use live::{
    group_stats, open_fanout, open_live, FanoutMode, FilterHandle, LiveConfig, LiveSource,
    LiveStats, LiveStatsHandle,
};
pub use privs::{drop_privileges, give_to, user_ids};
pub use stop::StopHandle;
pub use sys::pin_current_thread;
pub use tx::{partition_by_flow, SendStats, Sender};

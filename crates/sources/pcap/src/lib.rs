//! Streaming pcap/pcapng reading and writing for NetSpectra.
//!
//! [`CaptureReader`] reads classic pcap (both byte orders, micro- and nanosecond, Kuznetsov's
//! modified format) and pcapng (several sections, per-interface link types and timestamp
//! resolution, enhanced/simple/obsolete packet blocks) from files, standard input or gzip
//! streams, in constant memory, and lends packets as zero-copy batches through the
//! [`netspectra_packet::PacketSource`] interface. [`PcapWriter`] and [`PcapngWriter`] write them
//! back at full timestamp resolution.

pub mod limits;
pub mod reader;
pub mod writer;

pub use reader::{CaptureReader, FileFormat, ReadWarning, DEFAULT_CHUNK};
pub use writer::{
    pcap_record_header, pcap_ts_fits, CaptureWriter, OutputFormat, PcapWriter, PcapngWriter,
    WriteError,
};

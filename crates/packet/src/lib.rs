//! Core packet types for NetSpectra: the batch-oriented source interface shared by capture files
//! and live rings, link types and timestamps, a zero-copy decoder that turns frame bytes into a
//! small [`PacketView`], and the flow keys (with Community ID) that the analyses aggregate on.
//!
//! This crate deliberately depends on nothing heavy: every other crate stands on it.

pub mod community_id;
pub mod decode;
pub mod flow_key;
pub mod icmp;
pub mod link;
pub mod source;
pub mod text;
pub mod time;

pub use community_id::{community_id_v1, push_community_id_v1};
pub use decode::{
    decode, decode_all, DecodeOptions, DecodeStatus, Decoded, Fragment, L3Proto, Layer, PacketView,
    TcpFlags, Tunnel,
};
pub use flow_key::{FlowKey, IpPair};
pub use icmp::{icmp_counterpart, icmp_role, IcmpRole};
pub use link::LinkType;
pub use source::{
    Batch, InterfaceInfo, OwnedBatch, Packet, PacketMeta, PacketSource, SourceError, SourceStats,
};
pub use time::{Every, Timestamp};

//! Zero-copy, allocation-free decoding of one captured frame into a [`PacketView`]: the layer
//! offsets and the flow 5-tuple, ready for the flow engine.
//!
//! The standard headers (IPv4, IPv6 and its extension headers, TCP, UDP) are read through
//! `etherparse`'s slicing parsers ([`ip`]); the layers around them are walked one header at a
//! time ([`link`]) with the header readers of [`encap`]: link types, stacked VLAN tags, MPLS,
//! PPPoE/PPP, LLC/SNAP, E-Tag, MACsec, NSH, and tunnels (GRE, ERSPAN, VXLAN, VXLAN-GPE,
//! GENEVE, MPLS over UDP, IP-in-IP, nested; [`tunnel`]). Decoding never fails: it stops at
//! the first layer it cannot read and says why in [`PacketView::status`].
//!
//! [`decode_all`] walks a frame once and returns both the outer view (the packet as it travels)
//! and, for a tunnelled packet, the innermost view; [`decode`] returns one of them.

pub mod encap;
mod ip;
mod link;
mod tunnel;
mod view;

pub use tunnel::MAX_TUNNEL_DEPTH;
pub use view::{
    ethertype, ip_proto, DecodeOptions, DecodeStatus, Fragment, L3Proto, Layer, PacketView,
    TcpFlags, Tunnel,
};

use crate::LinkType;
use tunnel::Pending;

/// State of one walk beside the view being filled.
struct Cx {
    /// Note tunnels (in `pending`) for an inner decode.
    tunnels: bool,
    /// The tunnel this level carries, if any.
    pending: Option<Pending>,
}

/// Both views of one frame, from one walk: what [`decode`] gives without and with
/// [`DecodeOptions::inner`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The packet as it travels: the outermost IP header and its transport (for a tunnelled
    /// packet, e.g. the VXLAN UDP datagram).
    pub outer: PacketView,
    /// The innermost packet of a decoded tunnel; `None` when there is no tunnel or nothing
    /// inside it reached an IP header.
    pub inner: Option<PacketView>,
}

impl Decoded {
    /// The innermost view: the tunnelled packet when there is one, else the outer view.
    #[inline]
    pub fn innermost(&self) -> &PacketView {
        self.inner.as_ref().unwrap_or(&self.outer)
    }

    /// The view an analysis asked for: the innermost one when `inner`, else the outer one.
    #[inline]
    pub fn view(&self, inner: bool) -> &PacketView {
        if inner {
            self.innermost()
        } else {
            &self.outer
        }
    }
}

/// Decodes one frame. `vlan_tci` is a tag the kernel stripped from the frame (live capture).
///
/// Never panics and never allocates, whatever the bytes.
pub fn decode(
    data: &[u8],
    link: LinkType,
    vlan_tci: Option<u16>,
    opts: &DecodeOptions,
) -> PacketView {
    let mut v = PacketView::default();
    if let Some(t) = outer(data, link, vlan_tci, &mut v, opts.inner) {
        if let Some(inner) = tunnel::inner(data, &v, t) {
            v = inner;
        }
    }
    v
}

/// Decodes one frame once for both views: `outer` equals [`decode`] without
/// [`DecodeOptions::inner`], and [`Decoded::view`]`(true)` equals it with. An untunnelled
/// frame costs what [`decode`] costs.
///
/// Never panics and never allocates, whatever the bytes.
pub fn decode_all(data: &[u8], link: LinkType, vlan_tci: Option<u16>) -> Decoded {
    // Built in place (the return slot): no view is copied.
    let mut d = Decoded {
        outer: PacketView::default(),
        inner: None,
    };
    if let Some(t) = outer(data, link, vlan_tci, &mut d.outer, true) {
        d.inner = tunnel::inner(data, &d.outer, t);
    }
    d
}

/// Walks a frame once into `v` (a default view): the outer view, and when `tunnels` the
/// tunnel it carries, not yet decoded. [`decode`] and [`decode_all`] share this path.
#[inline(always)]
fn outer(
    data: &[u8],
    link: LinkType,
    vlan_tci: Option<u16>,
    v: &mut PacketView,
    tunnels: bool,
) -> Option<Pending> {
    if let Some(tci) = vlan_tci {
        link::push_vlan(v, tci & 0x0fff);
    }
    let mut cx = Cx {
        tunnels,
        pending: None,
    };
    link::frame(data, link, v, &mut cx);
    cx.pending
}

#[cfg(test)]
mod encap_tests;
#[cfg(test)]
mod tests;

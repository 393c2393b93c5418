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

/// The view with a kernel-stripped VLAN tag already counted.
#[inline]
fn start(vlan_tci: Option<u16>) -> PacketView {
    let mut v = PacketView::default();
    if let Some(tci) = vlan_tci {
        link::push_vlan(&mut v, tci & 0x0fff);
    }
    v
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
    if opts.inner {
        return *decode_all(data, link, vlan_tci).innermost();
    }
    let mut v = start(vlan_tci);
    let mut cx = Cx {
        tunnels: false,
        pending: None,
    };
    link::frame(data, link, &mut v, &mut cx);
    v
}

/// Decodes one frame once for both views: `outer` equals [`decode`] without
/// [`DecodeOptions::inner`], and [`Decoded::view`]`(true)` equals it with. An untunnelled
/// frame costs what [`decode`] costs.
///
/// Never panics and never allocates, whatever the bytes.
pub fn decode_all(data: &[u8], link: LinkType, vlan_tci: Option<u16>) -> Decoded {
    let mut outer = start(vlan_tci);
    let mut cx = Cx {
        tunnels: true,
        pending: None,
    };
    link::frame(data, link, &mut outer, &mut cx);
    let inner = match cx.pending {
        Some(t) => tunnel::inner(data, &outer, t),
        None => None,
    };
    Decoded { outer, inner }
}

#[cfg(test)]
mod encap_tests;
#[cfg(test)]
mod tests;

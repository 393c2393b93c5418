//! The packets inside tunnels: once the outer walk has noted a tunnel (see [`ip`](super::ip)),
//! each level is decoded into a view of its own, up to [`MAX_TUNNEL_DEPTH`] levels; the
//! deepest level that reached an IP header is the inner view.

use super::encap::{self, TunnelHeader};
use super::view::PacketView;
use super::{link, Cx};

/// Tunnels decoded inside one another at most (e.g. GENEVE, then GRE, then ERSPAN, then
/// VXLAN); a tunnel deeper than this stays the payload of the level that carries it.
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// A tunnel noted during a walk: its header kind, where the header starts, and where the IP
/// packet carrying it ends (the inner decode reads no further).
#[derive(Clone, Copy, Debug)]
pub(super) struct Pending {
    pub header: TunnelHeader,
    pub at: usize,
    pub end: usize,
}

/// Decodes the packets inside the tunnel `first` (noted while decoding `outer`) and returns
/// the innermost one that has an IP layer, or `None` when no level reached one. Its
/// [`tunnel`](PacketView::tunnel) is the outermost tunnel's kind and its
/// [`outer_l3_offset`](PacketView::outer_l3_offset) the outer IP header's offset; its VLAN
/// fields continue the outer ones (tags inside the tunnel count after those outside).
// Kept out of line: untunnelled frames, the common case, never call it.
#[inline(never)]
pub(super) fn inner(data: &[u8], outer: &PacketView, first: Pending) -> Option<PacketView> {
    let mut best: Option<PacketView> = None;
    let mut pending = Some(first);
    let mut kind = None;
    for _ in 0..MAX_TUNNEL_DEPTH {
        let Some(t) = pending.take() else { break };
        let d = data.get(..t.end).unwrap_or(data);
        let Ok(ts) = encap::tunnel(d, t.at, t.header) else {
            break;
        };
        let kind = *kind.get_or_insert(ts.kind);
        let prev = best.as_ref().unwrap_or(outer);
        let mut v = PacketView {
            vlan: prev.vlan,
            inner_vlan: prev.inner_vlan,
            vlan_count: prev.vlan_count,
            ..PacketView::default()
        };
        let mut cx = Cx {
            tunnels: true,
            pending: None,
        };
        link::walk(d, t.at + ts.step.len, ts.step.next, &mut v, &mut cx);
        if v.ip.is_none() {
            break;
        }
        v.tunnel = kind;
        v.outer_l3_offset = outer.l3_offset;
        best = Some(v);
        pending = cx.pending;
    }
    best
}

//! One decode per packet, for analyses that key on the outer packet (flows by default) and
//! analyses that look inside tunnels (HTTP by default, flows with `--inner`).

use netspectra_packet::{decode, DecodeOptions, LinkType, PacketView};

/// Both readings of one frame: the outer packet, and the innermost one when a tunnel was
/// decoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The packet as seen on the wire, tunnels not entered.
    pub outer: PacketView,
    /// The innermost packet of a decoded tunnel; `None` without one.
    pub inner: Option<PacketView>,
}

impl Decoded {
    /// The innermost packet (the outer one without a tunnel).
    #[inline]
    pub fn innermost(&self) -> &PacketView {
        self.inner.as_ref().unwrap_or(&self.outer)
    }

    /// The view an analysis wants: inside tunnels (`inner`) or as on the wire.
    #[inline]
    pub fn view(&self, inner: bool) -> &PacketView {
        if inner {
            self.innermost()
        } else {
            &self.outer
        }
    }
}

/// Decodes a frame for analyses that want the outer view (`outer`), the inner one (`inner`),
/// or both. Tunnelled packets are the only ones walked twice.
#[inline]
pub fn decode_all(
    data: &[u8],
    link: LinkType,
    vlan_tci: Option<u16>,
    outer: bool,
    inner: bool,
) -> Decoded {
    let o = decode(data, link, vlan_tci, &DecodeOptions { inner: !outer });
    if outer && inner && could_tunnel(&o) {
        let i = decode(data, link, vlan_tci, &DecodeOptions { inner: true });
        let inner = (i != o).then_some(i);
        Decoded { outer: o, inner }
    } else {
        Decoded {
            outer: o,
            inner: None,
        }
    }
}

/// True when the outer packet may carry a tunnel the decoder enters (GRE, IP-in-IP, UDP to a
/// VXLAN or GENEVE port).
#[inline]
fn could_tunnel(v: &PacketView) -> bool {
    match v.proto {
        4 | 41 | 47 => true,
        17 => matches!(v.dst_port, 4789 | 6081),
        _ => false,
    }
}

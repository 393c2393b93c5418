//! Bounds on record sizes, matching Wireshark's per-link-type maxima so that what we reject as
//! corrupt is what tshark and capinfos reject.

use netspectra_packet::LinkType;

/// Largest captured length accepted for most link types (Wireshark's standard maximum).
pub const MAX_PACKET_STANDARD: u32 = 262_144;
/// Largest captured length for link types that legitimately carry huge records (USB, D-Bus).
pub const MAX_PACKET_LARGE: u32 = 128 << 20;

/// The largest captured length accepted for a link type.
pub fn max_caplen(link: LinkType) -> u32 {
    match link.0 {
        // D-Bus, USBPcap, Linux USB (mmapped), EBHSCR: Wireshark allows large records here.
        231 | 249 | 220 | 189 | 279 => MAX_PACKET_LARGE,
        _ => MAX_PACKET_STANDARD,
    }
}

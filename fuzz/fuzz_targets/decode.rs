//! Fuzzes the frame decoder: any bytes, any link type, with and without tunnel decoding. The
//! decoder must never panic, every offset it reports must stay inside the frame, and the
//! one-walk `decode_all` must give exactly what `decode` gives for each view.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_packet::{decode, decode_all, DecodeOptions, FlowKey, LinkType};

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    let link = LinkType(u16::from_le_bytes([data[0], data[1]]) % 300);
    let inner = data[2] & 1 == 1;
    let tci = (data[2] & 2 == 2).then_some(0x0123);
    let frame = &data[3..];
    let v = decode(frame, link, tci, &DecodeOptions { inner });
    assert!(v.payload_offset as usize + v.payload_len as usize <= frame.len());
    assert!(v.l4_offset as usize <= frame.len());
    let all = decode_all(frame, link, tci);
    assert_eq!(*all.view(inner), v);
    if let Some(k) = FlowKey::from_view(&v) {
        let _ = netspectra_packet::community_id_v1(&k, 0);
        assert_eq!(k.symmetric_hash(), k.reversed().symmetric_hash());
    }
});

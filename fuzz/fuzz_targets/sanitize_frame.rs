//! Fuzzes the sanitize frame walker: arbitrary frames of any supported link type go through
//! dedup, anonymize (with MAC mapping) and mask, then through the `--verify` inspector. Nothing
//! may panic and lengths never change.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_packet::{LinkType, Packet, Timestamp};
use netspectra_sanitize::{
    AnonPolicy, DedupConfig, Inspector, MaskConfig, SanitizeConfig, Sanitizer,
};

const LINKS: [LinkType; 9] = [
    LinkType::ETHERNET,
    LinkType::RAW,
    LinkType::IPV4,
    LinkType::IPV6,
    LinkType::NULL,
    LinkType::LOOP,
    LinkType::LINUX_SLL,
    LinkType::LINUX_SLL2,
    LinkType(147),
];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    let link = LINKS[sel as usize % LINKS.len()];
    let cfg = SanitizeConfig {
        dedup: Some(DedupConfig {
            capacity: 16,
            ..Default::default()
        }),
        anonymize: Some(AnonPolicy {
            mac: sel & 0x80 != 0,
            keep_private: sel & 0x40 != 0,
            ..Default::default()
        }),
        mask: Some(MaskConfig {
            keep_dns: sel & 0x20 != 0,
            max_flows: 4,
            ..Default::default()
        }),
    };
    let mut s = Sanitizer::new(&cfg, &[7u8; 32]);
    let mut ins = Inspector::new();
    // Feed the frame and its halves, so that stream state carries across segments.
    for part in [rest, &rest[..rest.len() / 2], &rest[rest.len() / 2..], rest] {
        let p = Packet {
            ts: Timestamp(0),
            orig_len: part.len() as u32,
            iface: 0,
            link,
            vlan_tci: None,
            data: part,
        };
        if let Some(out) = s.process(&p) {
            assert_eq!(out.len(), part.len());
            let out = out.to_vec();
            let q = Packet { data: &out, ..p };
            let _ = ins.inspect(&q);
        }
    }
});

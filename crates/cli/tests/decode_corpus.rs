//! `decode_all` over every frame of the real-capture corpora (../shared/corpus/tcpdump-tests and
//! ja4): its outer view equals `decode` without `inner`, its `view(true)` equals `decode`
//! with it, `inner` is set exactly when a tunnel was decoded, and both views stay inside the
//! frame. Also counts the frames whose innermost packet is in a tunnel, as a floor that fails
//! if tunnel decoding silently stops.

use netspectra_packet::{decode, decode_all, DecodeOptions, PacketSource, Tunnel};
use netspectra_pcap::CaptureReader;
use std::path::Path;

fn files(sub: &str) -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/corpus")
        .join(sub);
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file() && p.extension().is_none_or(|e| e != "md"));
    v.sort();
    v
}

#[test]
fn decode_all_agrees_with_decode_on_every_corpus_frame() {
    let (tcpdump, ja4) = (files("tcpdump-tests"), files("ja4"));
    if tcpdump.is_empty() || ja4.is_empty() {
        netspectra_testnet::skip(
            "decode corpus",
            "../shared/corpus/{tcpdump-tests,ja4} not present",
        );
        return;
    }
    let (mut frames, mut tunnelled) = (0u64, 0u64);
    for f in tcpdump.iter().chain(&ja4) {
        let Ok(mut r) = CaptureReader::open(f) else {
            continue;
        };
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        // A corrupt record ends the file's frames; what came before it is checked.
        while let Ok(true) = r.next_batch(&mut |b| {
            for p in b.iter() {
                frames += 1;
                let d = decode_all(p.data, p.link, p.vlan_tci);
                let outer = decode(p.data, p.link, p.vlan_tci, &DecodeOptions { inner: false });
                let inner = decode(p.data, p.link, p.vlan_tci, &DecodeOptions { inner: true });
                assert_eq!(d.outer, outer, "{name} frame {frames}");
                assert_eq!(*d.view(true), inner, "{name} frame {frames}");
                assert_eq!(
                    d.inner.is_some(),
                    inner.tunnel != Tunnel::None,
                    "{name} frame {frames}"
                );
                for v in [d.outer, inner] {
                    assert!(v.payload_offset as usize + v.payload_len as usize <= p.data.len());
                }
                tunnelled += d.inner.is_some() as u64;
            }
        }) {}
    }
    eprintln!("decode_all: {frames} corpus frames, {tunnelled} with a decoded tunnel");
    // GRE, ERSPAN, VXLAN, GENEVE, NSH, PIM and IP-in-IP captures of both corpora.
    assert!(
        tunnelled >= 300,
        "only {tunnelled} tunnelled frames decoded"
    );
}

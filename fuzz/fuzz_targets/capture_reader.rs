//! Fuzzes the streaming pcap/pcapng reader with arbitrary files, read through a small chunk
//! so that records straddle chunk boundaries. It must end with packets, a warning or an error
//! naming an offset — never a panic, a hang, or a record outside its buffer.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netspectra_packet::PacketSource;
use netspectra_pcap::CaptureReader;
use std::io::Cursor;

fuzz_target!(|data: &[u8]| {
    let Ok(r) = CaptureReader::from_reader("fuzz", Box::new(Cursor::new(data.to_vec())), None) else {
        return;
    };
    let mut r = r.with_chunk_size(4096);
    let mut packets = 0u64;
    loop {
        match r.next_batch(&mut |b| {
            for p in b.iter() {
                assert!(p.data.len() <= b.buffer().len());
                packets += 1;
            }
        }) {
            Ok(true) => {}
            Ok(false) | Err(_) => break,
        }
    }
    assert_eq!(packets, r.stats().packets);
});

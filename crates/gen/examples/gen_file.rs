//! Writes a generated capture and its truth without the CLI:
//! `cargo run --release -p netspectra-gen --example gen_file -- OUT.pcap PACKETS SEED [TRUTH.json]`.

use netspectra_gen::{generate, GenConfig};
use std::fs::File;
use std::io::BufWriter;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: gen_file OUT PACKETS SEED [TRUTH.json]");
        std::process::exit(2);
    }
    let cfg = GenConfig {
        packets: Some(args[2].parse().expect("PACKETS")),
        seed: args[3].parse().expect("SEED"),
        ..GenConfig::default()
    };
    let truth = generate(&cfg, File::create(&args[1]).expect("create OUT")).expect("generate");
    if let Some(p) = args.get(4) {
        let w = BufWriter::new(File::create(p).expect("create TRUTH"));
        serde_json::to_writer_pretty(w, &truth).expect("write truth");
    }
    println!("{} packets, {} bytes", truth.packets, truth.bytes);
}

//! `sanitize` writes byte for byte what it wrote before its run machinery moved from the CLI into
//! `netspectra_pipeline::sanitize` (issue 18): SHA-256 of the sanitized captures (and of the
//! JSON report's counters) of the bundled sample and of generated captures, for fixed keys and
//! options, on every path (single thread, pipelined with the raw `writev` writer, standard
//! output, directory mode).
//!
//! The golden hashes were produced by the binary built from commit 34b5397 (the last commit with
//! the pipeline inside `crates/cli/src/sanitize.rs`):
//!
//! ```text
//! git worktree add /work/wt-frontends-base 34b5397
//! (cd /work/wt-frontends-base && cargo build --release -p netspectra)
//! NETSPECTRA_GOLDEN_BIN=/work/wt-frontends-base/target/release/netspectra \
//!     cargo test -p netspectra --test sanitize_golden -- --nocapture
//! ```
//!
//! which runs this same test against that binary (generator included) and prints every hash
//! (`--nocapture`); it passed with the hashes below. Without the variable the test runs the
//! binary under test. The generated inputs are pinned too, so a change in the generator is
//! reported as such and not as a change of `sanitize`.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

/// The key every keyed case uses (hex, 16 AES key bytes + 16 pad bytes).
const KEY_HEX: &str = "00112233445566778899aabbccddeeff0123456789abcdeffedcba9876543210";

/// SHA-256 of the bundled sample the goldens were taken from.
const SAMPLE: &str = "292dfb41e1d2d26843e11e7e1f5033cf0a612d241c73a872aa0ef3c5426a4b57";

/// Generated inputs: name, `gen` arguments, SHA-256 of the file `gen` writes.
const INPUTS: &[(&str, &[&str], &str)] = &[
    (
        "gen-ns.pcap",
        &["--packets", "30000", "--seed", "7", "--format", "pcap"],
        "52e24541f7ae6b4d37588149ef02a967074e9eeeefcbf978230b9090df84b528",
    ),
    (
        "gen-us.pcap",
        &[
            "--packets",
            "8000",
            "--seed",
            "5",
            "--format",
            "pcap-us",
            "--dup",
            "0.05",
        ],
        "a994b231c2d98a3c23a4c38a5f5c10b843bd06d33573675af9b16f28f4e54f68",
    ),
    (
        "gen.pcapng",
        &[
            "--packets",
            "8000",
            "--seed",
            "3",
            "--format",
            "pcapng",
            "--dup",
            "0.05",
        ],
        "dae20c44554c8a0111de9bba966fb68f8058e65291e0dbbde80b9743e300e54b",
    ),
];

/// Cases: name, input, `--threads`, further arguments, SHA-256 of the output and of the
/// report's counters. `KEY` in the arguments stands for the key file.
type Case = (
    &'static str,
    &'static str,
    &'static str,
    &'static [&'static str],
    &'static str,
    &'static str,
);

const CASES: &[Case] = &[
    (
        "sample-all-1",
        "sample.pcapng",
        "1",
        &["--key-file", "KEY"],
        "23f2dfd8ccb6d981bdbb9671cc5ed537c4fe18cd05a98469c71ed97bfac62de4",
        "e9760beced31fcb7cc8a0e4c275a2ea0f917cc6e2b3fd2c74389fdba8c22c38f",
    ),
    (
        "sample-all-2",
        "sample.pcapng",
        "2",
        &["--key-file", "KEY"],
        "23f2dfd8ccb6d981bdbb9671cc5ed537c4fe18cd05a98469c71ed97bfac62de4",
        "e9760beced31fcb7cc8a0e4c275a2ea0f917cc6e2b3fd2c74389fdba8c22c38f",
    ),
    (
        "sample-to-pcap",
        "sample.pcapng",
        "2",
        &["--passphrase", "golden", "--format", "pcap"],
        "8e41867a1712c5a3de197e851e5a17d6375dfc2cad1c3b07781db63c22a0e3d7",
        "e9760beced31fcb7cc8a0e4c275a2ea0f917cc6e2b3fd2c74389fdba8c22c38f",
    ),
    (
        "sample-anon-mac",
        "sample.pcapng",
        "1",
        &[
            "--anonymize",
            "--anonymize-mac",
            "--keep",
            "none",
            "--key-file",
            "KEY",
        ],
        "f8e404e14071917db4094e8ee82368e66fa18e567f8b1f0e2447e025352d1ba0",
        "badb38d73298cc6398f07ec141fe46443118fee1e1ae51730280c61dc496c569",
    ),
    (
        "sample-mask",
        "sample.pcapng",
        "1",
        &[
            "--mask",
            "--keep-dns",
            "--keep-bytes",
            "16",
            "--secret-headers",
            "cookie,x-token",
        ],
        "c4731c7934c0ce6af7cb5607d3c895a47048a5ac21de49d3e09d2bea895ba4a6",
        "ff348b2b45f7d5a5f351b155e639168e894c3e9c4a8e7aaa9e1504c833b93055",
    ),
    (
        "ns-all-1",
        "gen-ns.pcap",
        "1",
        &["--key-file", "KEY"],
        "090f130136753ac4f8e964a453c1c5d75827a4091555200eba1599bb615614c1",
        "001a39d2d9f4b2a0c5e56bf59c893304da89df9b4bd3a64f70f30b28500d7b46",
    ),
    (
        "ns-all-2",
        "gen-ns.pcap",
        "2",
        &["--key-file", "KEY"],
        "090f130136753ac4f8e964a453c1c5d75827a4091555200eba1599bb615614c1",
        "001a39d2d9f4b2a0c5e56bf59c893304da89df9b4bd3a64f70f30b28500d7b46",
    ),
    (
        "ns-dedup-window",
        "gen-ns.pcap",
        "2",
        &["--dedup", "--dedup-window", "50"],
        "9329616f9b94a6e15716b3f9a335228cc5455b2b8536514718e4ceee72a81add",
        "68885d700a9c99494104c2cb8c0380e9ad8974d704c0c04149be98ec97ad8e62",
    ),
    (
        "ns-to-pcapng",
        "gen-ns.pcap",
        "2",
        &["--key-file", "KEY", "--format", "pcapng"],
        "545f689d3fad566e146a84980be77fe14379feb8afaa15fcaeede7b54cb2d714",
        "001a39d2d9f4b2a0c5e56bf59c893304da89df9b4bd3a64f70f30b28500d7b46",
    ),
    (
        "us-all-1",
        "gen-us.pcap",
        "1",
        &["--key-file", "KEY"],
        "3c830d008f9571b554e19e134022bd9ae7973c20ebad3b2e246540154594ad2c",
        "50f7451a4bb1ad927a68e828c0a359c9575b48c747d7ea71cbdb8688aae46340",
    ),
    (
        "us-all-2",
        "gen-us.pcap",
        "2",
        &["--key-file", "KEY"],
        "3c830d008f9571b554e19e134022bd9ae7973c20ebad3b2e246540154594ad2c",
        "50f7451a4bb1ad927a68e828c0a359c9575b48c747d7ea71cbdb8688aae46340",
    ),
    (
        "us-dedup-time",
        "gen-us.pcap",
        "2",
        &["--dedup", "--dedup-time", "0.0005"],
        "fa732417d3ecb7c00993f2908b7aac93d9cb1473fe7973bcf340fe58bd238a8c",
        "6179f5a172d0748154c98683d5a24d6189dabe793f87883bb0bb8e91ea077281",
    ),
    (
        "ng-all-1",
        "gen.pcapng",
        "1",
        &["--key-file", "KEY"],
        "53aed42029a5b99e8019a31a558f183737bba171e38738f950e328c097efe316",
        "118ae609bf9df24c6385846ee495efd4c16bafaf2b1b4fffc5d6d0c9a0a7a7d1",
    ),
    (
        "ng-all-2",
        "gen.pcapng",
        "2",
        &["--key-file", "KEY"],
        "53aed42029a5b99e8019a31a558f183737bba171e38738f950e328c097efe316",
        "118ae609bf9df24c6385846ee495efd4c16bafaf2b1b4fffc5d6d0c9a0a7a7d1",
    ),
    (
        "ng-truncate",
        "gen.pcapng",
        "2",
        &[
            "--anonymize",
            "--truncate-v4",
            "24",
            "--truncate-v6",
            "56",
            "--keep",
            "private",
            "--key-file",
            "KEY",
        ],
        "6a199db9f6cb21364ee03b735532f72faac4d49a1a362fcc17479210765799ae",
        "741df71573583c13a7879f79b145bf4b2820083c48be50ca4ee897521a0783f9",
    ),
    (
        "ng-to-pcap",
        "gen.pcapng",
        "1",
        &["--key-file", "KEY", "--format", "pcap"],
        "144ecec857cdfe006f4e5cef78dcf620505d8e8097af030714846b9b03f0ff3b",
        "118ae609bf9df24c6385846ee495efd4c16bafaf2b1b4fffc5d6d0c9a0a7a7d1",
    ),
];

/// Standard output (`-o -`), pipelined: input, SHA-256 of what was written.
const STDOUT_CASE: (&str, &str) = (
    "gen-us.pcap",
    "3c830d008f9571b554e19e134022bd9ae7973c20ebad3b2e246540154594ad2c",
);

/// Directory mode over the sample and two generated captures, two files at a time: output
/// name and SHA-256.
const DIR_CASE: &[(&str, &str)] = &[
    (
        "gen-ns.pcap",
        "090f130136753ac4f8e964a453c1c5d75827a4091555200eba1599bb615614c1",
    ),
    (
        "gen-us.pcap",
        "3c830d008f9571b554e19e134022bd9ae7973c20ebad3b2e246540154594ad2c",
    ),
    (
        "sample.pcapng",
        "23f2dfd8ccb6d981bdbb9671cc5ed537c4fe18cd05a98469c71ed97bfac62de4",
    ),
];

/// The binary under test, or the one named by `NETSPECTRA_GOLDEN_BIN` (recording goldens).
fn binary() -> PathBuf {
    std::env::var_os("NETSPECTRA_GOLDEN_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(common::BIN))
}

fn sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn sha256_file(p: &Path) -> String {
    sha256(&std::fs::read(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

/// Compares a hash with its golden value, collecting mismatches (all are reported at once, so
/// that one run shows every hash).
fn check(failures: &mut Vec<String>, what: &str, got: &str, want: &str) {
    println!("{what}: {got}");
    if got != want {
        failures.push(format!("{what}: got {got}, golden {want}"));
    }
}

#[test]
fn sanitized_outputs_match_the_pre_move_binary() {
    let bin = binary();
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let key = dir.join("key.hex");
    std::fs::write(&key, KEY_HEX).unwrap();
    let inputs = dir.join("in");
    std::fs::create_dir(&inputs).unwrap();
    let sample = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples/sample.pcapng");
    std::fs::copy(&sample, inputs.join("sample.pcapng")).unwrap();
    let mut failures = Vec::new();
    check(
        &mut failures,
        "input sample.pcapng",
        &sha256_file(&sample),
        SAMPLE,
    );
    for (name, args, want) in INPUTS {
        let p = inputs.join(name);
        common::run(Command::new(&bin).args(["gen", "-o"]).arg(&p).args(*args));
        check(
            &mut failures,
            &format!("input {name}"),
            &sha256_file(&p),
            want,
        );
    }
    assert!(
        failures.is_empty(),
        "an input changed (the generator's output or the bundled sample), so these goldens no \
         longer apply (record them \
         again as the module documentation says):\n{}",
        failures.join("\n")
    );

    for (name, input, threads, args, want_out, want_rep) in CASES {
        let out = dir.join(format!("{name}.out"));
        let args: Vec<&str> = args
            .iter()
            .map(|a| {
                if *a == "KEY" {
                    key.to_str().unwrap()
                } else {
                    a
                }
            })
            .collect();
        let o = common::run(
            Command::new(&bin)
                .arg("sanitize")
                .arg(inputs.join(input))
                .arg("-o")
                .arg(&out)
                .args(["--threads", threads, "--json"])
                .args(&args),
        );
        let rep: Value = serde_json::from_slice(&o.stdout).expect("JSON report");
        assert_eq!(rep["complete"], true, "{name}");
        check(&mut failures, name, &sha256_file(&out), want_out);
        let counters = serde_json::to_string(&rep["report"]).unwrap();
        check(
            &mut failures,
            &format!("{name} report"),
            &sha256(counters.as_bytes()),
            want_rep,
        );
    }

    let (input, want) = STDOUT_CASE;
    let o = common::run(
        Command::new(&bin)
            .arg("sanitize")
            .arg(inputs.join(input))
            .args(["-o", "-", "--threads", "2", "--key-file"])
            .arg(&key),
    );
    check(&mut failures, "stdout", &sha256(&o.stdout), want);

    let outdir = dir.join("out");
    common::run(
        Command::new(&bin)
            .arg("sanitize")
            .arg(&inputs)
            .arg("-o")
            .arg(&outdir)
            .args(["--threads", "2", "-q", "--key-file"])
            .arg(&key),
    );
    for (name, want) in DIR_CASE {
        check(
            &mut failures,
            &format!("dir {name}"),
            &sha256_file(&outdir.join(name)),
            want,
        );
    }
    assert!(
        failures.is_empty(),
        "sanitize output differs from the pre-move binary's:\n{}",
        failures.join("\n")
    );
}

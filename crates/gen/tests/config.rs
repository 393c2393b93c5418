//! Generator settings out of their bounds: a YAML config's error names the key path and the
//! line (never a serde-internal name), settings built in code are refused naming the field.

use netspectra_gen::{generate_to_vec, GenConfig, GenError};

/// The error of a YAML config, which must be refused.
fn yaml_err(y: &str) -> String {
    match serde_yaml::from_str::<GenConfig>(y) {
        Ok(c) => panic!("accepted {y:?}: {c:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `y` is refused with a message starting with `key: ` and naming `line`.
fn names(y: &str, key: &str, line: u32) {
    let e = yaml_err(y);
    assert!(
        e.starts_with(&format!("{key}: ")) && e.contains(&format!(" at line {line} ")),
        "{y:?}: {e}"
    );
    assert!(!e.contains("untagged") && !e.contains("--"), "{y:?}: {e}");
}

#[test]
fn yaml_settings_out_of_bounds_name_key_and_line() {
    names("seed: 3\ndup_share: 2\n", "dup_share", 2);
    names("vlan_share: 1.5\n", "vlan_share", 1);
    names("rst_share: -0.1\n", "rst_share", 1);
    names("concurrency: 0\n", "concurrency", 1);
    names("concurrency: 99999999999\n", "concurrency", 1);
    names("packets_per_sec: 0.001\n", "packets_per_sec", 1);
    names("max_body: 10\n", "max_body", 1);
    names("max_body: 99999999999999\n", "max_body", 1);
    names("start_time_ns: -1\n", "start_time_ns", 1);
    names("packets: 0\n", "packets", 1);
    names("mix:\n  dns: 1\n  http: -1\n", "mix.http", 3);
    names("mix:\n  http: .nan\n", "mix.http", 2);
    // The sum is checked at the mix mapping itself.
    let e =
        yaml_err("seed: 1\nmix: {http: 0, tls: 0, bulk: 0, dns: 0, icmp_echo: 0, icmp_error: 0}\n");
    assert!(
        e.starts_with("mix: the weights must have a positive sum") && e.contains("line 2"),
        "{e}"
    );
    // Within the bounds, the values are taken.
    let c: GenConfig =
        serde_yaml::from_str("dup_share: 0\nconcurrency: 1000000\nmix: {icmp_echo: 1}\n").unwrap();
    assert_eq!(
        (c.dup_share, c.concurrency, c.mix.icmp_echo),
        (0.0, 1_000_000, 1.0)
    );
}

#[test]
fn settings_built_in_code_are_refused_naming_the_field() {
    for (cfg, field) in [
        (
            GenConfig {
                dup_share: 2.0,
                ..GenConfig::default()
            },
            "dup_share",
        ),
        (
            GenConfig {
                packets_per_sec: f64::NAN,
                ..GenConfig::default()
            },
            "packets_per_sec",
        ),
        (
            GenConfig {
                concurrency: 0,
                ..GenConfig::default()
            },
            "concurrency",
        ),
        (
            GenConfig {
                packets: Some(0),
                ..GenConfig::default()
            },
            "packets",
        ),
    ] {
        match generate_to_vec(&cfg) {
            Err(GenError::Config(m)) => assert!(m.starts_with(&format!("{field}: ")), "{m}"),
            other => panic!("{field}: {:?}", other.map(|(_, t)| t.packets)),
        }
    }
}

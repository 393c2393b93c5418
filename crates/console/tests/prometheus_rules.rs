//! deploy/prometheus: the alerting rules load (`promtool check rules`) and fire as their unit
//! tests expect (`promtool test rules`); the scrape configuration loads (`promtool check config`).

use std::path::Path;
use std::process::Command;

fn promtool(args: &[&str]) -> Option<(bool, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/prometheus");
    let o = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .ok()?;
    Some((
        o.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        ),
    ))
}

#[test]
fn the_rules_load_and_fire_as_their_tests_expect() {
    let Some((ok, out)) = promtool(&["check", "rules", "netspectra-rules.yml"]) else {
        netspectra_testnet::skip(
            "prometheus rules",
            "promtool not installed (scripts/setup.sh)",
        );
        return;
    };
    assert!(ok, "{out}");
    assert!(out.contains("8 rules found"), "{out}");
    let (ok, out) = promtool(&["test", "rules", "netspectra-rules.test.yml"]).unwrap();
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]).unwrap();
    assert!(ok, "{out}");
}

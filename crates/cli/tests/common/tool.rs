//! Whether an oracle tool (tshark, capinfos, editcap, nfcapd, ...) is installed, for the tests
//! that compare with it.

use std::process::{Command, Stdio};

/// True when `tool FLAG` runs and exits 0, where FLAG asks for the version (`-v` for
/// Wireshark's tools, `-V` for nfdump's, whose `-v` means something else). Otherwise prints a
/// SKIP line naming the tool, so that a comparison left out is visible in the test log.
pub fn have(tool: &str, version_flag: &str) -> bool {
    let ok = Command::new(tool)
        .arg(version_flag)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        netspectra_testnet::skip(
            tool,
            "not installed (scripts/setup.sh installs it); comparisons with it are left out",
        );
    }
    ok
}

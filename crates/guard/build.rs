//! Builds the guard's BPF object with clang and generates Rust constants and layout facts from the
//! shared C header (bpf/guard_shared.h), so both sides agree by construction and by test.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const CLANG_INCLUDE: &str = "-I/usr/include/x86_64-linux-gnu";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let bpf_dir = manifest.join("bpf");
    let header = bpf_dir.join("guard_shared.h");
    let source = bpf_dir.join("guard.bpf.c");
    println!("cargo:rerun-if-changed={}", header.display());
    println!("cargo:rerun-if-changed={}", source.display());
    println!("cargo:rerun-if-env-changed=CLANG");
    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());

    // 1. The BPF object.
    let obj = out.join("guard.bpf.o");
    run(Command::new(&clang)
        .args([
            "-O2",
            "-g",
            "-target",
            "bpf",
            CLANG_INCLUDE,
            "-Wall",
            "-Werror",
            "-c",
        ])
        .arg(&source)
        .arg("-o")
        .arg(&obj));

    // 2. A host probe that prints every constant and struct layout of the shared header.
    let text = fs::read_to_string(&header).expect("read guard_shared.h");
    let probe_c = out.join("layout_probe.c");
    fs::write(&probe_c, probe_source(&header, &text)).expect("write probe");
    let probe_bin = out.join("layout_probe");
    run(Command::new(&clang)
        .arg(CLANG_INCLUDE)
        .arg(&probe_c)
        .arg("-o")
        .arg(&probe_bin));
    let output = Command::new(&probe_bin).output().expect("run layout probe");
    assert!(output.status.success(), "layout probe failed");
    fs::write(out.join("guard_layout.rs"), output.stdout).expect("write guard_layout.rs");
}

fn run(cmd: &mut Command) {
    let status = cmd
        .status()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e} (install clang: scripts/setup.sh)"));
    assert!(status.success(), "command failed: {cmd:?}");
}

/// Generates C that prints `pub const` lines for the header's #defines and struct layouts.
fn probe_source(header: &Path, text: &str) -> String {
    let mut c = String::new();
    c.push_str("#include <stdio.h>\n#include <stddef.h>\n");
    c.push_str(&format!("#include \"{}\"\n", header.display()));
    c.push_str("int main(void) {\n");
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() != Some("#define") {
            continue;
        }
        let (Some(name), Some(_)) = (it.next(), it.next()) else {
            continue;
        };
        if name.ends_with("_H") || name.contains('(') {
            continue;
        }
        c.push_str(&format!(
            "  printf(\"/// `{name}` from guard_shared.h.\\npub const {name}: u64 = %llu;\\n\", (unsigned long long)({name}));\n"
        ));
    }
    let mut current: Option<String> = None;
    for line in text.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("struct ") {
            if let Some(name) = rest.strip_suffix(" {") {
                current = Some(name.to_string());
                let up = name.to_uppercase();
                c.push_str(&format!(
                    "  printf(\"/// sizeof(struct {name}) in C.\\npub const SIZEOF_{up}: usize = %zu;\\n\", sizeof(struct {name}));\n"
                ));
                continue;
            }
        }
        if t.starts_with("};") {
            current = None;
            continue;
        }
        if let Some(s) = &current {
            let decl = t.split(';').next().unwrap_or("");
            if decl.is_empty() || decl.starts_with("/*") || decl.starts_with('*') {
                continue;
            }
            let field = decl.split_whitespace().last().unwrap_or("");
            let field = field.split('[').next().unwrap_or("");
            if field.is_empty() {
                continue;
            }
            let (su, fu) = (s.to_uppercase(), field.to_uppercase());
            c.push_str(&format!(
                "  printf(\"/// offsetof(struct {s}, {field}) in C.\\npub const OFFSETOF_{su}_{fu}: usize = %zu;\\n\", offsetof(struct {s}, {field}));\n"
            ));
        }
    }
    c.push_str("  return 0;\n}\n");
    c
}

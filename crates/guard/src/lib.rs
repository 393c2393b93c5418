//! eBPF micro-segmentation guard: policy model and compiler, aya loader, events; the C BPF program
//! lives in bpf/ (compiled by build.rs with clang, embedded with `include_bytes!`).

pub mod abi;
pub mod compile;
pub mod events;
pub mod frames;
pub mod loader;
pub mod policy;
pub mod run;
pub mod sys;

pub use compile::{compile, Compiled};
pub use loader::{
    check_capabilities, ensure_bpffs, pin_dir, Counters, Guard, Hook, Maps, PIN_ROOT,
};
pub use policy::{Action, Cidr, FlowTuple, OnFull, Policy, Rule, Verdict};
pub use run::{PolicySource, RunConfig, Running};

/// Errors of the guard library.
#[derive(Debug, thiserror::Error)]
pub enum GuardError {
    /// The policy file is invalid (message names the key and, for syntax errors, the line).
    #[error("invalid policy: {0}")]
    Policy(String),
    /// The policy is valid but does not fit the BPF limits.
    #[error("cannot compile policy: {0}")]
    Compile(String),
    /// Missing Linux capabilities.
    #[error("missing capability {0}: run as root or grant cap_bpf,cap_net_admin,cap_perfmon (e.g. setcap cap_bpf,cap_net_admin,cap_perfmon+ep netspectra)")]
    Capability(String),
    /// No running guard found for the interface.
    #[error("no running guard found (no pinned maps in {0}); start one with `netspectra guard run -i IFACE --policy FILE`")]
    NotRunning(String),
    /// A run setting (interface, hooks, session capacity) is invalid; the message names the key.
    #[error("invalid guard setting: {0}")]
    Config(String),
    /// The interface to attach to does not exist (in this network namespace).
    #[error("interface '{0}' does not exist")]
    NoInterface(String),
    /// A BPF load/attach/map operation failed.
    #[error("bpf: {0}")]
    Bpf(String),
    /// An I/O or syscall error.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

#[cfg(test)]
mod bpf_tests;

/// True when running as root (privileged tests skip otherwise).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

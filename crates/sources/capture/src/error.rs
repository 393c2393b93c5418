//! Errors of live capture, filters and replay.

use netspectra_packet::SourceError;
use std::io;

/// What can go wrong while opening, configuring or driving a live socket.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// The process lacks CAP_NET_RAW (or CAP_NET_ADMIN for promiscuous mode).
    #[error(
        "{op} on interface {iface:?}: permission denied: live capture and replay need the \
         CAP_NET_RAW capability (and CAP_NET_ADMIN for promiscuous mode); run as root or grant \
         them once with `sudo setcap cap_net_raw,cap_net_admin=eip {exe}`"
    )]
    Permission {
        /// What was being done (`socket(AF_PACKET)`, `promiscuous mode`, ...).
        op: &'static str,
        /// The interface.
        iface: String,
        /// The running executable, for the `setcap` hint.
        exe: String,
    },
    /// The interface does not exist (in this network namespace).
    #[error("no such network interface: {0:?} (see `ip link`)")]
    NoSuchInterface(String),
    /// The interface's hardware type has no link type this crate can capture raw.
    #[error("interface {iface:?}: unsupported hardware type ARPHRD {hw}")]
    UnsupportedLink {
        /// The interface.
        iface: String,
        /// Its ARPHRD_ type.
        hw: u16,
    },
    /// A tcpdump filter expression did not compile or the program is invalid.
    #[error("bad filter expression {expr:?}: {reason}")]
    Filter {
        /// The expression.
        expr: String,
        /// libpcap's message, or what is wrong with the program.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid live-capture configuration: {0}")]
    Config(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, naming the interface.
        context: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

impl CaptureError {
    /// Builds an [`CaptureError::Io`] from the last OS error, or a [`CaptureError::Permission`]
    /// when the OS said EPERM/EACCES.
    pub(crate) fn last_os(op: &'static str, iface: &str) -> Self {
        Self::from_io(op, iface, io::Error::last_os_error())
    }

    /// Like [`CaptureError::last_os`] for a given error.
    pub(crate) fn from_io(op: &'static str, iface: &str, e: io::Error) -> Self {
        match e.raw_os_error() {
            Some(libc::EPERM) | Some(libc::EACCES) => CaptureError::Permission {
                op,
                iface: iface.to_string(),
                exe: std::env::current_exe()
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| "/path/to/netspectra".into()),
            },
            Some(libc::ENODEV) | Some(libc::ENXIO) => CaptureError::NoSuchInterface(iface.into()),
            _ => CaptureError::Io {
                context: format!("{op} on interface {iface:?}"),
                source: e,
            },
        }
    }
}

impl From<CaptureError> for SourceError {
    fn from(e: CaptureError) -> Self {
        match e {
            CaptureError::Permission { .. } => SourceError::Permission(e.to_string()),
            CaptureError::Io { context, source } => SourceError::Io { context, source },
            other => SourceError::Other(other.to_string()),
        }
    }
}

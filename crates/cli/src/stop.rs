//! One stop rule for every command: SIGINT or SIGTERM raises a flag that every loop checks (a
//! second signal ends the process at once), and a run over files that a signal cut short ends
//! with [`Interrupted`] (exit status 128 + the signal's number, 130 for Ctrl-C) after its
//! outputs were finished as partial results. Live runs end by a signal as their normal end.

use anyhow::{Context, Result};
use netspectra_capture::StopHandle;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// The stop flag of a run and the signal that raised it.
#[derive(Clone, Default)]
pub struct Stop {
    handle: StopHandle,
    signal: Arc<AtomicUsize>,
}

impl Stop {
    /// A lowered flag, with no handlers yet: until [`Stop::arm`], a signal has its default
    /// action (ending the process), which is the right answer while nothing has been written,
    /// e.g. during a long filter compilation.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Installs the SIGINT/SIGTERM handlers that raise the flag (a second signal ends the
    /// process at once). Call it once the run is about to start.
    pub fn arm(&self) -> Result<()> {
        for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register_usize(sig, Arc::clone(&self.signal), sig as usize)
                .context("installing signal handlers")?;
        }
        self.handle
            .stop_on_signals()
            .context("installing signal handlers")
    }

    /// [`Stop::new`] and [`Stop::arm`] in one.
    pub fn install() -> Result<Stop> {
        let s = Stop::new();
        s.arm()?;
        Ok(s)
    }

    /// The flag as the capture sources take it.
    pub fn handle(&self) -> &StopHandle {
        &self.handle
    }

    /// The signal that stopped the run, if one did.
    pub fn signal(&self) -> Option<i32> {
        match self.signal.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// The error that ends a file run a signal cut short; `detail` says where the output is.
    pub fn interrupted(&self, detail: impl Into<String>) -> Interrupted {
        Interrupted {
            signal: self.signal().unwrap_or(signal_hook::consts::SIGINT),
            detail: detail.into(),
        }
    }
}

/// A run over files ended early by a signal: everything read until then was processed and its
/// outputs kept as partial results (named in `detail`).
#[derive(Debug, thiserror::Error)]
#[error("interrupted by {}; {detail}", signal_name(*.signal))]
pub struct Interrupted {
    /// The signal number.
    pub signal: i32,
    /// What was done with the output.
    pub detail: String,
}

impl Interrupted {
    /// The exit status: 128 + the signal number, as shells report a process a signal ended.
    pub fn exit_code(&self) -> u8 {
        (128 + self.signal.clamp(1, 127)) as u8
    }
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

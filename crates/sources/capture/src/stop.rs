//! A shared stop flag, optionally raised by SIGINT/SIGTERM.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cloneable stop flag. Live sources check it at every `next_batch`: once raised they drain
/// their rings and then report end of input (`Ok(false)`), exactly like a file that ended.
#[derive(Clone, Debug, Default)]
pub struct StopHandle(Arc<AtomicBool>);

impl StopHandle {
    /// A new, lowered flag.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the flag (idempotent, callable from any thread).
    pub fn stop(&self) {
        self.0.store(true, Ordering::Release);
    }

    /// The shared flag, for readers that check it on their own threads.
    pub fn shared(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.0)
    }

    /// The flag itself, for loops that take a plain `&AtomicBool` (the engine's file runs).
    pub fn flag(&self) -> &AtomicBool {
        &self.0
    }

    /// True once the flag was raised.
    #[inline]
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// Raises the flag on SIGINT and SIGTERM. A second signal of either kind while the flag is
    /// already up terminates the process at once (exit status 1), for a stuck shutdown.
    pub fn stop_on_signals(&self) -> io::Result<()> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for sig in [SIGINT, SIGTERM] {
            signal_hook::flag::register_conditional_shutdown(sig, 1, Arc::clone(&self.0))?;
            signal_hook::flag::register(sig, Arc::clone(&self.0))?;
        }
        Ok(())
    }
}

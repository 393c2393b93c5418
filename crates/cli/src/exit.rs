//! Maps command results to process exit codes and prints errors the way users expect.

use netspectra_packet::SourceError;
use std::process::ExitCode;

/// An error caused by the user's input (bad file, bad config, bad arguments): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// True when the error (or any cause in its chain) is bad input rather than a runtime failure.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<BadInput>().is_some()
            || matches!(
                e.downcast_ref::<SourceError>(),
                Some(SourceError::Format { .. } | SourceError::Corrupt { .. })
            )
    })
}

/// Prints an error chain on stderr and picks the exit code.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("netspectra: error: {err:#}");
            if is_bad_input(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

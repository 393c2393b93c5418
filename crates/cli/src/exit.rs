//! Maps command results to process exit codes and prints errors the way users expect.

use netspectra_packet::SourceError;
use std::process::ExitCode;

/// An error caused by the user's input (bad file, bad config, bad arguments): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// True when a source error is the user's input (unreadable, missing or corrupt file) rather
/// than a failure of the machine.
pub fn is_bad_source(e: &SourceError) -> bool {
    match e {
        SourceError::Format { .. } | SourceError::Corrupt { .. } => true,
        SourceError::Io { source, .. } => matches!(
            source.kind(),
            std::io::ErrorKind::NotFound
                | std::io::ErrorKind::PermissionDenied
                | std::io::ErrorKind::IsADirectory
        ),
        _ => false,
    }
}

/// True when the error (or any cause in its chain) is bad input rather than a runtime failure.
pub fn is_bad_input(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<BadInput>().is_some()
            || e.downcast_ref::<SourceError>().is_some_and(is_bad_source)
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

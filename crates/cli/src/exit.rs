//! Maps command results to process exit codes and prints errors the way users expect.

use netspectra_packet::SourceError;
use std::process::ExitCode;

/// An error caused by the user's input (bad file, bad config, bad arguments): exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

/// Fails a run that stopped on an input error: first says where the output of the packets read
/// before the error was kept (`what`: "records", "flow records"), then returns the error in the
/// context of the input it is about (the interface, or the file).
pub fn input_failure(
    e: SourceError,
    input: Option<&std::path::Path>,
    interface: Option<&str>,
    kept_partial: Option<&std::path::Path>,
    what: &str,
) -> anyhow::Error {
    if let Some(p) = kept_partial {
        eprintln!(
            "netspectra: note: the {what} of the packets before the error are in {}",
            p.display()
        );
    }
    let context = match (input, interface) {
        (_, Some(i)) => format!("capturing on {i}"),
        (Some(f), None) => format!("reading {}", f.display()),
        _ => "reading".to_string(),
    };
    anyhow::Error::new(e).context(context)
}

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

/// The error and its causes joined with ": ", leaving out a cause whose text the message already
/// ends with (library errors often print their source as part of their own message).
pub fn message(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if msg.is_empty() {
            msg = text;
        } else if !msg.ends_with(&text) {
            msg.push_str(": ");
            msg.push_str(&text);
        }
    }
    msg
}

/// Prints an error chain on stderr and picks the exit code: 2 for bad input, 128 + signal for a
/// file run a signal interrupted, 141 (quietly) when standard output was closed, else 1.
pub fn report(result: anyhow::Result<ExitCode>) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(err) if crate::stdout::is_closed_pipe(&err) => {
            ExitCode::from(crate::stdout::CLOSED_STATUS)
        }
        Err(err) => {
            eprintln!("netspectra: error: {}", message(&err));
            if let Some(i) = err.downcast_ref::<crate::stop::Interrupted>() {
                return ExitCode::from(i.exit_code());
            }
            if is_bad_input(&err) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{path}: {source}")]
    struct WithSource {
        path: String,
        #[source]
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let io = std::io::Error::new(std::io::ErrorKind::AlreadyExists, "File exists");
        let err = anyhow::Error::new(WithSource {
            path: "/out/dir".into(),
            source: io,
        })
        .context("creating /out/dir/v.jsonl");
        assert_eq!(
            message(&err),
            "creating /out/dir/v.jsonl: /out/dir: File exists"
        );
        // Causes that add something are all kept.
        let err = anyhow::anyhow!("inner").context("middle").context("outer");
        assert_eq!(message(&err), "outer: middle: inner");
    }
}

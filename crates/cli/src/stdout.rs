//! Standard output that behaves like every Unix tool's when the reader goes away (`| head`):
//! the run ends quietly with status 141 (128 + SIGPIPE) instead of a panic or an error message.

use std::io::Write;

/// Exit status of a run whose standard output was closed by its reader.
pub const CLOSED_STATUS: u8 = 141;

/// Prints one line on standard output; a closed standard output ends the process quietly.
/// Use it for summaries and listings printed once outputs are complete.
macro_rules! outln {
    () => { $crate::stdout::write_line(format_args!("")) };
    ($($arg:tt)*) => { $crate::stdout::write_line(format_args!($($arg)*)) };
}
pub(crate) use outln;

/// See [`outln!`].
pub fn write_line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    let r = out
        .write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = r {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            closed();
        }
        // Any other failure to print a summary (a full disk behind a redirection) is reported
        // but does not undo the run's outputs.
        eprintln!("netspectra: error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// Ends the process because standard output was closed.
pub fn closed() -> ! {
    std::process::exit(CLOSED_STATUS as i32)
}

/// True when the error (or a cause) is a write to a pipe whose reader went away.
pub fn is_closed_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        e.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// True when a message (a sink's error, carried as text) is a write to a pipe whose reader
/// went away.
pub fn is_closed_pipe_message(msg: &str) -> bool {
    msg.ends_with(&std::io::Error::from(std::io::ErrorKind::BrokenPipe).to_string())
        || msg.contains("Broken pipe (os error 32)")
}

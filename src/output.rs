//! Standard output for the tools, so that a reader going away (`userpci demo | head -1`) ends a
//! tool quietly instead of with a `println!` panic and a backtrace.
//!
//! Rust ignores `SIGPIPE`, so a write to a closed pipe fails with `EPIPE`, which `println!`
//! turns into a panic. The tools write through [`out!`](crate::out) and
//! [`outln!`](crate::outln) instead, which return [`OutputError::Closed`] for `EPIPE`; their
//! `main` treats that as the end of the run, without a message. The binaries deny
//! `clippy::print_stdout` and `clippy::print_stderr` so that no `println!` slips back in.

use std::fmt;
use std::io::{self, Write};

/// Writing to standard output failed.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    /// The reader closed its end of the pipe (`EPIPE`): nobody is listening any more.
    #[error("standard output was closed by its reader")]
    Closed,
    /// Any other write error (a full disk, a revoked terminal).
    #[error("cannot write to standard output: {0}")]
    Io(#[source] io::Error),
}

impl OutputError {
    /// True when the reader went away, which a tool treats as a quiet end.
    pub fn is_closed(&self) -> bool {
        matches!(self, OutputError::Closed)
    }
}

impl From<io::Error> for OutputError {
    fn from(err: io::Error) -> Self {
        if err.kind() == io::ErrorKind::BrokenPipe {
            OutputError::Closed
        } else {
            OutputError::Io(err)
        }
    }
}

/// Writes `args` to standard output and flushes, so that progress lines appear at once and a
/// closed pipe is noticed at the write that hit it.
pub fn write_fmt(args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    write_to(&mut io::stdout().lock(), args)
}

/// [`write_fmt`] to any writer (tests use a closed pipe).
pub fn write_to(out: &mut impl Write, args: fmt::Arguments<'_>) -> Result<(), OutputError> {
    out.write_fmt(args)?;
    out.flush()?;
    Ok(())
}

/// Writes an error message to standard error. A failure is ignored: an error message has
/// nowhere else to go, and the exit status still tells.
pub fn error_line(args: fmt::Arguments<'_>) {
    let mut err = io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// `print!` that returns `Result<(), OutputError>` instead of panicking.
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_fmt(::std::format_args!($($arg)*))
    };
}

/// `println!` that returns `Result<(), OutputError>` instead of panicking.
#[macro_export]
macro_rules! outln {
    () => {
        $crate::output::write_fmt(::std::format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_fmt(::std::format_args!("{}\n", ::std::format_args!($($arg)*)))
    };
}

/// `eprintln!` that cannot panic (see [`error_line`]).
#[macro_export]
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::error_line(::std::format_args!($($arg)*))
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose reader has gone, as a pipe after `head` exits.
    struct ClosedPipe;

    impl Write for ClosedPipe {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_pipe_is_a_quiet_end_and_other_errors_are_not() {
        let err = write_to(&mut ClosedPipe, format_args!("line\n")).unwrap_err();
        assert!(err.is_closed(), "{err}");
        let other = OutputError::from(io::Error::from(io::ErrorKind::StorageFull));
        assert!(!other.is_closed());
        assert!(other
            .to_string()
            .starts_with("cannot write to standard output"));
        let mut buffer = Vec::new();
        write_to(&mut buffer, format_args!("{} {}\n", 1, "two")).unwrap();
        assert_eq!(buffer, b"1 two\n");
    }
}

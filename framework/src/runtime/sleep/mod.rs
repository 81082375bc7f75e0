//! How an idle reactor sleeps: io_uring when the kernel allows it, `ppoll(2)` otherwise.
//!
//! Both backends keep a set of eventfds, each named by a `(index, generation)` pair that the
//! caller chooses, and report which of them fired through a callback:
//!
//! - [`check`](Backend::check) never blocks. With io_uring it only reads the completion ring (no
//!   system call) because every fd carries a multishot `POLL_ADD` that the kernel completes
//!   while the thread is busy; with `ppoll` it makes one zero-timeout call every
//!   [`POLL_CHECK_EVERY`] checks.
//! - [`sleep`](Backend::sleep) blocks until an fd fires or the timeout passes.

mod common;
mod poll;
pub(crate) mod uring;

use std::io;
use std::os::fd::RawFd;
use std::sync::Once;
use std::time::Duration;

use crate::error::{Error, Result};

pub(crate) use common::GEN_MASK;
pub(crate) use poll::PollSleeper;
pub(crate) use uring::UringSleeper;

/// Which mechanism an idle reactor sleeps in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SleepBackend {
    /// io_uring if it works in this process (kernel, seccomp, `io_uring_disabled`), else `ppoll`.
    #[default]
    Auto,
    /// io_uring only: creating the reactor fails if it is unavailable.
    IoUring,
    /// `ppoll(2)` on the eventfds.
    Poll,
}

/// The backend a reactor resolved [`SleepBackend::Auto`] to.
pub(crate) enum Backend {
    // Boxed: the ring is a few hundred bytes, the ppoll state three words.
    Uring(Box<UringSleeper>),
    Poll(PollSleeper),
}

impl Backend {
    pub(crate) fn new(kind: SleepBackend, ring_entries: u32) -> Result<Backend> {
        match kind {
            SleepBackend::Poll => Ok(Backend::Poll(PollSleeper::new())),
            SleepBackend::IoUring => UringSleeper::new(ring_entries)
                .map(|s| Backend::Uring(Box::new(s)))
                .map_err(|source| Error::Runtime {
                    op: "io_uring setup",
                    source,
                }),
            SleepBackend::Auto => match UringSleeper::new(ring_entries) {
                Ok(sleeper) => Ok(Backend::Uring(Box::new(sleeper))),
                Err(err) => {
                    static LOGGED: Once = Once::new();
                    LOGGED.call_once(|| {
                        tracing::info!(
                            error = %err,
                            "io_uring is unavailable; idle reactors sleep in ppoll(2) instead"
                        );
                    });
                    Ok(Backend::Poll(PollSleeper::new()))
                }
            },
        }
    }

    /// The backend in use, as a [`SleepBackend`] other than `Auto`.
    pub(crate) fn kind(&self) -> SleepBackend {
        match self {
            Backend::Uring(_) => SleepBackend::IoUring,
            Backend::Poll(_) => SleepBackend::Poll,
        }
    }

    pub(crate) fn add(&mut self, index: u32, gen: u32, fd: RawFd) -> io::Result<()> {
        match self {
            Backend::Uring(s) => s.add(index, gen, fd),
            Backend::Poll(s) => {
                s.add(index, gen, fd);
                Ok(())
            }
        }
    }

    pub(crate) fn remove(&mut self, index: u32, gen: u32) -> io::Result<()> {
        match self {
            Backend::Uring(s) => s.remove(index, gen),
            Backend::Poll(s) => {
                s.remove(index, gen);
                Ok(())
            }
        }
    }

    pub(crate) fn check(&mut self, fired: &mut dyn FnMut(u32, u32)) -> io::Result<()> {
        match self {
            Backend::Uring(s) => s.check(fired),
            Backend::Poll(s) => s.check(fired),
        }
    }

    pub(crate) fn sleep(
        &mut self,
        timeout: Option<Duration>,
        fired: &mut dyn FnMut(u32, u32),
    ) -> io::Result<()> {
        match self {
            Backend::Uring(s) => s.sleep(timeout, fired),
            Backend::Poll(s) => s.sleep(timeout, fired),
        }
    }
}

//! Interrupt vectors as waitable handles.
//!
//! Every MSI-X vector is an eventfd on both backends: VFIO signals it from the kernel, the
//! simulated bus signals it from a device model. The runtime waits on the fd with io_uring;
//! a poller can check it without blocking.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};

/// A Linux eventfd in non-blocking mode.
#[derive(Debug)]
pub struct EventFd {
    fd: OwnedFd,
}

impl EventFd {
    /// Creates a non-blocking, close-on-exec eventfd with a count of zero.
    pub fn new() -> Result<Self> {
        // SAFETY: eventfd takes no pointers; a negative return is an error, checked below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if raw < 0 {
            return Err(Error::EventFd {
                op: "create",
                source: io::Error::last_os_error(),
            });
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        Ok(EventFd { fd })
    }

    /// Adds one to the counter, waking a waiter.
    pub fn signal(&self) -> Result<()> {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to an fd we own.
        let n = unsafe { libc::write(self.fd.as_raw_fd(), (&one as *const u64).cast(), 8) };
        if n == 8 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // A full counter (EAGAIN) already wakes any waiter: nothing is lost.
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(());
        }
        Err(Error::EventFd {
            op: "signal",
            source: err,
        })
    }

    /// Reads and clears the counter without blocking: the number of signals since the last take.
    pub fn take(&self) -> Result<u64> {
        let mut count: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from an fd we own.
        let n = unsafe { libc::read(self.fd.as_raw_fd(), (&mut count as *mut u64).cast(), 8) };
        if n == 8 {
            return Ok(count);
        }
        let err = io::Error::last_os_error();
        if err.kind() == io::ErrorKind::WouldBlock {
            return Ok(0);
        }
        Err(Error::EventFd {
            op: "read",
            source: err,
        })
    }

    /// Waits up to `timeout` for a signal and takes the count (0 on timeout).
    ///
    /// For tools and tests; a polled-mode driver waits through the runtime instead.
    pub fn wait(&self, timeout: Duration) -> Result<u64> {
        let mut pfd = libc::pollfd {
            fd: self.fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        let ms = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut pfd, 1, ms) };
        if n < 0 {
            return Err(Error::EventFd {
                op: "poll",
                source: io::Error::last_os_error(),
            });
        }
        self.take()
    }
}

impl AsRawFd for EventFd {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for EventFd {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// One MSI-X vector of a function, as a handle a driver or the runtime can wait on.
#[derive(Clone, Debug)]
pub struct InterruptVector {
    vector: u16,
    event: Arc<EventFd>,
}

impl InterruptVector {
    /// Wraps the eventfd that the backend signals for `vector`.
    pub fn new(vector: u16, event: Arc<EventFd>) -> Self {
        InterruptVector { vector, event }
    }

    /// The MSI-X table index.
    pub fn vector(&self) -> u16 {
        self.vector
    }

    /// The eventfd behind the vector.
    pub fn event(&self) -> &Arc<EventFd> {
        &self.event
    }

    /// Interrupts since the last call, without blocking.
    pub fn take(&self) -> Result<u64> {
        self.event.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_signals_and_clears_on_take() {
        let fd = EventFd::new().unwrap();
        assert_eq!(fd.take().unwrap(), 0);
        fd.signal().unwrap();
        fd.signal().unwrap();
        assert_eq!(fd.take().unwrap(), 2);
        assert_eq!(fd.take().unwrap(), 0);
    }

    #[test]
    fn wait_returns_zero_on_timeout_and_the_count_when_signalled() {
        let fd = Arc::new(EventFd::new().unwrap());
        assert_eq!(fd.wait(Duration::from_millis(1)).unwrap(), 0);
        let other = Arc::clone(&fd);
        std::thread::spawn(move || other.signal().unwrap())
            .join()
            .unwrap();
        assert_eq!(fd.wait(Duration::from_secs(5)).unwrap(), 1);
    }
}

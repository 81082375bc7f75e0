//! The `ppoll(2)` sleep backend, for when io_uring is unavailable (old kernel, seccomp,
//! `kernel.io_uring_disabled`).
//!
//! `ppoll` is level-triggered: an eventfd whose count nobody takes keeps the reactor awake.
//! Whoever owns a vector takes its count (`InterruptVector::take`), as the io_uring backend
//! expects too.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use super::common::{timespec, POLL_CHECK_EVERY};

/// Sleeps in `ppoll` on a set of eventfds.
pub(crate) struct PollSleeper {
    fds: Vec<libc::pollfd>,
    ids: Vec<(u32, u32)>,
    checks: u32,
}

impl PollSleeper {
    pub(crate) fn new() -> PollSleeper {
        PollSleeper {
            fds: Vec::new(),
            ids: Vec::new(),
            checks: 0,
        }
    }

    pub(crate) fn add(&mut self, index: u32, gen: u32, fd: RawFd) {
        self.fds.push(libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        });
        self.ids.push((index, gen));
    }

    pub(crate) fn remove(&mut self, index: u32, gen: u32) {
        if let Some(pos) = self.ids.iter().position(|&id| id == (index, gen)) {
            self.ids.swap_remove(pos);
            self.fds.swap_remove(pos);
        }
    }

    /// Every [`POLL_CHECK_EVERY`] calls, reports readable fds without blocking.
    ///
    /// The first fd is the reactor's own doorbell, which is only signalled while it sleeps,
    /// so with nothing else watched there is nothing to look at.
    pub(crate) fn check(&mut self, fired: &mut dyn FnMut(u32, u32)) -> io::Result<()> {
        self.checks = self.checks.wrapping_add(1);
        if self.fds.len() <= 1 || !self.checks.is_multiple_of(POLL_CHECK_EVERY) {
            return Ok(());
        }
        self.poll(Some(Duration::ZERO), fired)
    }

    pub(crate) fn sleep(
        &mut self,
        timeout: Option<Duration>,
        fired: &mut dyn FnMut(u32, u32),
    ) -> io::Result<()> {
        self.poll(timeout, fired)
    }

    fn poll(
        &mut self,
        timeout: Option<Duration>,
        fired: &mut dyn FnMut(u32, u32),
    ) -> io::Result<()> {
        let ts = timeout.map(timespec);
        let ts_ptr = ts
            .as_ref()
            .map_or(std::ptr::null(), |t| t as *const libc::timespec);
        let nfds = libc::nfds_t::try_from(self.fds.len()).unwrap_or(libc::nfds_t::MAX);
        // SAFETY: `fds` is a live array of `nfds` pollfds that the kernel may write `revents`
        // into; `ts_ptr` is null or points at `ts`, alive across the call; no signal mask.
        let n = unsafe { libc::ppoll(self.fds.as_mut_ptr(), nfds, ts_ptr, std::ptr::null()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(());
            }
            return Err(err);
        }
        if n == 0 {
            return Ok(());
        }
        for (pfd, &(index, gen)) in self.fds.iter_mut().zip(&self.ids) {
            if pfd.revents != 0 {
                pfd.revents = 0;
                fired(index, gen);
            }
        }
        Ok(())
    }
}

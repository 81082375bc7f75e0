//! The io_uring sleep backend.
//!
//! Every watched eventfd carries one multishot `IORING_OP_POLL_ADD` (`POLLIN`), armed when the
//! fd is added and kept armed: each `signal()` of the eventfd posts a completion. The kernel
//! posts it through task work even while the reactor spins in user space, so noticing an
//! interrupt during busy polling costs one load of the completion ring's tail, not a system
//! call. Sleeping adds an `IORING_OP_TIMEOUT` with a completion count of one (it ends at the
//! deadline or as soon as any other completion arrives, so timeouts never pile up) and waits
//! in `io_uring_enter` for one completion.
//!
//! Kernels without multishot poll (before 5.13) answer `EINVAL`; the sleeper then re-arms
//! one-shot polls before each sleep.
//!
//! User data: the top two bits say what completed, then a 30-bit generation and a 32-bit index.

use std::io;
use std::os::fd::RawFd;
use std::time::Duration;

use io_uring::{cqueue, opcode, squeue, types, IoUring, Probe};

use super::common::GEN_MASK;

const KIND_SHIFT: u32 = 62;
const KIND_POLL: u64 = 1;
const KIND_TIMEOUT: u64 = 2;
const KIND_IGNORE: u64 = 3;

fn poll_data(index: u32, gen: u32) -> u64 {
    (KIND_POLL << KIND_SHIFT) | (u64::from(gen & GEN_MASK) << 32) | u64::from(index)
}

fn timeout_data() -> u64 {
    KIND_TIMEOUT << KIND_SHIFT
}

fn ignore_data() -> u64 {
    KIND_IGNORE << KIND_SHIFT
}

/// Splits user data into (kind, index, generation).
fn decode(data: u64) -> (u64, u32, u32) {
    let kind = data >> KIND_SHIFT;
    // Truncations are the point: the fields were packed from a u32 and a 30-bit value.
    let gen = ((data >> 32) as u32) & GEN_MASK;
    let index = data as u32;
    (kind, index, gen)
}

#[derive(Debug)]
struct Watch {
    index: u32,
    gen: u32,
    fd: RawFd,
    armed: bool,
}

/// Sleeps in io_uring on a set of eventfds and a timeout.
pub(crate) struct UringSleeper {
    ring: IoUring,
    watches: Vec<Watch>,
    multishot: bool,
    /// Entries pushed to the submission queue and not yet submitted.
    unsubmitted: bool,
    /// Read by the kernel while the sleep's timeout is submitted; lives here so it is stable.
    timespec: types::Timespec,
}

impl UringSleeper {
    /// Creates a ring of `entries` submission slots and checks that it can poll and time out.
    pub(crate) fn new(entries: u32) -> io::Result<UringSleeper> {
        let ring = IoUring::new(entries.max(8))?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        for (code, name) in [
            (opcode::PollAdd::CODE, "POLL_ADD"),
            (opcode::PollRemove::CODE, "POLL_REMOVE"),
            (opcode::Timeout::CODE, "TIMEOUT"),
        ] {
            if !probe.is_supported(code) {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    format!("io_uring lacks IORING_OP_{name}"),
                ));
            }
        }
        Ok(UringSleeper {
            ring,
            watches: Vec::new(),
            multishot: true,
            unsubmitted: false,
            timespec: types::Timespec::new(),
        })
    }

    /// Makes the kernel signal `eventfd` whenever this ring posts a completion.
    ///
    /// Used by the tokio-uring bridge, which waits for that eventfd instead of entering the ring.
    pub(crate) fn register_eventfd(&self, eventfd: RawFd) -> io::Result<()> {
        self.ring.submitter().register_eventfd(eventfd)
    }

    /// Starts watching `fd` as `(index, gen)`; submitted at the next check or sleep.
    pub(crate) fn add(&mut self, index: u32, gen: u32, fd: RawFd) -> io::Result<()> {
        self.watches.push(Watch {
            index,
            gen: gen & GEN_MASK,
            fd,
            armed: false,
        });
        let last = self.watches.len() - 1;
        self.arm(last)
    }

    /// Stops watching `(index, gen)`. A completion already in flight for it is ignored.
    pub(crate) fn remove(&mut self, index: u32, gen: u32) -> io::Result<()> {
        let gen = gen & GEN_MASK;
        let Some(pos) = self
            .watches
            .iter()
            .position(|w| w.index == index && w.gen == gen)
        else {
            return Ok(());
        };
        let watch = self.watches.swap_remove(pos);
        if watch.armed {
            let entry = opcode::PollRemove::new(poll_data(index, gen))
                .build()
                .user_data(ignore_data());
            self.push(&entry)?;
        }
        Ok(())
    }

    /// Reports what fired since the last call, without blocking; submits pending entries.
    pub(crate) fn check(&mut self, fired: &mut dyn FnMut(u32, u32)) -> io::Result<()> {
        self.reap(fired);
        if self.unsubmitted {
            self.submit()?;
        }
        Ok(())
    }

    /// Blocks until a watched fd fires or `timeout` passes (`None`: no timeout).
    pub(crate) fn sleep(
        &mut self,
        timeout: Option<Duration>,
        fired: &mut dyn FnMut(u32, u32),
    ) -> io::Result<()> {
        self.prepare_sleep(timeout)?;
        self.unsubmitted = false;
        match self.ring.submit_and_wait(1) {
            Ok(_) => {}
            // A signal, or a full completion queue (EBUSY): either way, reap and go on.
            Err(err) if matches!(err.raw_os_error(), Some(libc::EINTR | libc::EBUSY)) => {}
            Err(err) => return Err(err),
        }
        self.reap(fired);
        Ok(())
    }

    /// Re-arms polls that ended and queues the sleep's timeout, without submitting.
    pub(crate) fn prepare_sleep(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        for i in 0..self.watches.len() {
            if !self.watches[i].armed {
                self.arm(i)?;
            }
        }
        if let Some(timeout) = timeout {
            self.timespec = types::Timespec::from(timeout);
            let entry = opcode::Timeout::new(&self.timespec)
                .count(1)
                .build()
                .user_data(timeout_data());
            self.push(&entry)?;
        }
        Ok(())
    }

    /// Submits queued entries without waiting.
    pub(crate) fn submit(&mut self) -> io::Result<()> {
        self.unsubmitted = false;
        loop {
            match self.ring.submit() {
                Ok(_) => return Ok(()),
                Err(err) if err.raw_os_error() == Some(libc::EINTR) => continue,
                Err(err) => return Err(err),
            }
        }
    }

    /// Reads every completion, reporting the watches that fired.
    pub(crate) fn reap(&mut self, fired: &mut dyn FnMut(u32, u32)) {
        let mut rearm_oneshot = false;
        for cqe in self.ring.completion() {
            let (kind, index, gen) = decode(cqe.user_data());
            if kind != KIND_POLL {
                continue; // a timeout (it only had to end the wait) or a removal
            }
            let Some(watch) = self
                .watches
                .iter_mut()
                .find(|w| w.index == index && w.gen == gen)
            else {
                continue; // removed since
            };
            let result = cqe.result();
            if !cqueue::more(cqe.flags()) {
                watch.armed = false;
            }
            if result == -libc::EINVAL && self.multishot {
                // No multishot poll on this kernel: fall back to one-shot polls.
                self.multishot = false;
                rearm_oneshot = true;
                continue;
            }
            if result >= 0 {
                fired(index, gen);
            }
        }
        if rearm_oneshot {
            tracing::debug!("io_uring multishot poll unsupported; using one-shot polls");
            for i in 0..self.watches.len() {
                if !self.watches[i].armed {
                    // Best effort: failures here surface at the next sleep's re-arm.
                    let _ = self.arm(i);
                }
            }
        }
    }

    fn arm(&mut self, i: usize) -> io::Result<()> {
        let w = &self.watches[i];
        let entry = opcode::PollAdd::new(types::Fd(w.fd), libc::POLLIN as u32)
            .multi(self.multishot)
            .build()
            .user_data(poll_data(w.index, w.gen));
        self.push(&entry)?;
        self.watches[i].armed = true;
        Ok(())
    }

    fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        loop {
            // SAFETY: the entries pushed here are POLL_ADD on an eventfd that the caller keeps
            // open while it is watched (the poll also holds its own file reference once
            // submitted), POLL_REMOVE and TIMEOUT, whose only pointer is `self.timespec`: the
            // kernel copies it while the entry is submitted, and `self` is neither moved nor
            // dropped before that happens (submission happens through `&mut self`).
            let pushed = unsafe { self.ring.submission().push(entry) };
            if pushed.is_ok() {
                self.unsubmitted = true;
                return Ok(());
            }
            // Submission queue full: hand what is queued to the kernel and retry.
            self.submit()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_data_round_trips() {
        let data = poll_data(7, GEN_MASK);
        assert_eq!(decode(data), (KIND_POLL, 7, GEN_MASK));
        assert_eq!(decode(poll_data(u32::MAX, 3)), (KIND_POLL, u32::MAX, 3));
        assert_eq!(decode(timeout_data()).0, KIND_TIMEOUT);
        assert_eq!(decode(ignore_data()).0, KIND_IGNORE);
    }
}

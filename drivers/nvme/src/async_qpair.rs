//! `async` I/O on the framework runtime, built on the raw queue pair.
//!
//! An [`AsyncQueuePair`] owns an [`IoQueuePair`] and registers a poller with the reactor of
//! the core it is created on; the poller calls `process_completions` every reactor iteration
//! and hands each result to the [`Slot`] of the waiting future. Slots are preallocated, one per
//! command slot of the queue, and a future's token is its slot index, so an I/O allocates
//! nothing: the future lives in the task, the slot stores the result and one waker inline.
//!
//! When the queue is full (or a controller reset is in progress), a future waits (`Pending`)
//! until the poller sees room, instead of failing.
//!
//! # Cancellation
//! The futures borrow the caller's buffer. Dropping a future whose command is in flight does
//! **not** return at once: the drop polls the queue pair (sleeping on the function's clock
//! between polls) until that command has completed, timed out through abort and reset, or
//! failed with the controller. Only then does the borrow end, so the device never writes into
//! a buffer the caller has got back. (As with any borrowed-buffer API, leaking a future with
//! `mem::forget` skips this; don't.)
//!
//! When the interrupt vector of the queue exists it is registered with the reactor, so a
//! reactor that went to sleep wakes up on a completion.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

use userpci_framework::device::PciFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_framework::runtime::{add_poller, remove_poller, InterruptWaiter, PollerId, Slot};
use userpci_framework::time::Backoff;

use crate::buffer::BorrowedRange;
use crate::controller::Controller;
use crate::error::{Error, Rejected, Result};
use crate::namespace::Namespace;
use crate::qpair::{IoQueuePair, QpairOptions, QpairStats};

type RawQpair<F> = IoQueuePair<F, u16, BorrowedRange>;

struct Shared<F: PciFunction> {
    qpair: RefCell<RawQpair<F>>,
    slots: Box<[Slot<Result<()>>]>,
    free: RefCell<Vec<u16>>,
    waiters: RefCell<VecDeque<Waker>>,
}

impl<F: PciFunction> Shared<F> {
    /// The reactor poller: reaps completions into the slots and wakes futures waiting for room.
    fn poll(&self) -> bool {
        let Ok(mut qpair) = self.qpair.try_borrow_mut() else {
            // A dropped future is polling for its command right now.
            return false;
        };
        let done = qpair.process_completions(0, &mut |c| {
            self.slots[usize::from(c.token)].set(c.result);
        });
        if done > 0 {
            if let Some(vector) = qpair.interrupt() {
                // The poller handles the queue: clear the count so the reactor can sleep.
                let _ = vector.take();
            }
        }
        let room = qpair.in_flight() < qpair.capacity()
            && qpair.state() == crate::controller::QpairState::Enabled;
        drop(qpair);
        if done > 0 || room {
            self.wake_waiters();
        }
        done > 0
    }

    fn wake_waiters(&self) {
        let mut waiters = self.waiters.borrow_mut();
        while let Some(waker) = waiters.pop_front() {
            waker.wake();
        }
    }

    fn wait_for_room(&self, waker: &Waker) {
        let mut waiters = self.waiters.borrow_mut();
        if !waiters.iter().any(|w| w.will_wake(waker)) {
            waiters.push_back(waker.clone());
        }
    }

    fn release(&self, slot: u16) {
        let _ = self.slots[usize::from(slot)].take();
        self.free.borrow_mut().push(slot);
        self.wake_waiters();
    }
}

/// A queue pair with `async` methods, for one core's reactor. See the module documentation.
pub struct AsyncQueuePair<F: PciFunction> {
    shared: Rc<Shared<F>>,
    poller: PollerId,
    _interrupt: Option<InterruptWaiter>,
}

impl<F: PciFunction> fmt::Debug for AsyncQueuePair<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncQueuePair")
            .field("qid", &self.qid())
            .finish_non_exhaustive()
    }
}

impl<F: PciFunction> Controller<F> {
    /// Creates an I/O queue pair with `async` methods on the reactor running on this thread.
    ///
    /// # Panics
    /// Outside a running userpci reactor (call it inside `block_on`, a task or a poller).
    pub fn create_async_qpair(&self, options: QpairOptions) -> Result<AsyncQueuePair<F>> {
        let qpair: RawQpair<F> = self.create_io_qpair(options)?;
        let capacity = qpair.capacity();
        let interrupt = match qpair.interrupt() {
            Some(vector) => Some(InterruptWaiter::new(vector)?),
            None => None,
        };
        let shared = Rc::new(Shared {
            qpair: RefCell::new(qpair),
            slots: (0..capacity).map(|_| Slot::new()).collect(),
            free: RefCell::new((0..capacity as u16).rev().collect()),
            waiters: RefCell::new(VecDeque::with_capacity(capacity * 2)),
        });
        let weak = Rc::downgrade(&shared);
        let poller = add_poller(move || weak.upgrade().is_some_and(|shared| shared.poll()));
        Ok(AsyncQueuePair {
            shared,
            poller,
            _interrupt: interrupt,
        })
    }
}

/// One operation, with what it borrows.
#[derive(Clone, Copy)]
enum AsyncOp {
    Read(BorrowedRange),
    Write(BorrowedRange),
    Flush,
    WriteZeroes(u64),
    Trim(u64),
}

/// Holds a slot; when dropped with a command in flight, waits for it (see the module docs).
struct InFlight<'a, F: PciFunction> {
    shared: &'a Shared<F>,
    slot: u16,
    armed: bool,
}

impl<F: PciFunction> Drop for InFlight<'_, F> {
    fn drop(&mut self) {
        if self.armed {
            let slot = &self.shared.slots[usize::from(self.slot)];
            let clock = self.shared.qpair.borrow().clock().clone();
            let mut backoff = Backoff::default();
            while !slot.is_set() {
                if self.shared.poll() {
                    continue;
                }
                clock.sleep(backoff.step());
            }
        }
        self.shared.release(self.slot);
    }
}

impl<F: PciFunction> AsyncQueuePair<F> {
    /// The queue identifier.
    pub fn qid(&self) -> u16 {
        self.shared.qpair.borrow().qid()
    }

    /// The queue pair's counters.
    pub fn stats(&self) -> QpairStats {
        self.shared.qpair.borrow().stats()
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.qpair.borrow().in_flight()
    }

    /// Reads `buf.len()` bytes from block `lba` into `buf`.
    pub async fn read(&self, ns: &Namespace, lba: u64, buf: &mut DmaBuffer) -> Result<()> {
        let range = BorrowedRange::of(buf);
        self.execute(ns, lba, AsyncOp::Read(range)).await
    }

    /// Writes `buf` at block `lba`.
    pub async fn write(&self, ns: &Namespace, lba: u64, buf: &DmaBuffer) -> Result<()> {
        let range = BorrowedRange::of(buf);
        self.execute(ns, lba, AsyncOp::Write(range)).await
    }

    /// Flushes the namespace's volatile write cache.
    pub async fn flush(&self, ns: &Namespace) -> Result<()> {
        self.execute(ns, 0, AsyncOp::Flush).await
    }

    /// Writes zeroes to `blocks` blocks from `lba`.
    pub async fn write_zeroes(&self, ns: &Namespace, lba: u64, blocks: u64) -> Result<()> {
        self.execute(ns, lba, AsyncOp::WriteZeroes(blocks)).await
    }

    /// Deallocates `blocks` blocks from `lba` (Dataset Management, `AD`).
    pub async fn trim(&self, ns: &Namespace, lba: u64, blocks: u64) -> Result<()> {
        self.execute(ns, lba, AsyncOp::Trim(blocks)).await
    }

    async fn execute(&self, ns: &Namespace, lba: u64, op: AsyncOp) -> Result<()> {
        let shared = &*self.shared;
        let slot = poll_fn(|cx| match shared.free.borrow_mut().pop() {
            Some(slot) => Poll::Ready(slot),
            None => {
                shared.wait_for_room(cx.waker());
                Poll::Pending
            }
        })
        .await;
        let mut in_flight = InFlight {
            shared,
            slot,
            armed: false,
        };
        poll_fn(|cx| {
            let mut qpair = shared.qpair.borrow_mut();
            let submitted = match op {
                AsyncOp::Read(range) => qpair.submit_read(ns, lba, range, slot),
                AsyncOp::Write(range) => qpair.submit_write(ns, lba, range, slot),
                AsyncOp::Flush => qpair.submit_flush(ns, slot),
                AsyncOp::WriteZeroes(blocks) => qpair.submit_write_zeroes(ns, lba, blocks, slot),
                AsyncOp::Trim(blocks) => qpair.submit_trim(ns, lba, blocks, slot),
            };
            match submitted {
                Ok(()) => Poll::Ready(Ok(())),
                Err(Rejected {
                    error: Error::QueueFull { .. } | Error::Resetting { .. },
                    ..
                }) => {
                    drop(qpair);
                    shared.wait_for_room(cx.waker());
                    Poll::Pending
                }
                Err(rejected) => Poll::Ready(Err(rejected.error)),
            }
        })
        .await?;
        in_flight.armed = true;
        let result = shared.slots[usize::from(slot)].wait().await;
        in_flight.armed = false;
        result
    }
}

impl<F: PciFunction> Drop for AsyncQueuePair<F> {
    fn drop(&mut self) {
        remove_poller(self.poller);
    }
}

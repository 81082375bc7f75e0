//! `async` I/O on the framework runtime, built on the raw queue pair.
//!
//! An [`AsyncQueuePair`] owns an [`IoQueuePair`] and registers a poller with the reactor of
//! the core it is created on; the poller calls `process_completions` every reactor iteration
//! and hands each result to the command slot of the waiting future, waking it. Command slots
//! are preallocated, one per command the queue can hold, and a future's token is its slot
//! index, so an I/O allocates nothing: the future lives in the task, the slot stores the
//! result and the waiting task's waker inline (kept for the next command, so a task issuing
//! one I/O after another costs no reference-count traffic).
//!
//! The queue pair, the slots and the free-slot list sit behind one `RefCell`: a future's poll
//! borrows it once, to take a free slot and submit, or to collect its result and free the
//! slot.
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
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use userpci_framework::device::PciFunction;
use userpci_framework::dma::DmaBuffer;
use userpci_framework::runtime::{add_poller, remove_poller, InterruptWaiter, PollerId};
use userpci_framework::time::Backoff;

use crate::buffer::BorrowedRange;
use crate::controller::{Controller, QpairState};
use crate::error::{Error, Rejected, Result};
use crate::namespace::Namespace;
use crate::qpair::{IoQueuePair, QpairOptions, QpairStats};

type RawQpair<F> = IoQueuePair<F, u16, BorrowedRange>;

/// Where a command slot's command stands, as the poller leaves it for the future.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
enum Outcome {
    /// Not completed (or collected already).
    #[default]
    Pending,
    /// Completed successfully.
    Succeeded,
    /// Completed with the error kept in the slot's entry of `State::errors`.
    Failed,
}

/// One command slot: the mailbox between the poller and the future that holds the slot.
///
/// 24 bytes: the outcome and the waker. An error goes to a separate array, so the common
/// case moves no error-sized value and the slots of a busy queue share few cache lines.
#[derive(Default)]
struct Command {
    outcome: Outcome,
    /// The waker of the future that holds the slot; left in place when the slot is freed.
    waker: Option<Waker>,
}

impl Command {
    /// Remembers `waker` for the completion (a clone only if it is another task's).
    #[inline]
    fn wait(&mut self, waker: &Waker) {
        match &self.waker {
            Some(old) if old.will_wake(waker) => {}
            _ => self.set_waker(waker),
        }
    }

    #[cold]
    #[inline(never)]
    fn set_waker(&mut self, waker: &Waker) {
        self.waker = Some(waker.clone());
    }

    /// Called by the poller with the command's result: stores it and wakes the future.
    #[inline]
    fn complete(&mut self, error_slot: &mut Option<Error>, result: Result<()>) {
        self.outcome = match result {
            Ok(()) => Outcome::Succeeded,
            Err(error) => {
                *error_slot = Some(error);
                Outcome::Failed
            }
        };
        if let Some(waker) = &self.waker {
            waker.wake_by_ref();
        }
    }
}

/// Takes a failed command's error out of its entry of `State::errors`.
#[cold]
#[inline(never)]
fn take_error(error_slot: &mut Option<Error>) -> Result<()> {
    match error_slot.take() {
        Some(error) => Err(error),
        None => Ok(()),
    }
}

/// Everything a poll touches, behind the one `RefCell`.
struct State<F: PciFunction> {
    qpair: RawQpair<F>,
    commands: Box<[Command]>,
    /// The error of each slot's failed command, until its future collects it.
    errors: Box<[Option<Error>]>,
    free: Vec<u16>,
    /// Futures waiting for a free slot or for room in the queue.
    waiters: VecDeque<Waker>,
}

impl<F: PciFunction> State<F> {
    fn submit(
        &mut self,
        ns: &Namespace,
        lba: u64,
        op: AsyncOp,
        slot: u16,
    ) -> Result<(), Rejected<u16, BorrowedRange>> {
        let qpair = &mut self.qpair;
        match op {
            AsyncOp::Read(range) => qpair.submit_read(ns, lba, range, slot),
            AsyncOp::Write(range) => qpair.submit_write(ns, lba, range, slot),
            AsyncOp::Flush => qpair.submit_flush(ns, slot),
            AsyncOp::WriteZeroes(blocks) => qpair.submit_write_zeroes(ns, lba, blocks, slot),
            AsyncOp::Trim(blocks) => qpair.submit_trim(ns, lba, blocks, slot),
        }
    }

    /// Frees `slot` (its result taken) and wakes the futures waiting for one.
    #[inline]
    fn release(&mut self, slot: u16) {
        self.free.push(slot);
        if !self.waiters.is_empty() {
            self.wake_waiters();
        }
    }

    #[cold]
    #[inline(never)]
    fn wake_waiters(&mut self) {
        while let Some(waker) = self.waiters.pop_front() {
            waker.wake();
        }
    }

    #[cold]
    #[inline(never)]
    fn wait_for_room(&mut self, waker: &Waker) {
        if !self.waiters.iter().any(|w| w.will_wake(waker)) {
            self.waiters.push_back(waker.clone());
        }
    }
}

struct Shared<F: PciFunction> {
    state: RefCell<State<F>>,
}

impl<F: PciFunction> Shared<F> {
    /// The reactor poller: reaps completions into the slots, wakes their futures and those
    /// waiting for room.
    fn poll(&self) -> bool {
        let Ok(mut state) = self.state.try_borrow_mut() else {
            // A dropped future is polling for its command right now.
            return false;
        };
        let State {
            qpair,
            commands,
            errors,
            waiters,
            ..
        } = &mut *state;
        let done = qpair.process_completions(0, &mut |c| {
            let slot = usize::from(c.token);
            commands[slot].complete(&mut errors[slot], c.result);
        });
        if done > 0 {
            if let Some(vector) = qpair.interrupt() {
                // The poller handles the queue: clear the count so the reactor can sleep.
                let _ = vector.take();
            }
        }
        if !waiters.is_empty()
            && (done > 0
                || (qpair.in_flight() < qpair.capacity() && qpair.state() == QpairState::Enabled))
        {
            state.wake_waiters();
        }
        done > 0
    }

    /// Waits until the command in `slot` has completed, then frees the slot (a dropped
    /// future; see the module docs).
    #[cold]
    #[inline(never)]
    fn wait_for(&self, slot: u16) {
        let clock = self.state.borrow().qpair.clock().clone();
        let mut backoff = Backoff::default();
        loop {
            {
                let mut state = self.state.borrow_mut();
                let command = &mut state.commands[usize::from(slot)];
                if command.outcome != Outcome::Pending {
                    command.outcome = Outcome::Pending;
                    // The error (if any) goes nowhere: nobody waits for this result.
                    let _ = take_error(&mut state.errors[usize::from(slot)]);
                    state.release(slot);
                    return;
                }
            }
            if self.poll() {
                continue;
            }
            clock.sleep(backoff.step());
        }
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
            state: RefCell::new(State {
                qpair,
                commands: (0..capacity).map(|_| Command::default()).collect(),
                errors: (0..capacity).map(|_| None).collect(),
                free: (0..capacity as u16).rev().collect(),
                waiters: VecDeque::with_capacity(capacity * 2),
            }),
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

/// Where an [`Io`] future stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Not submitted yet (no slot, or no room in the queue).
    Queue,
    /// Submitted in this command slot.
    InFlight(u16),
    /// The output was returned.
    Done,
}

/// The future of one request. When dropped with its command in flight it waits for the
/// command (see the module docs).
///
/// It holds the caller's buffer only as a device address range; the `'a` of the method that
/// made it keeps the buffer borrowed for as long as the future lives.
struct Io<'a, F: PciFunction> {
    shared: &'a Shared<F>,
    ns: &'a Namespace,
    lba: u64,
    op: AsyncOp,
    stage: Stage,
}

impl<F: PciFunction> Io<'_, F> {
    /// Takes a free slot and submits, in one borrow.
    #[inline]
    fn submit(&mut self, state: &mut State<F>, waker: &Waker) -> Poll<Result<()>> {
        let Some(slot) = state.free.pop() else {
            state.wait_for_room(waker);
            return Poll::Pending;
        };
        match state.submit(self.ns, self.lba, self.op, slot) {
            Ok(()) => {
                // The doorbell is written by the poller, so the result cannot be there yet.
                state.commands[usize::from(slot)].wait(waker);
                self.stage = Stage::InFlight(slot);
                Poll::Pending
            }
            Err(rejected) => self.rejected(state, waker, slot, rejected.error),
        }
    }

    /// A refused submission: waits for room when the queue is full or resetting, else fails.
    #[cold]
    #[inline(never)]
    fn rejected(
        &mut self,
        state: &mut State<F>,
        waker: &Waker,
        slot: u16,
        error: Error,
    ) -> Poll<Result<()>> {
        state.free.push(slot);
        match error {
            Error::QueueFull { .. } | Error::Resetting { .. } => {
                state.wait_for_room(waker);
                Poll::Pending
            }
            error => {
                self.stage = Stage::Done;
                Poll::Ready(Err(error))
            }
        }
    }
}

impl<F: PciFunction> Future for Io<'_, F> {
    type Output = Result<()>;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<()>> {
        let this = self.get_mut();
        let mut state = this.shared.state.borrow_mut();
        match this.stage {
            Stage::InFlight(slot) => {
                let command = &mut state.commands[usize::from(slot)];
                let outcome = command.outcome;
                if outcome == Outcome::Pending {
                    command.wait(cx.waker());
                    return Poll::Pending;
                }
                command.outcome = Outcome::Pending;
                this.stage = Stage::Done;
                if outcome == Outcome::Failed {
                    let result = take_error(&mut state.errors[usize::from(slot)]);
                    state.release(slot);
                    return Poll::Ready(result);
                }
                state.release(slot);
                Poll::Ready(Ok(()))
            }
            Stage::Queue => this.submit(&mut state, cx.waker()),
            Stage::Done => panic!("AsyncQueuePair I/O future polled after completion"),
        }
    }
}

impl<F: PciFunction> Drop for Io<'_, F> {
    #[inline]
    fn drop(&mut self) {
        if let Stage::InFlight(slot) = self.stage {
            self.shared.wait_for(slot);
        }
    }
}

impl<F: PciFunction> AsyncQueuePair<F> {
    /// The queue identifier.
    pub fn qid(&self) -> u16 {
        self.shared.state.borrow().qpair.qid()
    }

    /// The queue pair's counters.
    pub fn stats(&self) -> QpairStats {
        self.shared.state.borrow().qpair.stats()
    }

    /// Commands in flight.
    pub fn in_flight(&self) -> usize {
        self.shared.state.borrow().qpair.in_flight()
    }

    /// Reads `buf.len()` bytes from block `lba` into `buf`.
    pub fn read<'a>(
        &'a self,
        ns: &'a Namespace,
        lba: u64,
        buf: &'a mut DmaBuffer,
    ) -> impl Future<Output = Result<()>> + 'a {
        self.io(ns, lba, AsyncOp::Read(BorrowedRange::of(buf)))
    }

    /// Writes `buf` at block `lba`.
    pub fn write<'a>(
        &'a self,
        ns: &'a Namespace,
        lba: u64,
        buf: &'a DmaBuffer,
    ) -> impl Future<Output = Result<()>> + 'a {
        self.io(ns, lba, AsyncOp::Write(BorrowedRange::of(buf)))
    }

    /// Flushes the namespace's volatile write cache.
    pub fn flush<'a>(&'a self, ns: &'a Namespace) -> impl Future<Output = Result<()>> + 'a {
        self.io(ns, 0, AsyncOp::Flush)
    }

    /// Writes zeroes to `blocks` blocks from `lba`.
    pub fn write_zeroes<'a>(
        &'a self,
        ns: &'a Namespace,
        lba: u64,
        blocks: u64,
    ) -> impl Future<Output = Result<()>> + 'a {
        self.io(ns, lba, AsyncOp::WriteZeroes(blocks))
    }

    /// Deallocates `blocks` blocks from `lba` (Dataset Management, `AD`).
    pub fn trim<'a>(
        &'a self,
        ns: &'a Namespace,
        lba: u64,
        blocks: u64,
    ) -> impl Future<Output = Result<()>> + 'a {
        self.io(ns, lba, AsyncOp::Trim(blocks))
    }

    fn io<'a>(&'a self, ns: &'a Namespace, lba: u64, op: AsyncOp) -> Io<'a, F> {
        Io {
            shared: &self.shared,
            ns,
            lba,
            op,
            stage: Stage::Queue,
        }
    }
}

impl<F: PciFunction> Drop for AsyncQueuePair<F> {
    fn drop(&mut self) {
        remove_poller(self.poller);
    }
}

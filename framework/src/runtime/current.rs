//! The reactor running on this thread: its state ([`Inner`]), the thread-local that finds it,
//! and the free functions that act on it ([`spawn_local`], [`add_poller`], [`stop`], ...).
//! Below the loop and [`Reactor`](super::Reactor) in `reactor.rs` and below what reaches the
//! current reactor (`sleep`, interrupt waiters, core handles); above the pieces whose state it
//! holds (tasks, timers, event sources, pollers, the mailbox), so those never reach back up.
//!
//! A task's `Wake` is here, next to the thread-local its fast path checks (see `executor.rs`
//! for the two paths).

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::rc::Rc;
use std::sync::Arc;
use std::task::Wake;
use std::time::Instant;

use crossbeam::channel::Receiver;

use super::config::ReactorConfig;
use super::executor::{JoinHandle, TaskWaker, Tasks};
use super::mailbox::{Message, Shared};
use super::poller::{Poller, PollerId, Pollers};
use super::sources::Sources;
use super::sync::Slot;
use super::timer::Timers;

/// The loop's counters, read by `Reactor::stats`.
#[derive(Default)]
pub(super) struct Counters {
    pub(super) iterations: Cell<u64>,
    pub(super) idle_iterations: Cell<u64>,
    pub(super) sleeps: Cell<u64>,
    pub(super) tasks_polled: Cell<u64>,
    pub(super) messages: Cell<u64>,
}

pub(super) fn bump(c: &Cell<u64>, by: u64) {
    c.set(c.get().wrapping_add(by));
}

/// The reactor's state; `Rc`-shared with the thread-local "current reactor" while it runs.
pub(crate) struct Inner {
    pub(crate) shared: Arc<Shared>,
    /// `shared.id()`, kept here for the wake path.
    pub(super) id: u64,
    pub(super) rx: Receiver<Message>,
    pub(super) config: ReactorConfig,
    pub(super) tasks: RefCell<Tasks>,
    /// Keys of the tasks to poll in the next round (each at most once).
    pub(super) ready: RefCell<Vec<u64>>,
    /// The round being run: `ready` as it was when the round began (swapped, so neither
    /// queue gives up its capacity).
    pub(super) running: RefCell<Vec<u64>>,
    /// Capacity both queues keep: one entry per task and one for the `block_on` future.
    pub(super) queue_capacity: Cell<usize>,
    pub(super) main_ready: Cell<bool>,
    pub(super) pollers: RefCell<Pollers>,
    pub(crate) timers: RefCell<Timers>,
    pub(crate) sources: RefCell<Sources>,
    pub(super) stop: Cell<bool>,
    pub(super) empty_iterations: Cell<u32>,
    pub(super) idle_since: Cell<Option<Instant>>,
    pub(super) counters: Counters,
}

thread_local! {
    static CURRENT: RefCell<Option<Rc<Inner>>> = const { RefCell::new(None) };
}

/// Calls `f` with the reactor running on this thread, if any.
pub(crate) fn with_current<R>(f: impl FnOnce(&Rc<Inner>) -> R) -> Option<R> {
    CURRENT
        .try_with(|c| c.borrow().as_ref().map(f))
        .ok()
        .flatten()
}

/// Queues the task of `waker` on the local ready queue (unless it is queued already) if its
/// reactor is running on this thread. Returns whether it is.
#[inline]
pub(crate) fn push_local(waker: &TaskWaker) -> bool {
    CURRENT
        .try_with(|c| match &*c.borrow() {
            Some(inner) if inner.id == waker.reactor() => {
                waker.queue(&inner.ready);
                true
            }
            _ => false,
        })
        .unwrap_or(false)
}

/// Marks `inner` as this thread's current reactor for as long as it lives.
pub(super) struct Enter;

impl Enter {
    pub(super) fn new(inner: &Rc<Inner>) -> Enter {
        CURRENT.with(|c| {
            let mut current = c.borrow_mut();
            assert!(
                current.is_none(),
                "a userpci reactor is already running on this thread (nested block_on/run?)"
            );
            *current = Some(Rc::clone(inner));
        });
        Enter
    }
}

impl Drop for Enter {
    fn drop(&mut self) {
        let _ = CURRENT.try_with(|c| c.borrow_mut().take());
    }
}

impl Inner {
    pub(super) fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        let slot = Rc::new(Slot::new());
        let out = Rc::clone(&slot);
        let key = {
            let mut tasks = self.tasks.borrow_mut();
            let key = tasks.insert(Box::pin(async move { out.set(future.await) }), &self.shared);
            // Each task is queued at most once: with room for all of them (and the block_on
            // future), waking never grows the queue. `running` catches up when the queues
            // are swapped.
            let want = tasks.len() + 1;
            self.queue_capacity.set(self.queue_capacity.get().max(want));
            reserve(&mut self.ready.borrow_mut(), want);
            key
        };
        self.ready.borrow_mut().push(key);
        JoinHandle::new(slot)
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !push_local(self) {
            self.wake_remote();
        }
    }
}

/// Grows `queue` to hold `capacity` keys (allocates only when it has less).
pub(super) fn reserve(queue: &mut Vec<u64>, capacity: usize) {
    if queue.capacity() < capacity {
        let len = queue.len();
        queue.reserve(capacity - len);
    }
}

/// Spawns a task on the reactor running on this thread.
///
/// # Panics
///
/// Outside a running reactor (inside a task, poller, or cross-core closure is fine).
pub fn spawn_local<F>(future: F) -> JoinHandle<F::Output>
where
    F: Future + 'static,
{
    with_current(|inner| inner.spawn(future)).expect("spawn_local called outside a userpci reactor")
}

/// Registers a poller with the reactor running on this thread.
///
/// # Panics
///
/// Outside a running reactor.
pub fn add_poller<P: Poller + 'static>(poller: P) -> PollerId {
    with_current(|inner| inner.pollers.borrow_mut().add(Box::new(poller)))
        .expect("add_poller called outside a userpci reactor")
}

/// Unregisters a poller of the reactor running on this thread (no-op outside one).
pub fn remove_poller(id: PollerId) {
    let removed = with_current(|inner| inner.pollers.borrow_mut().remove(id)).flatten();
    drop(removed);
}

/// Makes the reactor running on this thread return from [`Reactor::run`](super::Reactor::run).
pub fn stop() {
    with_current(|inner| inner.stop.set(true));
}

/// The core the reactor running on this thread is pinned to (`None` if unpinned or none).
pub fn current_core() -> Option<usize> {
    with_current(|inner| inner.shared.core()).flatten()
}

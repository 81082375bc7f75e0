//! The task slab and its wakers.
//!
//! A task is a boxed `!Send` future in a slab slot, named by a 64-bit key: slot index in the low
//! half, slot generation in the high half, so a stale key (the task finished and the slot was
//! reused) is recognised and skipped. The slab holds each task behind an `Rc`, so the reactor
//! polls it in place (a reference-count increment, no move) while the slab stays free for
//! tasks that the poll spawns.
//!
//! Each task owns one `Arc<TaskWaker>`, made when it is spawned; the `Waker`s handed out are
//! clones of that `Arc` (a reference-count increment, no allocation). A task sits in the local
//! ready queue at most once however often it is woken:
//!
//! - on the reactor's own thread, while the reactor runs, a wake checks and sets the task's
//!   `queued` flag and pushes the key onto the local ready queue (a `Vec` whose capacity
//!   tracks the number of tasks, so it does not allocate). Only that thread ever touches
//!   `queued`, so this path has no read-modify-write atomics: the flag is atomic for `Sync`
//!   alone, accessed with relaxed loads and stores;
//! - anywhere else, a wake sets the `remote` flag (an `AcqRel` swap) and, if it was clear,
//!   sends the key through the reactor's crossbeam channel and, if the reactor is asleep,
//!   signals its doorbell eventfd. The reactor queues the key (if the task is not queued
//!   already) and clears `remote` with an `AcqRel` swap before the poll, so the poll sees
//!   what the waking thread wrote before a wake that found the flag set.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use super::mailbox::{Message, Shared};
use super::sync::Slot;

/// Key of the future passed to `block_on`, which lives on the caller's stack, not in the slab.
pub(crate) const MAIN_KEY: u64 = u32::MAX as u64;

pub(crate) fn key(index: u32, gen: u32) -> u64 {
    (u64::from(gen) << 32) | u64::from(index)
}

fn split(key: u64) -> (usize, u32) {
    // Truncation intended: the halves were packed by `key`.
    ((key as u32) as usize, (key >> 32) as u32)
}

/// The waker of one task.
pub(crate) struct TaskWaker {
    key: u64,
    /// The reactor's id, to recognise its thread.
    reactor: u64,
    /// Set while the task is in the local ready queue (or finished): further local wakes are
    /// no-ops. Read and written only on the reactor's thread (see the module docs).
    queued: AtomicBool,
    /// Set by a wake from another thread until the reactor is about to poll the task: further
    /// remote wakes send nothing.
    remote: AtomicBool,
    shared: Arc<Shared>,
}

impl TaskWaker {
    /// A waker for a task that is about to be queued (so it starts queued).
    pub(crate) fn new(key: u64, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            key,
            reactor: shared.id(),
            queued: AtomicBool::new(true),
            remote: AtomicBool::new(false),
            shared,
        })
    }

    /// The id of the reactor the task belongs to.
    #[inline]
    pub(crate) fn reactor(&self) -> u64 {
        self.reactor
    }

    /// Queues the task on `ready` unless it is queued already. Only on the reactor's thread.
    #[inline]
    pub(crate) fn queue(&self, ready: &RefCell<Vec<u64>>) {
        // Relaxed: only this thread reads or writes `queued`.
        if !self.queued.load(Ordering::Relaxed) {
            self.queued.store(true, Ordering::Relaxed);
            ready.borrow_mut().push(self.key);
        }
    }

    /// Called just before the task is polled: a wake during the poll queues it again.
    pub(crate) fn unschedule(&self) {
        self.queued.store(false, Ordering::Relaxed);
        // The swap (AcqRel) pairs with the one in `wake_by_ref`: what another thread wrote
        // before a wake that found `remote` set is visible to the poll that follows. A relaxed
        // load that misses a recent remote wake is harmless: that wake's message is still in
        // the channel, and the poll it causes clears the flag.
        if self.remote.load(Ordering::Relaxed) {
            self.remote.swap(false, Ordering::AcqRel);
        }
    }

    /// Called when the task completed: wakes from now on do nothing.
    pub(crate) fn finish(&self) {
        self.queued.store(true, Ordering::Relaxed);
        self.remote.store(true, Ordering::Release);
    }
}

// `impl Wake for TaskWaker` is in `current.rs`, next to the thread-local its fast path checks.

impl TaskWaker {
    /// A wake from another thread, or from this one while the reactor is not running.
    #[cold]
    #[inline(never)]
    pub(super) fn wake_remote(&self) {
        if self.remote.swap(true, Ordering::AcqRel) {
            return;
        }
        // The reactor is gone if this fails; there is nobody left to wake.
        let _ = self.shared.send(Message::Wake(self.key));
    }
}

pub(crate) struct Task {
    future: RefCell<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Waker,
    state: Arc<TaskWaker>,
}

impl Task {
    /// Polls the task once. Returns whether it completed.
    pub(crate) fn poll(&self) -> bool {
        self.state.unschedule();
        let mut cx = Context::from_waker(&self.waker);
        // Never borrowed already: only the reactor polls, and it polls one task at a time.
        if self.future.borrow_mut().as_mut().poll(&mut cx).is_ready() {
            self.state.finish();
            true
        } else {
            false
        }
    }

    /// Queues the task on `ready` unless it is queued already (a wake from another thread).
    pub(crate) fn queue(&self, ready: &RefCell<Vec<u64>>) {
        self.state.queue(ready);
    }
}

struct Entry {
    gen: u32,
    /// `None` while the slot is free.
    task: Option<Rc<Task>>,
}

/// The slab of tasks.
#[derive(Default)]
pub(crate) struct Tasks {
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Tasks {
    /// Number of live tasks.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    /// Stores `future` and returns its key; the caller queues the key (the waker starts
    /// queued).
    pub(crate) fn insert(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()>>>,
        shared: &Arc<Shared>,
    ) -> u64 {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push(Entry { gen: 0, task: None });
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 tasks")
            }
        };
        let entry = &mut self.entries[index as usize];
        let key = key(index, entry.gen);
        let state = TaskWaker::new(key, Arc::clone(shared));
        entry.task = Some(Rc::new(Task {
            future: RefCell::new(future),
            waker: Waker::from(Arc::clone(&state)),
            state,
        }));
        self.live += 1;
        key
    }

    /// The task `key` names, if it is still live.
    pub(crate) fn get(&self, key: u64) -> Option<&Rc<Task>> {
        let (index, gen) = split(key);
        let entry = self.entries.get(index)?;
        if entry.gen != gen {
            return None;
        }
        entry.task.as_ref()
    }

    /// Frees the slot of a task that completed. Returns the slab's reference, for the caller
    /// to drop outside the borrow.
    pub(crate) fn remove(&mut self, key: u64) -> Option<Rc<Task>> {
        let (index, gen) = split(key);
        let entry = &mut self.entries[index];
        debug_assert!(entry.task.is_some() && entry.gen == gen);
        let task = entry.task.take();
        entry.gen = entry.gen.wrapping_add(1);
        self.free
            .push(u32::try_from(index).expect("index came from a u32"));
        self.live -= 1;
        task
    }

    /// Takes every task out, for dropping them while the reactor still exists.
    pub(crate) fn drain(&mut self) -> Vec<Rc<Task>> {
        self.live = 0;
        self.free.clear();
        std::mem::take(&mut self.entries)
            .into_iter()
            .filter_map(|e| e.task)
            .collect()
    }
}

/// The output of a task started with [`spawn_local`](super::spawn_local) or
/// [`Reactor::spawn`](super::Reactor::spawn).
///
/// Await it for the value; dropping it detaches the task, which keeps running.
pub struct JoinHandle<T> {
    slot: Rc<Slot<T>>,
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(slot: Rc<Slot<T>>) -> Self {
        JoinHandle { slot }
    }

    /// Whether the task has completed (and its value not taken yet).
    pub fn is_finished(&self) -> bool {
        self.slot.is_set()
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.slot.poll_take(cx)
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("finished", &self.is_finished())
            .finish()
    }
}

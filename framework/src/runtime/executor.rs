//! The task slab and its wakers.
//!
//! A task is a boxed `!Send` future in a slab slot, named by a 64-bit key: slot index in the low
//! half, slot generation in the high half, so a stale key (the task finished and the slot was
//! reused) is recognised and skipped.
//!
//! Each task owns one `Arc<TaskWaker>`, made when it is spawned; the `Waker`s handed out are
//! clones of that `Arc` (a reference-count increment, no allocation). Waking sets the task's
//! `scheduled` flag, so a task sits in a run queue at most once however often it is woken, and:
//!
//! - on the reactor's own thread, while the reactor runs, pushes the key onto the local ready
//!   queue (a `VecDeque` whose capacity tracks the number of tasks, so it does not allocate);
//! - anywhere else, sends the key through the reactor's crossbeam channel and, if the reactor
//!   is asleep, signals its doorbell eventfd.

use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use super::cross_core::{Message, Shared};
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
    /// Set while the task is queued (or finished): further wakes are no-ops.
    scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl TaskWaker {
    /// A waker for a task that is about to be queued (so it starts scheduled).
    pub(crate) fn new(key: u64, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            key,
            scheduled: AtomicBool::new(true),
            shared,
        })
    }

    /// Called just before the task is polled: a wake during the poll queues it again.
    pub(crate) fn unschedule(&self) {
        // AcqRel pairs with the swap in `wake_by_ref`: what the waker's thread wrote before
        // waking is visible to the poll that follows.
        self.scheduled.swap(false, Ordering::AcqRel);
    }

    /// Called when the task completed: wakes from now on do nothing.
    pub(crate) fn finish(&self) {
        self.scheduled.store(true, Ordering::Release);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        if !super::reactor::push_local(self.shared.id(), self.key) {
            // The reactor is gone if this fails; there is nobody left to wake.
            let _ = self.shared.send(Message::Wake(self.key));
        }
    }
}

pub(crate) struct Task {
    future: Pin<Box<dyn Future<Output = ()>>>,
    waker: Waker,
    state: Arc<TaskWaker>,
}

impl Task {
    /// Polls the task once. Returns whether it completed.
    pub(crate) fn poll(&mut self) -> bool {
        self.state.unschedule();
        let mut cx = Context::from_waker(&self.waker);
        if self.future.as_mut().poll(&mut cx).is_ready() {
            self.state.finish();
            true
        } else {
            false
        }
    }
}

struct Entry {
    gen: u32,
    live: bool,
    /// `None` while the task is being polled (it is moved out so it can spawn and wake).
    task: Option<Task>,
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
    /// scheduled).
    pub(crate) fn insert(
        &mut self,
        future: Pin<Box<dyn Future<Output = ()>>>,
        shared: &Arc<Shared>,
    ) -> u64 {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    live: false,
                    task: None,
                });
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 tasks")
            }
        };
        let entry = &mut self.entries[index as usize];
        let key = key(index, entry.gen);
        let state = TaskWaker::new(key, Arc::clone(shared));
        entry.live = true;
        entry.task = Some(Task {
            future,
            waker: Waker::from(Arc::clone(&state)),
            state,
        });
        self.live += 1;
        key
    }

    /// Moves the task out for polling, if `key` still names a live task.
    pub(crate) fn take(&mut self, key: u64) -> Option<Task> {
        let (index, gen) = split(key);
        let entry = self.entries.get_mut(index)?;
        if entry.gen != gen || !entry.live {
            return None;
        }
        entry.task.take()
    }

    /// Puts a task back after a poll that returned `Pending`.
    pub(crate) fn put_back(&mut self, key: u64, task: Task) {
        let (index, _) = split(key);
        self.entries[index].task = Some(task);
    }

    /// Frees the slot of a task that completed (it was taken out, and the caller drops it).
    pub(crate) fn remove(&mut self, key: u64) {
        let (index, gen) = split(key);
        let entry = &mut self.entries[index];
        debug_assert!(entry.live && entry.gen == gen);
        entry.live = false;
        entry.task = None;
        entry.gen = entry.gen.wrapping_add(1);
        self.free
            .push(u32::try_from(index).expect("index came from a u32"));
        self.live -= 1;
    }

    /// Takes every task out, for dropping them while the reactor still exists.
    pub(crate) fn drain(&mut self) -> Vec<Task> {
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

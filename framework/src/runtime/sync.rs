//! Single-core building blocks for async drivers: a completion slot a poller fills, and
//! `yield_now`.
//!
//! A driver's async method is its polled API plus a [`Slot`]: submit the command, then await
//! the slot that the completion poller [`set`](Slot::set)s when the command's completion
//! arrives. The slot stores the value and at most one `Waker` inline, so an await costs no
//! allocation (a waker clone is a reference-count increment, skipped when the same task waits
//! again).

use std::cell::Cell;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

/// A one-value mailbox between a poller (or any code on the core) and one waiting task.
///
/// `!Sync`: it lives on one core, typically inside a queue pair's per-command state.
///
/// ```
/// use std::rc::Rc;
/// use userpci_framework::runtime::{Reactor, ReactorConfig, Slot};
///
/// let reactor = Reactor::new(ReactorConfig::default()).unwrap();
/// let done = Rc::new(Slot::new());
/// let from_poller = Rc::clone(&done);
/// let mut polls = 0;
/// reactor.add_poller(move || {
///     polls += 1;
///     if polls == 3 {
///         from_poller.set(42u32); // e.g. the completion of command 7 arrived
///     }
///     polls == 3
/// });
/// assert_eq!(reactor.block_on(async { done.wait().await }).unwrap(), 42);
/// ```
pub struct Slot<T> {
    value: Cell<Option<T>>,
    waker: Cell<Option<Waker>>,
}

impl<T> Slot<T> {
    /// An empty slot.
    pub const fn new() -> Self {
        Slot {
            value: Cell::new(None),
            waker: Cell::new(None),
        }
    }

    /// Stores `value` (replacing one nobody took) and wakes the waiting task, if any.
    ///
    /// The waker stays in the slot, so the same task waiting again costs no reference-count
    /// traffic; a later `set` while nobody waits may therefore poll that task once for
    /// nothing, which futures tolerate.
    pub fn set(&self, value: T) {
        self.value.set(Some(value));
        if let Some(waker) = self.waker.take() {
            waker.wake_by_ref();
            self.waker.set(Some(waker));
        }
    }

    /// Takes the value without waiting.
    pub fn take(&self) -> Option<T> {
        self.value.take()
    }

    /// Whether a value is waiting to be taken.
    pub fn is_set(&self) -> bool {
        let value = self.value.take();
        let set = value.is_some();
        self.value.set(value);
        set
    }

    /// Waits for the value and takes it.
    pub fn wait(&self) -> SlotWait<'_, T> {
        SlotWait { slot: self }
    }

    /// Takes the value if there is one, else remembers `cx`'s waker for [`set`](Slot::set).
    pub fn poll_take(&self, cx: &mut Context<'_>) -> Poll<T> {
        if let Some(value) = self.value.take() {
            return Poll::Ready(value);
        }
        let waker = match self.waker.take() {
            Some(old) if old.will_wake(cx.waker()) => old,
            _ => cx.waker().clone(),
        };
        self.waker.set(Some(waker));
        Poll::Pending
    }
}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Slot").field("set", &self.is_set()).finish()
    }
}

/// Future of [`Slot::wait`].
#[must_use = "futures do nothing unless awaited"]
pub struct SlotWait<'a, T> {
    slot: &'a Slot<T>,
}

impl<T> Future for SlotWait<'_, T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        self.slot.poll_take(cx)
    }
}

impl<T> fmt::Debug for SlotWait<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotWait").finish_non_exhaustive()
    }
}

/// Lets the other ready tasks and the pollers run once before continuing.
///
/// Works on any executor: it wakes itself and returns `Pending` once.
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// Future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn slot_wakes_the_waiter_once_and_hands_over_the_value() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let slot = Slot::new();
        assert!(slot.poll_take(&mut cx).is_pending());
        assert!(slot.poll_take(&mut cx).is_pending()); // same waker kept, not duplicated
        assert!(!slot.is_set());
        slot.set(5);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(slot.is_set());
        assert_eq!(slot.poll_take(&mut cx), Poll::Ready(5));
        // The waker was kept: waiting again reuses it, and a set while nobody waits wakes
        // that task once for nothing.
        slot.set(6);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        assert_eq!(slot.take(), Some(6));
        let other = Arc::new(Count(AtomicUsize::new(0)));
        let other_waker = Waker::from(Arc::clone(&other));
        assert!(slot
            .poll_take(&mut Context::from_waker(&other_waker))
            .is_pending());
        slot.set(7); // the new waiter replaced the old one
        assert_eq!(other.0.load(Ordering::SeqCst), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn yield_now_is_pending_once_and_wakes_itself() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut cx = Context::from_waker(&waker);
        let mut y = yield_now();
        assert!(Pin::new(&mut y).poll(&mut cx).is_pending());
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(Pin::new(&mut y).poll(&mut cx).is_ready());
    }
}

//! `sleep` and `sleep_until`: futures that arm a timer on the current reactor's timer heap
//! (`timer.rs`).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use super::current::{self, Inner};
use super::timer::TimerKey;
use super::CoreLocal;

/// Waits until `duration` has passed, on the current reactor's timers.
///
/// # Panics
///
/// When polled outside a userpci reactor (e.g. inside tokio): use that runtime's timers there.
pub fn sleep(duration: Duration) -> Sleep {
    sleep_until(Instant::now() + duration)
}

/// Waits until `deadline`, on the current reactor's timers. See [`sleep`].
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep {
        deadline,
        registered: None,
        _core: CoreLocal::new(),
    }
}

/// Future of [`sleep`] and [`sleep_until`].
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    registered: Option<(Weak<Inner>, TimerKey)>,
    _core: CoreLocal,
}

impl Sleep {
    /// When the sleep ends.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    fn unregister(&mut self) {
        if let Some((inner, key)) = self.registered.take() {
            if let Some(inner) = inner.upgrade() {
                inner.timers.borrow_mut().cancel(key);
            }
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= self.deadline {
            self.unregister();
            return Poll::Ready(());
        }
        if let Some((inner, key)) = &self.registered {
            if let Some(inner) = inner.upgrade() {
                inner.timers.borrow_mut().update_waker(*key, cx.waker());
                return Poll::Pending;
            }
        }
        let deadline = self.deadline;
        let registered = current::with_current(|inner| {
            let key = inner.timers.borrow_mut().insert(deadline, cx.waker());
            (Rc::downgrade(inner), key)
        })
        .expect("userpci runtime::sleep polled outside a userpci reactor");
        self.registered = Some(registered);
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.unregister();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("registered", &self.registered.is_some())
            .finish()
    }
}

//! Waiting for interrupt vectors on the reactor.
//!
//! An [`InterruptWaiter`] registers a vector's eventfd with its reactor once; from then on the
//! reactor wakes from idle sleep when the vector fires, and [`InterruptWaiter::wait`] completes
//! with the number of interrupts since the last take. Awaiting again reuses the registration,
//! so a driver's interrupt loop does not allocate per interrupt.
//!
//! The count belongs to whoever takes it: a driver whose completion poller handles the device
//! keeps a waiter only to be woken, and takes the count in the poller
//! ([`InterruptVector::take`]).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::rc::{Rc, Weak};
use std::task::{Context, Poll};

use super::current::{self, Inner};
use super::sources::SourceKey;
use crate::device::InterruptVector;
use crate::error::{Error, Result};

/// A vector registered with the current core's reactor. `!Send`.
pub struct InterruptWaiter {
    vector: InterruptVector,
    key: SourceKey,
    inner: Weak<Inner>,
    /// The reactor's core, for the error when it is gone.
    core: usize,
}

impl InterruptWaiter {
    /// Registers `vector` with the reactor running on this thread.
    ///
    /// # Panics
    ///
    /// Outside a running reactor; use [`Reactor::watch_interrupt`](super::Reactor::watch_interrupt)
    /// to register before the reactor starts.
    pub fn new(vector: &InterruptVector) -> Result<Self> {
        current::with_current(|inner| Self::register(inner, vector))
            .expect("InterruptWaiter::new called outside a userpci reactor")
    }

    pub(crate) fn register(inner: &Rc<Inner>, vector: &InterruptVector) -> Result<Self> {
        let key = inner
            .sources
            .borrow_mut()
            .register(vector.event())
            .map_err(|source| Error::Runtime {
                op: "watch interrupt eventfd",
                source,
            })?;
        Ok(InterruptWaiter {
            vector: vector.clone(),
            key,
            inner: Rc::downgrade(inner),
            core: inner.shared.label(),
        })
    }

    /// The vector this waits on.
    pub fn vector(&self) -> &InterruptVector {
        &self.vector
    }

    /// Waits until the vector has fired; returns the interrupts counted since the last take.
    pub fn wait(&mut self) -> WaitInterrupt<'_> {
        WaitInterrupt { waiter: self }
    }

    fn poll_wait(&self, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        match self.vector.take() {
            Ok(0) => {}
            other => return Poll::Ready(other),
        }
        let Some(inner) = self.inner.upgrade() else {
            return Poll::Ready(Err(Error::RuntimeGone { core: self.core }));
        };
        inner.sources.borrow_mut().add_waiter(self.key, cx.waker());
        // A signal between the take above and the registration is not lost: the watch is
        // armed already (multishot poll, or level-triggered ppoll) and fires on the next look.
        Poll::Pending
    }
}

impl Drop for InterruptWaiter {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.upgrade() {
            if let Err(err) = inner.sources.borrow_mut().unregister(self.key) {
                tracing::warn!(vector = self.vector.vector(), error = %err, "cannot unwatch interrupt");
            }
        }
    }
}

impl fmt::Debug for InterruptWaiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InterruptWaiter")
            .field("vector", &self.vector.vector())
            .finish_non_exhaustive()
    }
}

/// Future of [`InterruptWaiter::wait`]: the interrupt count, or the eventfd's read error.
#[must_use = "futures do nothing unless awaited"]
pub struct WaitInterrupt<'a> {
    waiter: &'a mut InterruptWaiter,
}

impl Future for WaitInterrupt<'_> {
    type Output = Result<u64>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64>> {
        self.waiter.poll_wait(cx)
    }
}

impl fmt::Debug for WaitInterrupt<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitInterrupt")
            .field("vector", &self.waiter.vector.vector())
            .finish()
    }
}

/// Waits once for `vector` on the current reactor: registers, waits, unregisters.
///
/// For a loop, keep an [`InterruptWaiter`] instead.
///
/// # Panics
///
/// When polled outside a userpci reactor.
pub async fn wait_interrupt(vector: &InterruptVector) -> Result<u64> {
    let mut waiter = InterruptWaiter::new(vector)?;
    waiter.wait().await
}

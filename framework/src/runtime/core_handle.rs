//! [`CoreHandle`]: a `Send + Sync` handle on one core's reactor, over its mailbox.

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use super::current;
use super::mailbox::{Message, Shared};
use crate::error::Result;

/// A `Send + Sync` handle to one core's reactor: submit work to it, wake it, stop it.
#[derive(Clone)]
pub struct CoreHandle {
    shared: Arc<Shared>,
}

impl CoreHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        CoreHandle { shared }
    }

    /// The handle of the reactor running on this thread, if any.
    pub fn current() -> Option<CoreHandle> {
        current::with_current(|inner| CoreHandle::new(Arc::clone(&inner.shared)))
    }

    /// The core the reactor is pinned to; `None` for a reactor on an unpinned thread.
    pub fn core(&self) -> Option<usize> {
        self.shared.core()
    }

    /// Runs `f` on the reactor's thread, between two loop iterations.
    pub fn run<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.send(Message::Run(Box::new(f)))
    }

    /// Spawns the future that `factory` builds, on the reactor's thread.
    ///
    /// The future may be `!Send` (hold queue pairs, `Rc`s): only the factory crosses threads.
    pub fn spawn<F, Fut>(&self, factory: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.run(move || {
            current::spawn_local(factory());
        })
    }

    /// Wakes the reactor if it sleeps.
    pub fn wake(&self) {
        self.shared.ring();
    }

    /// Whether the reactor is in (or about to enter) its idle sleep.
    pub fn is_sleeping(&self) -> bool {
        self.shared.is_sleeping()
    }

    /// Makes [`Reactor::run`](super::Reactor::run) return after its current iteration.
    pub fn stop(&self) -> Result<()> {
        self.shared.send(Message::Stop)
    }
}

impl fmt::Debug for CoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreHandle")
            .field("core", &self.shared.core())
            .field("sleeping", &self.is_sleeping())
            .finish()
    }
}

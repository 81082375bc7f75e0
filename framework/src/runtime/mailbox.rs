//! How a core is reached from elsewhere: the [`Message`]s a reactor takes and the [`Shared`]
//! half of a reactor other threads hold. Below the reactor, its tasks' wakers and the
//! [`CoreHandle`](super::CoreHandle) built on it.
//!
//! Everything goes through the reactor's crossbeam channel: closures to run, futures to spawn
//! (sent as `Send` factories, since the futures themselves are `!Send`), task wakes from other
//! threads, and stop requests. A sender rings the reactor's doorbell eventfd only when the
//! reactor is asleep (the `sleeping` flag, checked after the send with a `SeqCst` fence that
//! pairs with the reactor's fence between setting the flag and its last look at the channel),
//! so messages to a busy core cost no system call.

use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam::channel::Sender;

use super::affinity;
use crate::device::EventFd;
use crate::error::{Error, Result};

pub(crate) enum Message {
    /// A task of this reactor was woken from another thread.
    Wake(u64),
    /// Run this on the reactor's thread.
    Run(Box<dyn FnOnce() + Send>),
    /// Return from `Reactor::run`.
    Stop,
}

/// The part of a reactor that other threads hold.
pub(crate) struct Shared {
    id: u64,
    core: Option<usize>,
    label: usize,
    tx: Sender<Message>,
    doorbell: Arc<EventFd>,
    sleeping: AtomicBool,
}

impl Shared {
    pub(crate) fn new(core: Option<usize>, tx: Sender<Message>, doorbell: Arc<EventFd>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            core,
            label: core.or_else(affinity::current_cpu).unwrap_or(0),
            tx,
            doorbell,
            sleeping: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn core(&self) -> Option<usize> {
        self.core
    }

    /// The pinned core, or for an unpinned reactor the CPU it was created on (for messages).
    pub(crate) fn label(&self) -> usize {
        self.label
    }

    pub(crate) fn send(&self, msg: Message) -> Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| Error::RuntimeGone { core: self.label })?;
        // Pairs with the fence in `announce_sleep`: either the reactor sees the message in its
        // last look, or we see it sleeping here and ring.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.ring();
        }
        Ok(())
    }

    /// Wakes the reactor if it is asleep (only the first of several concurrent callers rings).
    pub(crate) fn ring(&self) {
        if self.sleeping.swap(false, Ordering::AcqRel) {
            if let Err(err) = self.doorbell.signal() {
                tracing::warn!(core = self.label, error = %err, "cannot ring reactor doorbell");
            }
        }
    }

    /// Called by the reactor before its last look at its queues ahead of sleeping.
    pub(crate) fn announce_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }
}

//! The eventfds a reactor wakes on: its own cross-core doorbell (always index 0) and the
//! interrupt vectors that tasks and pollers registered, each with the wakers waiting on it.
//!
//! Registrations are counted per eventfd (several waiters on one vector share one watch), and
//! keyed by `(index, generation)` so a completion for a slot that was freed and reused is
//! ignored.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Duration;

use super::sleep::{Backend, GEN_MASK};
use crate::device::EventFd;

/// Index of the reactor's doorbell, which cross-core senders signal while it sleeps.
pub(crate) const DOORBELL: u32 = 0;

/// A registration: slot index and generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SourceKey {
    index: u32,
    gen: u32,
}

struct Slot {
    gen: u32,
    fd: Option<Arc<EventFd>>,
    refs: u32,
    waiters: Vec<Waker>,
}

pub(crate) struct Sources {
    slots: Vec<Slot>,
    free: Vec<u32>,
    backend: Backend,
}

impl Sources {
    /// A set holding only the doorbell.
    pub(crate) fn new(mut backend: Backend, doorbell: Arc<EventFd>) -> io::Result<Sources> {
        backend.add(DOORBELL, 0, doorbell.as_raw_fd())?;
        Ok(Sources {
            slots: vec![Slot {
                gen: 0,
                fd: Some(doorbell),
                refs: 1,
                waiters: Vec::new(),
            }],
            free: Vec::new(),
            backend,
        })
    }

    pub(crate) fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Watches `fd`, or counts one more registration if it is watched already.
    pub(crate) fn register(&mut self, fd: &Arc<EventFd>) -> io::Result<SourceKey> {
        if let Some(index) = self
            .slots
            .iter()
            .position(|s| s.fd.as_ref().is_some_and(|f| Arc::ptr_eq(f, fd)))
        {
            let slot = &mut self.slots[index];
            slot.refs += 1;
            return Ok(SourceKey {
                index: to_u32(index),
                gen: slot.gen,
            });
        }
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    fd: None,
                    refs: 0,
                    waiters: Vec::new(),
                });
                to_u32(self.slots.len() - 1)
            }
        };
        let slot = &mut self.slots[index as usize];
        self.backend.add(index, slot.gen, fd.as_raw_fd())?;
        slot.fd = Some(Arc::clone(fd));
        slot.refs = 1;
        Ok(SourceKey {
            index,
            gen: slot.gen,
        })
    }

    /// Drops one registration; the last one stops the watch.
    pub(crate) fn unregister(&mut self, key: SourceKey) -> io::Result<()> {
        let Some(slot) = self.slot_mut(key) else {
            return Ok(());
        };
        slot.refs -= 1;
        if slot.refs > 0 {
            return Ok(());
        }
        slot.fd = None;
        slot.waiters.clear();
        slot.gen = (slot.gen + 1) & GEN_MASK;
        self.free.push(key.index);
        self.backend.remove(key.index, key.gen)
    }

    /// Wakes `waker` the next time `key` fires. Allocates only while the waiter list grows.
    pub(crate) fn add_waiter(&mut self, key: SourceKey, waker: &Waker) {
        if let Some(slot) = self.slot_mut(key) {
            if !slot.waiters.iter().any(|w| w.will_wake(waker)) {
                slot.waiters.push(waker.clone());
            }
        }
    }

    /// Handles what fired since the last look, without blocking. Returns whether anything did.
    pub(crate) fn check(&mut self) -> io::Result<bool> {
        let slots = &mut self.slots;
        let mut any = false;
        self.backend.check(&mut |index, gen| {
            any = true;
            fire(slots, index, gen);
        })?;
        Ok(any)
    }

    /// Sleeps until a watched fd fires or `timeout` passes, then handles what fired.
    pub(crate) fn sleep(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        let slots = &mut self.slots;
        self.backend
            .sleep(timeout, &mut |index, gen| fire(slots, index, gen))
    }

    fn slot_mut(&mut self, key: SourceKey) -> Option<&mut Slot> {
        self.slots
            .get_mut(key.index as usize)
            .filter(|s| s.gen == key.gen && s.fd.is_some())
    }
}

fn fire(slots: &mut [Slot], index: u32, gen: u32) {
    let Some(slot) = slots.get_mut(index as usize) else {
        return;
    };
    if slot.gen != gen {
        return;
    }
    if index == DOORBELL {
        // Only wakes the loop; the messages themselves are in the channel. Clearing the count
        // keeps a level-triggered backend from waking again for the same signal.
        if let Some(fd) = &slot.fd {
            let _ = fd.take();
        }
        return;
    }
    for waker in slot.waiters.drain(..) {
        waker.wake();
    }
}

fn to_u32(index: usize) -> u32 {
    u32::try_from(index).expect("fewer than 2^32 watched eventfds")
}

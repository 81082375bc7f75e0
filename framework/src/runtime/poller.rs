//! Pollers: the functions a reactor calls on every iteration (queue completions, link status,
//! watchdogs).

use std::fmt;
use std::mem;

/// Something the reactor calls on every loop iteration. Returns whether it did work (found a
/// completion, moved a packet, ...); a reactor whose pollers and tasks all report no work for
/// the idle threshold goes to sleep.
///
/// Implemented for every `FnMut() -> bool`. Pollers may be `!Send`: they live on one core.
pub trait Poller {
    /// Does one round of work without blocking.
    fn poll(&mut self) -> bool;
}

impl<F: FnMut() -> bool> Poller for F {
    fn poll(&mut self) -> bool {
        self()
    }
}

/// Names a registered poller, for [`remove_poller`](super::Reactor::remove_poller).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct PollerId(u64);

type Entry = (PollerId, Box<dyn Poller>);

/// The registered pollers. While they run, the list is moved out (so a poller can add or
/// remove pollers); additions land in `list` meanwhile, removals are queued.
#[derive(Default)]
pub(crate) struct Pollers {
    list: Vec<Entry>,
    next_id: u64,
    running: bool,
    removed: Vec<PollerId>,
}

impl Pollers {
    pub(crate) fn add(&mut self, poller: Box<dyn Poller>) -> PollerId {
        let id = PollerId(self.next_id);
        self.next_id += 1;
        self.list.push((id, poller));
        id
    }

    /// Removes `id` now, or after the current round if the pollers are running. Returns the
    /// poller so the caller drops it outside the borrow.
    pub(crate) fn remove(&mut self, id: PollerId) -> Option<Box<dyn Poller>> {
        if let Some(pos) = self.list.iter().position(|(p, _)| *p == id) {
            return Some(self.list.remove(pos).1);
        }
        if self.running {
            self.removed.push(id);
        }
        None
    }

    pub(crate) fn len(&self) -> usize {
        self.list.len()
    }

    /// Starts a round: hands out the list.
    pub(crate) fn begin(&mut self) -> Vec<Entry> {
        self.running = true;
        mem::take(&mut self.list)
    }

    /// Ends a round: takes the list back with the additions, minus the removals, which are
    /// returned for dropping outside the borrow.
    pub(crate) fn end(&mut self, mut list: Vec<Entry>) -> Vec<Box<dyn Poller>> {
        self.running = false;
        list.append(&mut self.list);
        let mut dropped = Vec::new();
        if !self.removed.is_empty() {
            for id in self.removed.drain(..) {
                if let Some(pos) = list.iter().position(|(p, _)| *p == id) {
                    dropped.push(list.remove(pos).1);
                }
            }
        }
        self.list = list;
        dropped
    }
}

impl fmt::Debug for Pollers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pollers")
            .field("count", &self.list.len())
            .finish()
    }
}

/// Runs one round of `list`. Returns whether any poller did work.
pub(crate) fn run_round(list: &mut [Entry]) -> bool {
    let mut work = false;
    for (_, poller) in list.iter_mut() {
        work |= poller.poll();
    }
    work
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_and_removals_during_a_round_apply_after_it() {
        let mut pollers = Pollers::default();
        let a = pollers.add(Box::new(|| true));
        let b = pollers.add(Box::new(|| false));
        let mut list = pollers.begin();
        assert!(run_round(&mut list));
        let c = pollers.add(Box::new(|| false));
        assert!(pollers.remove(a).is_none()); // queued
        let dropped = pollers.end(list);
        assert_eq!(dropped.len(), 1);
        let ids: Vec<_> = pollers.list.iter().map(|(id, _)| *id).collect();
        assert_eq!(ids, vec![b, c]);
        assert!(pollers.remove(b).is_some());
        assert_eq!(pollers.len(), 1);
    }
}

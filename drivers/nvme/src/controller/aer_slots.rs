//! The Asynchronous Event Requests the driver keeps outstanding (Base 2.0 "Asynchronous Event
//! Request command"): a fixed array of slots, each owning one reserved admin CID, so that a
//! completion reaped while another admin command runs is kept, not dropped, and polling
//! allocates nothing. A leaf below the admin queue (which routes completions here) and the
//! event poller on top (`events.rs`).

use crate::spec::Status;

/// Most requests kept outstanding, whatever `AERL` says (QEMU's default `AERL` is 3: 4).
pub(crate) const MAX_ASYNC_EVENT_REQUESTS: usize = 8;

/// Admin CIDs from here up belong to the slots; other admin commands wrap below it.
pub(crate) const AER_CID_BASE: u16 = 0xfff0;

/// One slot's request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AerSlot {
    /// Not submitted (not wanted, or waiting to be armed again).
    Idle,
    /// Submitted; the controller holds it until an event occurs.
    Outstanding,
    /// Completed with this DW0 and status, not yet handed to the application.
    Completed { dw0: u32, status: Status },
    /// Completed with an error (limit exceeded, aborted): not armed again until a reset.
    Retired,
}

/// The slots, and how many of them are wanted (0 until asynchronous events are enabled).
#[derive(Debug)]
pub(crate) struct AerSlots {
    slots: [AerSlot; MAX_ASYNC_EVENT_REQUESTS],
    wanted: usize,
    /// Asynchronous Event Configuration to set again after a reset.
    pub(crate) config: u32,
    /// Completions with an error status (not re-armed).
    pub(crate) failed: u64,
}

impl AerSlots {
    pub(crate) fn new() -> Self {
        AerSlots {
            slots: [AerSlot::Idle; MAX_ASYNC_EVENT_REQUESTS],
            wanted: 0,
            config: 0,
            failed: 0,
        }
    }

    /// The CID of slot `index`.
    pub(crate) const fn cid(index: usize) -> u16 {
        AER_CID_BASE + index as u16
    }

    /// The slot owning `cid`, if it is one of the reserved CIDs in use.
    pub(crate) fn slot_of(&self, cid: u16) -> Option<usize> {
        let index = usize::from(cid.checked_sub(AER_CID_BASE)?);
        (index < self.wanted).then_some(index)
    }

    /// Slots wanted.
    pub(crate) fn wanted(&self) -> usize {
        self.wanted
    }

    /// Sets how many slots are wanted (at most [`MAX_ASYNC_EVENT_REQUESTS`]).
    pub(crate) fn set_wanted(&mut self, wanted: usize) {
        self.wanted = wanted.min(MAX_ASYNC_EVENT_REQUESTS);
    }

    /// Requests submitted and not completed.
    pub(crate) fn outstanding(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| **s == AerSlot::Outstanding)
            .count()
    }

    /// Records the completion of `cid`; false when it is not an outstanding request (a
    /// duplicate or a stale completion, which is ignored).
    pub(crate) fn complete(&mut self, cid: u16, dw0: u32, status: Status) -> bool {
        match self.slot_of(cid) {
            Some(index) if self.slots[index] == AerSlot::Outstanding => {
                self.slots[index] = AerSlot::Completed { dw0, status };
                true
            }
            _ => false,
        }
    }

    /// Takes the oldest-index completed slot, leaving it idle.
    pub(crate) fn take_completed(&mut self) -> Option<(usize, u32, Status)> {
        self.slots[..self.wanted]
            .iter_mut()
            .enumerate()
            .find_map(|(index, slot)| match *slot {
                AerSlot::Completed { dw0, status } => {
                    *slot = AerSlot::Idle;
                    Some((index, dw0, status))
                }
                _ => None,
            })
    }

    /// The next wanted slot that is idle.
    pub(crate) fn next_idle(&self) -> Option<usize> {
        self.slots[..self.wanted]
            .iter()
            .position(|s| *s == AerSlot::Idle)
    }

    /// Keeps slot `index` from being armed again until the next reset.
    pub(crate) fn retire(&mut self, index: usize) {
        self.slots[index] = AerSlot::Retired;
    }

    /// Marks slot `index` submitted.
    pub(crate) fn mark_outstanding(&mut self, index: usize) {
        self.slots[index] = AerSlot::Outstanding;
    }

    /// A controller reset drops every held request without a completion: all slots idle
    /// (a completion not yet handed over is dropped too: its event is reported again or
    /// was cleared by the reset).
    pub(crate) fn reset(&mut self) {
        self.slots = [AerSlot::Idle; MAX_ASYNC_EVENT_REQUESTS];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_track_their_cids() {
        let mut slots = AerSlots::new();
        assert_eq!(slots.slot_of(AER_CID_BASE), None, "nothing wanted yet");
        slots.set_wanted(20);
        assert_eq!(slots.wanted(), MAX_ASYNC_EVENT_REQUESTS);
        slots.set_wanted(2);
        assert_eq!(slots.slot_of(AerSlots::cid(1)), Some(1));
        assert_eq!(slots.slot_of(AerSlots::cid(2)), None);
        assert_eq!(slots.slot_of(5), None);
        assert_eq!(slots.next_idle(), Some(0));
        slots.mark_outstanding(0);
        slots.mark_outstanding(1);
        assert_eq!((slots.outstanding(), slots.next_idle()), (2, None));
        assert!(slots.complete(AerSlots::cid(1), 0x0002_0101, Status::SUCCESS));
        assert!(
            !slots.complete(AerSlots::cid(1), 0, Status::SUCCESS),
            "a duplicate completion is refused"
        );
        assert_eq!(
            slots.take_completed(),
            Some((1, 0x0002_0101, Status::SUCCESS))
        );
        assert_eq!(slots.take_completed(), None);
        assert_eq!(slots.next_idle(), Some(1));
        slots.retire(1);
        assert_eq!(slots.next_idle(), None, "a retired slot is not armed again");
        slots.reset();
        assert_eq!(slots.next_idle(), Some(0));
        assert_eq!(slots.outstanding(), 0);
    }
}

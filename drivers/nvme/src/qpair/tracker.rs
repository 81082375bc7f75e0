//! Command trackers and caller requests: fixed arrays with free lists, set up once.
//!
//! A **tracker** is one command slot. Its command identifier is its index, with a generation
//! count in the bits above the index (Linux's `nvme_cid` scheme), so a completion for a
//! tracker that was freed and reused is recognised as stale. A tracker keeps a copy of the
//! submission entry it sent, for re-issue after a controller reset.
//!
//! A **request** is what the caller submitted: one token, one optional buffer, and the number
//! of commands it was split into (MDTS). It completes once, when its last command completes,
//! with the first error any of them reported.

use std::time::Duration;

use crate::error::Error;
use crate::spec::SubmissionEntry;

/// Where a tracker stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TrackerState {
    /// On the free list.
    Free,
    /// Submitted (or queued for the next doorbell).
    InFlight,
    /// Timed out; an Abort was sent at `since`.
    Aborting { since: Duration },
    /// Taken back by a reset and not re-issued (too many re-issues): the next poll fails its
    /// request with `Error::Retriable`.
    Doomed,
}

/// One command slot.
#[derive(Clone, Debug)]
pub(crate) struct Tracker {
    pub(crate) state: TrackerState,
    generation: u16,
    pub(crate) request: u16,
    pub(crate) sqe: SubmissionEntry,
    /// The submission queue slot its entry was last written to.
    pub(crate) sq_slot: u16,
    /// When the controller was told about it (its doorbell write).
    pub(crate) submitted_at: Duration,
    /// Times re-issued after controller resets.
    pub(crate) reissues: u8,
}

/// CID FFFFh, reserved by the NVMe base specification: never assigned, never matched.
pub(crate) const RESERVED_CID: u16 = 0xffff;

/// Why a completion's CID names no command in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum CidError {
    /// CID FFFFh, which the NVMe base specification reserves: no submitted command carries it
    /// (controllers use it in some error completions), so it names no tracker.
    Reserved,
    /// The index is beyond the tracker array.
    OutOfRange,
    /// The tracker is free, or in use with another generation (a duplicate or stale entry).
    NotInFlight,
}

/// The tracker array and its free list.
#[derive(Debug)]
pub(crate) struct Trackers {
    items: Vec<Tracker>,
    free: Vec<u16>,
    /// Bits of the CID that hold the index; the rest hold the generation.
    index_bits: u32,
}

impl Trackers {
    /// `count` trackers (at most 65535).
    pub(crate) fn new(count: u16) -> Self {
        let index_bits = (u32::from(count).next_power_of_two())
            .trailing_zeros()
            .max(1);
        let items = (0..count)
            .map(|_| Tracker {
                state: TrackerState::Free,
                generation: 0,
                request: 0,
                sqe: SubmissionEntry::default(),
                sq_slot: 0,
                submitted_at: Duration::ZERO,
                reissues: 0,
            })
            .collect();
        // Popped from the end: hand out low indices first.
        let free = (0..count).rev().collect();
        Trackers {
            items,
            free,
            index_bits,
        }
    }

    /// Number of trackers.
    pub(crate) fn capacity(&self) -> usize {
        self.items.len()
    }

    /// Free trackers.
    pub(crate) fn available(&self) -> usize {
        self.free.len()
    }

    /// Trackers in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Takes a free tracker for `request`; returns its index.
    pub(crate) fn alloc(&mut self, request: u16) -> Option<u16> {
        let index = self.free.pop()?;
        let t = &mut self.items[usize::from(index)];
        debug_assert_eq!(t.state, TrackerState::Free);
        t.state = TrackerState::InFlight;
        t.request = request;
        t.reissues = 0;
        Some(index)
    }

    /// Frees a tracker; its next use gets a new generation, so late completions for this use
    /// are recognised.
    pub(crate) fn release(&mut self, index: u16) {
        let bits = 16 - self.index_bits;
        let t = &mut self.items[usize::from(index)];
        debug_assert_ne!(t.state, TrackerState::Free);
        t.state = TrackerState::Free;
        t.generation = if bits == 0 {
            0
        } else {
            (t.generation + 1) & ((1u32 << bits) - 1) as u16
        };
        // The last index with the last generation would make CID FFFFh, which is reserved:
        // skip that generation.
        if self.cid(index) == RESERVED_CID {
            let t = &mut self.items[usize::from(index)];
            t.generation = (t.generation + 1) & ((1u32 << bits) - 1) as u16;
        }
        self.free.push(index);
    }

    /// The CID for the tracker's current use.
    pub(crate) fn cid(&self, index: u16) -> u16 {
        let generation = self.items[usize::from(index)].generation;
        if self.index_bits >= 16 {
            index
        } else {
            index | (generation << self.index_bits)
        }
    }

    /// The tracker a completion's CID names, if that command is in flight.
    pub(crate) fn lookup(&self, cid: u16) -> Result<u16, CidError> {
        if cid == RESERVED_CID {
            return Err(CidError::Reserved);
        }
        let mask = if self.index_bits >= 16 {
            u16::MAX
        } else {
            (1u16 << self.index_bits) - 1
        };
        let index = cid & mask;
        let Some(t) = self.items.get(usize::from(index)) else {
            return Err(CidError::OutOfRange);
        };
        if t.state == TrackerState::Free || self.cid(index) != cid {
            return Err(CidError::NotInFlight);
        }
        Ok(index)
    }

    pub(crate) fn get(&self, index: u16) -> &Tracker {
        &self.items[usize::from(index)]
    }

    pub(crate) fn get_mut(&mut self, index: u16) -> &mut Tracker {
        &mut self.items[usize::from(index)]
    }

    /// Indices of the trackers in flight, lowest first.
    #[cfg(test)]
    pub(crate) fn busy_indices(&self) -> impl Iterator<Item = u16> + '_ {
        self.items
            .iter()
            .enumerate()
            .filter(|(_, t)| t.state != TrackerState::Free)
            .map(|(i, _)| i as u16)
    }
}

/// One caller request.
#[derive(Debug)]
pub(crate) struct Request<T, B> {
    pub(crate) token: Option<T>,
    pub(crate) buffer: Option<B>,
    /// Commands not completed yet.
    pub(crate) remaining: u16,
    /// The first error a command reported.
    pub(crate) error: Option<Error>,
}

/// The request array and its free list.
#[derive(Debug)]
pub(crate) struct Requests<T, B> {
    items: Vec<Request<T, B>>,
    free: Vec<u16>,
}

impl<T, B> Requests<T, B> {
    pub(crate) fn new(count: u16) -> Self {
        Requests {
            items: (0..count)
                .map(|_| Request {
                    token: None,
                    buffer: None,
                    remaining: 0,
                    error: None,
                })
                .collect(),
            free: (0..count).rev().collect(),
        }
    }

    pub(crate) fn available(&self) -> usize {
        self.free.len()
    }

    /// Stores a request of `commands` commands; the caller checked [`Requests::available`].
    pub(crate) fn alloc(&mut self, token: T, buffer: Option<B>, commands: u16) -> u16 {
        let index = self.free.pop().expect("caller checked for a free request");
        let r = &mut self.items[usize::from(index)];
        r.token = Some(token);
        r.buffer = buffer;
        r.remaining = commands;
        r.error = None;
        index
    }

    pub(crate) fn get_mut(&mut self, index: u16) -> &mut Request<T, B> {
        &mut self.items[usize::from(index)]
    }

    /// Records one command's outcome. When it was the last, frees the request and returns
    /// its token, buffer and result.
    pub(crate) fn complete_one(
        &mut self,
        index: u16,
        result: Result<(), Error>,
    ) -> Option<(T, Option<B>, Result<(), Error>)> {
        let r = &mut self.items[usize::from(index)];
        if let Err(err) = result {
            if r.error.is_none() {
                r.error = Some(err);
            }
        }
        r.remaining -= 1;
        if r.remaining > 0 {
            return None;
        }
        let token = r.token.take().expect("a live request has its token");
        let buffer = r.buffer.take();
        let result = match r.error.take() {
            Some(err) => Err(err),
            None => Ok(()),
        };
        self.free.push(index);
        Some((token, buffer, result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cids_carry_index_and_generation() {
        let mut t = Trackers::new(6);
        assert_eq!(t.capacity(), 6);
        let a = t.alloc(0).unwrap();
        let b = t.alloc(0).unwrap();
        assert_eq!((a, b), (0, 1));
        let cid_a = t.cid(a);
        assert_eq!(cid_a, 0, "generation 0");
        assert_eq!(t.lookup(cid_a), Ok(a));
        assert_eq!(t.lookup(5), Err(CidError::NotInFlight), "free tracker");
        assert_eq!(t.lookup(6), Err(CidError::OutOfRange), "index 6 of 6");
        t.release(a);
        assert_eq!(t.lookup(cid_a), Err(CidError::NotInFlight), "duplicate");
        // Reuse: same index, new generation, so the old CID stays stale.
        let mut again = t.alloc(0).unwrap();
        while again != a {
            again = t.alloc(0).unwrap();
        }
        let cid_again = t.cid(again);
        assert_ne!(cid_again, cid_a);
        assert_eq!(cid_again & 0x7, a);
        assert_eq!(t.lookup(cid_again), Ok(a));
        assert_eq!(t.lookup(cid_a), Err(CidError::NotInFlight));
        while t.alloc(0).is_some() {}
        assert_eq!(t.available(), 0);
        assert_eq!(t.in_flight(), 6);
        assert_eq!(t.busy_indices().count(), 6);
    }

    #[test]
    fn generations_wrap_within_their_bits() {
        let mut t = Trackers::new(1);
        for _ in 0..100_000 {
            let i = t.alloc(0).unwrap();
            assert_eq!(t.lookup(t.cid(i)), Ok(i));
            t.release(i);
        }
        // The largest queue: 16 index bits, no generation.
        let mut big = Trackers::new(u16::MAX);
        let i = big.alloc(0).unwrap();
        assert_eq!(big.cid(i), 0);
        assert_eq!(big.lookup(u16::MAX), Err(CidError::Reserved));
    }

    #[test]
    fn cid_ffff_is_never_assigned_nor_matched() {
        // 64 trackers: 6 index bits, 10 generation bits, so index 63 with generation 1023
        // would make FFFFh.
        let mut t = Trackers::new(64);
        while t.alloc(0).is_some() {}
        let last = 63;
        let mut seen_last_generation = false;
        for _ in 0..3 * 1024 {
            let cid = t.cid(last);
            assert_ne!(cid, RESERVED_CID, "a tracker got the reserved CID");
            assert_eq!(t.lookup(cid), Ok(last));
            seen_last_generation |= cid == RESERVED_CID - 64;
            t.release(last);
            assert_eq!(t.alloc(0), Some(last));
        }
        assert!(
            seen_last_generation,
            "the generations wrapped through their top"
        );
        // In flight at every index, FFFFh still names none of them.
        assert_eq!(t.lookup(RESERVED_CID), Err(CidError::Reserved));
        // One tracker (15 generation bits): FFFFh would be index 1, out of range; still
        // reserved first.
        assert_eq!(
            Trackers::new(1).lookup(RESERVED_CID),
            Err(CidError::Reserved)
        );
    }

    #[test]
    fn a_request_completes_once_with_the_first_error() {
        let mut r: Requests<u32, ()> = Requests::new(2);
        let i = r.alloc(7, Some(()), 3);
        assert_eq!(r.available(), 1);
        assert!(r.complete_one(i, Ok(())).is_none());
        let err = Error::Resetting {
            device: "01:00.0".parse().unwrap(),
        };
        assert!(r.complete_one(i, Err(err)).is_none());
        let other = Error::NoSuchNamespace {
            device: "01:00.0".parse().unwrap(),
            nsid: 9,
        };
        let (token, buffer, result) = r.complete_one(i, Err(other)).unwrap();
        assert_eq!(token, 7);
        assert!(buffer.is_some());
        assert!(matches!(result, Err(Error::Resetting { .. })));
        assert_eq!(r.available(), 2);
    }
}

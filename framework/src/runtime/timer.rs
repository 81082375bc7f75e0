//! Timers: the reactor's timer heap, which `sleep` (in `delay.rs`) arms.
//!
//! A binary heap of `(deadline, slot)` plus a slab of wakers. Cancelling (dropping a `Sleep`)
//! frees the slot at once and leaves its heap entry to be skipped when it surfaces; the heap is
//! compacted when such dead entries outnumber the live ones. After warm-up, arming and firing a
//! timer does not allocate.
//!
//! The reactor reads the clock only while timers exist, and sleeps no longer than the nearest
//! deadline.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::task::Waker;
use std::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TimerKey {
    index: u32,
    gen: u32,
}

struct Entry {
    gen: u32,
    waker: Option<Waker>,
}

#[derive(Default)]
pub(crate) struct Timers {
    heap: BinaryHeap<Reverse<(Instant, u32, u32)>>,
    entries: Vec<Entry>,
    free: Vec<u32>,
    live: usize,
}

impl Timers {
    pub(crate) fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The earliest deadline in the heap (possibly of a cancelled timer: an early wake-up).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((deadline, _, _))| *deadline)
    }

    pub(crate) fn insert(&mut self, deadline: Instant, waker: &Waker) -> TimerKey {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                self.entries.push(Entry {
                    gen: 0,
                    waker: None,
                });
                u32::try_from(self.entries.len() - 1).expect("fewer than 2^32 timers")
            }
        };
        let entry = &mut self.entries[index as usize];
        entry.waker = Some(waker.clone());
        let gen = entry.gen;
        self.live += 1;
        if self.heap.len() >= 2 * self.live + 64 {
            self.compact();
        }
        self.heap.push(Reverse((deadline, index, gen)));
        TimerKey { index, gen }
    }

    pub(crate) fn update_waker(&mut self, key: TimerKey, waker: &Waker) {
        if let Some(entry) = self.entry_mut(key) {
            match &entry.waker {
                Some(old) if old.will_wake(waker) => {}
                _ => entry.waker = Some(waker.clone()),
            }
        }
    }

    pub(crate) fn cancel(&mut self, key: TimerKey) {
        if let Some(entry) = self.entry_mut(key) {
            entry.waker = None;
            entry.gen = entry.gen.wrapping_add(1);
            self.free.push(key.index);
            self.live -= 1;
        }
    }

    /// Wakes every timer whose deadline is at or before `now`. Returns whether any fired.
    pub(crate) fn fire_expired(&mut self, now: Instant) -> bool {
        let mut fired = false;
        while let Some(&Reverse((deadline, index, gen))) = self.heap.peek() {
            if deadline > now {
                break;
            }
            self.heap.pop();
            let entry = &mut self.entries[index as usize];
            if entry.gen == gen {
                if let Some(waker) = entry.waker.take() {
                    fired = true;
                    waker.wake();
                }
            }
        }
        fired
    }

    fn entry_mut(&mut self, key: TimerKey) -> Option<&mut Entry> {
        self.entries
            .get_mut(key.index as usize)
            .filter(|e| e.gen == key.gen)
    }

    fn compact(&mut self) {
        let entries = &self.entries;
        self.heap
            .retain(|Reverse((_, index, gen))| entries[*index as usize].gen == *gen);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;
    use std::time::Duration;

    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn fires_in_deadline_order_and_skips_cancelled() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let late = timers.insert(t0 + Duration::from_secs(2), &waker);
        let early = timers.insert(t0 + Duration::from_secs(1), &waker);
        let cancelled = timers.insert(t0 + Duration::from_millis(500), &waker);
        timers.cancel(cancelled);
        assert_eq!(
            timers.next_deadline(),
            Some(t0 + Duration::from_millis(500))
        );
        assert!(!timers.fire_expired(t0 + Duration::from_millis(600))); // only the cancelled one
        assert!(timers.fire_expired(t0 + Duration::from_secs(1)));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        timers.cancel(early);
        assert!(timers.fire_expired(t0 + Duration::from_secs(3)));
        assert_eq!(count.0.load(Ordering::SeqCst), 2);
        timers.cancel(late);
        assert!(timers.is_empty());
    }

    #[test]
    fn cancelled_entries_are_compacted() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let far = Instant::now() + Duration::from_secs(3600);
        let mut timers = Timers::default();
        for _ in 0..10_000 {
            let key = timers.insert(far, &waker);
            timers.cancel(key);
        }
        assert!(
            timers.heap.len() <= 2 * timers.live + 65,
            "{}",
            timers.heap.len()
        );
    }
}

//! The TX cleaning rules as index arithmetic, apart from the ring so they can be tested on
//! their own.

use std::ops::Range;

/// Descriptors in flight between `clean` and `tail` in a ring of `mask + 1` slots.
#[inline(always)]
pub const fn in_flight(tail: usize, clean: usize, mask: usize) -> usize {
    tail.wrapping_sub(clean) & mask
}

/// The batch cleaning rule (ixy's scheme): starting at `clean`, while a whole batch of
/// `batch` descriptors is in flight and `done(last slot of the batch)` holds, the batch is
/// cleaned: the device completes in order, so its last descriptor being done means the whole
/// batch is. Returns the new `clean` index; `done` is asked once per batch.
#[inline(always)]
pub fn clean_batches(
    tail: usize,
    mut clean: usize,
    mask: usize,
    batch: usize,
    mut done: impl FnMut(usize) -> bool,
) -> usize {
    while in_flight(tail, clean, mask) >= batch {
        let last = (clean + batch - 1) & mask;
        if !done(last) {
            break;
        }
        clean = (clean + batch) & mask;
    }
    clean
}

/// The slots from `from` up to (excluding) `to` in a ring of `mask + 1`, as at most two
/// ranges of indices (the second is empty unless the run wraps).
#[inline(always)]
pub fn slot_ranges(from: usize, to: usize, mask: usize) -> (Range<usize>, Range<usize>) {
    if to >= from {
        (from..to, 0..0)
    } else {
        (from..mask + 1, 0..to)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the cleaning rule on a ring of `size` with the device done up to (excluding)
    /// `device_done` descriptors after `clean`; returns the new clean index, the slots whose
    /// `DD` was looked at and the slots cleaned.
    fn run(
        size: usize,
        tail: usize,
        clean: usize,
        device_done: usize,
        batch: usize,
    ) -> (usize, Vec<usize>, Vec<usize>) {
        let mask = size - 1;
        let mut checked = Vec::new();
        let new = clean_batches(tail, clean, mask, batch, |slot| {
            checked.push(slot);
            (slot.wrapping_sub(clean) & mask) < device_done
        });
        let (a, b) = slot_ranges(clean, new, mask);
        (new, checked, a.chain(b).collect())
    }

    #[test]
    fn nothing_is_cleaned_below_a_batch() {
        let (new, checked, freed) = run(512, 31, 0, 31, 32);
        assert_eq!(new, 0);
        assert!(checked.is_empty(), "DD not even looked at");
        assert!(freed.is_empty());
    }

    #[test]
    fn a_finished_batch_is_cleaned_by_looking_at_its_last_descriptor() {
        let (new, checked, freed) = run(512, 40, 0, 40, 32);
        assert_eq!(new, 32);
        assert_eq!(checked, vec![31], "only the last descriptor of the batch");
        assert_eq!(freed, (0..32).collect::<Vec<_>>());
    }

    #[test]
    fn an_unfinished_batch_stays() {
        let (new, checked, freed) = run(512, 64, 0, 31, 32);
        assert_eq!(new, 0);
        assert_eq!(checked, vec![31]);
        assert!(freed.is_empty());
    }

    #[test]
    fn several_batches_and_wrap_around() {
        // Ring of 128, clean at 100, 96 in flight (wrapping), device done with 70.
        let (new, checked, freed) = run(128, (100 + 96) & 127, 100, 70, 32);
        assert_eq!(new, (100 + 64) & 127, "two whole batches");
        assert_eq!(
            checked,
            vec![(100 + 31) & 127, (100 + 63) & 127, (100 + 95) & 127]
        );
        let want: Vec<usize> = (0..64).map(|i| (100 + i) & 127).collect();
        assert_eq!(freed, want);
    }

    #[test]
    fn in_flight_wraps() {
        assert_eq!(in_flight(5, 5, 7), 0);
        assert_eq!(in_flight(2, 6, 7), 4);
        assert_eq!(in_flight(7, 0, 7), 7);
    }

    #[test]
    fn slot_ranges_split_at_the_wrap() {
        assert_eq!(slot_ranges(3, 3, 7), (3..3, 0..0));
        assert_eq!(slot_ranges(2, 6, 7), (2..6, 0..0));
        assert_eq!(slot_ranges(6, 2, 7), (6..8, 0..2));
        assert_eq!(slot_ranges(0, 0, 7), (0..0, 0..0));
    }
}

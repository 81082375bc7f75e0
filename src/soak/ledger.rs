//! The ledger of one controller's writes: every write submitted, every answer its caller got,
//! and per slot (a fixed LBA range) what the media must hold. Pure bookkeeping, no I/O, so
//! the checks can be tested on their own.
//!
//! The rule it checks is the reset contract: a write acknowledged must be durable, and a
//! write is answered exactly once. A write that failed may or may not have reached the media
//! (the caller was told it failed; it retries with new data), so until the slot's next
//! acknowledged write its data is also accepted on read-back, as "in doubt", and reported.

use std::collections::BTreeMap;

/// The byte at `index` of a write with data seed `seed`: any block can be checked on its own.
pub fn pattern(seed: u64, index: usize) -> u8 {
    (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 32) as u8
        ^ (index as u8).wrapping_mul(13)
}

/// Fills `data` with the pattern of `seed`.
pub fn fill(seed: u64, data: &mut [u8]) {
    for (i, b) in data.iter_mut().enumerate() {
        *b = pattern(seed, i);
    }
}

fn holds(seed: u64, data: &[u8]) -> bool {
    data.iter().enumerate().all(|(i, &b)| b == pattern(seed, i))
}

/// A write submitted and not answered yet.
#[derive(Clone, Copy, Debug)]
struct WriteRecord {
    slot: u64,
    seed: u64,
}

/// What one slot must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotRecord {
    /// The data seed of the last acknowledged write.
    pub acknowledged: Option<u64>,
    /// Seeds of writes that failed after it (they may have landed).
    pub in_doubt: Vec<u64>,
}

/// What the caller was told about one answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    /// The write's first answer.
    First,
    /// A write answered before: a duplicate.
    Duplicate,
    /// A token the ledger never saw submitted.
    Unknown,
}

/// What reading a slot back found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The last acknowledged write's data.
    Acknowledged,
    /// The data of a write that failed after the last acknowledged one.
    InDoubt,
    /// Neither: an acknowledged write is lost.
    Lost,
    /// Nothing acknowledged here; any content is acceptable.
    Unacknowledged,
}

/// Counters of a ledger.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LedgerCounts {
    pub submitted: u64,
    pub acknowledged: u64,
    pub failed: u64,
    /// Answers beyond a write's first, and answers for tokens never submitted.
    pub duplicated: u64,
}

/// The ledger of one controller. Tokens are handed out in increasing order, so only the
/// writes still unanswered are kept: an answer for a smaller token that is not among them
/// is a second answer. Memory stays bounded by the queue depth and the slots however long
/// the run.
#[derive(Debug, Default)]
pub struct Ledger {
    unanswered: BTreeMap<u64, WriteRecord>,
    /// One past the largest token submitted.
    token_end: u64,
    slots: BTreeMap<u64, SlotRecord>,
    counts: LedgerCounts,
}

impl Ledger {
    /// An empty ledger.
    pub fn new() -> Self {
        Ledger::default()
    }

    /// A write with token `token` of data `seed` to `slot` was accepted by the driver.
    /// Tokens must increase from one write to the next.
    pub fn submit(&mut self, token: u64, slot: u64, seed: u64) {
        debug_assert!(token >= self.token_end, "tokens increase");
        self.unanswered.insert(token, WriteRecord { slot, seed });
        self.token_end = self.token_end.max(token + 1);
        self.counts.submitted += 1;
    }

    /// The caller got an answer for `token`: success or an error.
    pub fn answer(&mut self, token: u64, ok: bool) -> Answer {
        let Some(write) = self.unanswered.remove(&token) else {
            self.counts.duplicated += 1;
            return if token < self.token_end {
                Answer::Duplicate
            } else {
                Answer::Unknown
            };
        };
        let slot = self.slots.entry(write.slot).or_default();
        if ok {
            self.counts.acknowledged += 1;
            slot.acknowledged = Some(write.seed);
            slot.in_doubt.clear();
        } else {
            self.counts.failed += 1;
            slot.in_doubt.push(write.seed);
        }
        Answer::First
    }

    /// The slot of a write not answered yet.
    pub fn slot_of(&self, token: u64) -> Option<u64> {
        self.unanswered.get(&token).map(|w| w.slot)
    }

    /// The data seed `slot` must hold: its last acknowledged write's.
    pub fn expected(&self, slot: u64) -> Option<u64> {
        self.slots.get(&slot).and_then(|r| r.acknowledged)
    }

    /// Writes submitted and not answered yet.
    pub fn unanswered(&self) -> u64 {
        self.unanswered.len() as u64
    }

    /// The counters.
    pub fn counts(&self) -> LedgerCounts {
        self.counts
    }

    /// Every slot written, in order.
    pub fn slots(&self) -> impl Iterator<Item = (u64, &SlotRecord)> {
        self.slots.iter().map(|(&s, r)| (s, r))
    }

    /// Checks what `slot` reads back as.
    pub fn check(&self, slot: u64, data: &[u8]) -> Verdict {
        let Some(record) = self.slots.get(&slot) else {
            return Verdict::Unacknowledged;
        };
        match record.acknowledged {
            Some(seed) if holds(seed, data) => Verdict::Acknowledged,
            _ if record.in_doubt.iter().any(|&s| holds(s, data)) => Verdict::InDoubt,
            Some(_) => Verdict::Lost,
            None => Verdict::Unacknowledged,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(seed: u64) -> Vec<u8> {
        let mut d = vec![0; 64];
        fill(seed, &mut d);
        d
    }

    #[test]
    fn the_last_acknowledged_write_is_what_the_slot_must_hold() {
        let mut ledger = Ledger::new();
        ledger.submit(1, 5, 100);
        ledger.submit(2, 5, 200);
        assert_eq!(ledger.unanswered(), 2);
        assert_eq!(ledger.answer(1, true), Answer::First);
        assert_eq!(ledger.answer(2, true), Answer::First);
        assert_eq!(ledger.unanswered(), 0);
        assert_eq!(ledger.check(5, &data(200)), Verdict::Acknowledged);
        // The older write's data means the newer acknowledged one was lost.
        assert_eq!(ledger.check(5, &data(100)), Verdict::Lost);
        assert_eq!(ledger.check(5, &[0; 64]), Verdict::Lost);
        assert_eq!(ledger.check(6, &[0; 64]), Verdict::Unacknowledged);
    }

    #[test]
    fn a_failed_write_may_have_landed_until_the_next_acknowledged_one() {
        let mut ledger = Ledger::new();
        ledger.submit(1, 0, 10);
        ledger.answer(1, true);
        ledger.submit(2, 0, 20);
        ledger.answer(2, false);
        assert_eq!(ledger.check(0, &data(10)), Verdict::Acknowledged);
        assert_eq!(ledger.check(0, &data(20)), Verdict::InDoubt);
        ledger.submit(3, 0, 30);
        ledger.answer(3, true);
        assert_eq!(
            ledger.check(0, &data(20)),
            Verdict::Lost,
            "no longer in doubt"
        );
        let counts = ledger.counts();
        assert_eq!((counts.acknowledged, counts.failed), (2, 1));
    }

    #[test]
    fn second_answers_and_unknown_tokens_are_duplicates() {
        let mut ledger = Ledger::new();
        ledger.submit(7, 1, 70);
        assert_eq!(ledger.answer(7, true), Answer::First);
        assert_eq!(ledger.answer(7, true), Answer::Duplicate);
        assert_eq!(ledger.answer(7, false), Answer::Duplicate);
        assert_eq!(ledger.answer(8, true), Answer::Unknown);
        assert_eq!(ledger.counts().duplicated, 3);
        assert_eq!(ledger.counts().acknowledged, 1);
        assert_eq!(ledger.check(1, &data(70)), Verdict::Acknowledged);
    }
}

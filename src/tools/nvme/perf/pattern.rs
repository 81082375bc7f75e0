//! Where each I/O goes (random or sequential offsets, verify slots) and the verify pattern.

use super::args::Workload;
use super::plan::Plan;

pub(super) fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*: random offsets without a dependency.
pub(super) struct XorShift(u64);

impl XorShift {
    pub(super) fn new(seed: u64, core: usize) -> Self {
        XorShift(splitmix64(seed ^ (core as u64).wrapping_mul(0x1000_0001)) | 1)
    }

    pub(super) fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (multiply-shift, no division).
    pub(super) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Where the next I/O of a core goes, for the random and sequential workloads.
pub(super) struct Picker {
    pub(super) random: bool,
    pub(super) rng: XorShift,
    pub(super) units: u64,
    pub(super) next: u64,
}

impl Picker {
    pub(super) fn new(plan: &Plan, index: usize) -> Self {
        let core = plan.cpus[index];
        Picker {
            random: matches!(plan.rw, Workload::Randread | Workload::Randwrite),
            rng: XorShift::new(plan.seed, core),
            units: plan.units,
            next: plan.units / plan.cpus.len() as u64 * index as u64,
        }
    }

    /// The next position, in `bs` units.
    pub(super) fn unit(&mut self) -> u64 {
        if self.random {
            self.rng.below(self.units)
        } else {
            let unit = self.next;
            self.next = if unit + 1 >= self.units { 0 } else { unit + 1 };
            unit
        }
    }
}

/// A verify slot's own stretch of the namespace and where it is in it.
#[derive(Clone, Copy, Debug)]
pub(super) struct VerifySlot {
    pub(super) base: u64,
    pub(super) len: u64,
    pub(super) offset: u64,
    pub(super) pass: u64,
    /// The write of the current position completed; the read-back is next or in flight.
    pub(super) reading: bool,
}

impl VerifySlot {
    /// Slot `slot` of worker `index`.
    pub(super) fn new(plan: &Plan, index: usize, slot: usize) -> Self {
        let slots = (plan.cpus.len() * plan.qd) as u64;
        let len = plan.units / slots;
        VerifySlot {
            base: (index * plan.qd + slot) as u64 * len,
            len,
            offset: 0,
            pass: 0,
            reading: false,
        }
    }

    pub(super) fn unit(&self) -> u64 {
        self.base + self.offset
    }

    pub(super) fn advance(&mut self) {
        self.reading = false;
        self.offset += 1;
        if self.offset == self.len {
            self.offset = 0;
            self.pass += 1;
        }
    }
}

pub(super) fn pattern_word(lba: u64, pass: u64, word: usize) -> u64 {
    splitmix64(lba.wrapping_mul(0x0100_0000_01b3) ^ pass.rotate_left(40) ^ word as u64)
}

/// Fills `bytes` with the pattern of (`lba`, `pass`), or its complement.
pub(super) fn fill_pattern(bytes: &mut [u8], lba: u64, pass: u64, complement: bool) {
    let flip = if complement { u64::MAX } else { 0 };
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(pattern_word(lba, pass, i) ^ flip).to_le_bytes());
    }
}

/// Whether `bytes` hold the pattern of (`lba`, `pass`).
pub(super) fn check_pattern(bytes: &[u8], lba: u64, pass: u64) -> bool {
    bytes
        .chunks_exact(8)
        .enumerate()
        .all(|(i, chunk)| chunk == pattern_word(lba, pass, i).to_le_bytes())
}

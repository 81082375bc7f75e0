//! IOVA allocation: where in the device's address space each DMA mapping goes.
//!
//! One allocator per address space. It hands out aligned ranges from the IOMMU's valid ranges
//! (`IOMMU_IOAS_IOVA_RANGES` on iommufd; reserved regions such as the MSI window are holes) and
//! takes them back. First fit over a map of free ranges, merged on free: mappings are made at
//! setup time, so simplicity beats speed here.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A range of IOVAs with an inclusive last address, as the kernel's `iommu_iova_range`.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct IovaRange {
    /// First usable IOVA.
    pub start: u64,
    /// Last usable IOVA (inclusive).
    pub last: u64,
}

impl IovaRange {
    /// A range from `start` to `last` inclusive.
    pub const fn new(start: u64, last: u64) -> Self {
        IovaRange { start, last }
    }
}

impl fmt::Debug for IovaRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}..={:#x}", self.start, self.last)
    }
}

/// Hands out IOVA ranges inside an IOMMU's valid ranges.
#[derive(Debug)]
pub struct IovaAllocator {
    name: String,
    ranges: Vec<IovaRange>,
    /// Free ranges: start -> last (inclusive), disjoint and not adjacent.
    free: BTreeMap<u64, u64>,
}

impl IovaAllocator {
    /// An allocator over `ranges` (sorted or not; they must not overlap). IOVA 0 is never handed
    /// out, so that a zero address in a descriptor is always a bug the IOMMU catches.
    pub fn new(name: impl Into<String>, ranges: &[IovaRange]) -> Result<Self> {
        let name = name.into();
        let mut sorted = ranges.to_vec();
        sorted.sort();
        let mut free = BTreeMap::new();
        let mut previous_last: Option<u64> = None;
        for range in &sorted {
            if range.last < range.start {
                return Err(Error::InvalidIovaRange {
                    space: name,
                    start: range.start,
                    end: range.last,
                    reason: "last address is below the start",
                });
            }
            if previous_last.is_some_and(|last| range.start <= last) {
                return Err(Error::InvalidIovaRange {
                    space: name,
                    start: range.start,
                    end: range.last,
                    reason: "overlaps another range",
                });
            }
            previous_last = Some(range.last);
            let start = range.start.max(1);
            if start <= range.last {
                free.insert(start, range.last);
            }
        }
        if free.is_empty() {
            return Err(Error::InvalidIovaRange {
                space: name,
                start: 0,
                end: 0,
                reason: "no usable IOVA range",
            });
        }
        Ok(IovaAllocator {
            name,
            ranges: sorted,
            free,
        })
    }

    /// The valid ranges this allocator was built from.
    pub fn ranges(&self) -> &[IovaRange] {
        &self.ranges
    }

    /// Allocates `len` bytes aligned to `align` (a power of two), first fit.
    pub fn alloc(&mut self, len: u64, align: u64) -> Result<u64> {
        if len == 0 || !align.is_power_of_two() {
            return Err(Error::InvalidIovaRange {
                space: self.name.clone(),
                start: 0,
                end: len,
                reason: "length must be non-zero and alignment a power of two",
            });
        }
        let found = self.free.iter().find_map(|(&start, &last)| {
            let aligned = start.checked_next_multiple_of(align)?;
            let end = aligned.checked_add(len - 1)?;
            (end <= last).then_some((start, last, aligned, end))
        });
        let Some((start, last, aligned, end)) = found else {
            return Err(Error::IovaExhausted {
                space: self.name.clone(),
                len,
                align,
            });
        };
        self.free.remove(&start);
        if aligned > start {
            self.free.insert(start, aligned - 1);
        }
        if end < last {
            self.free.insert(end + 1, last);
        }
        Ok(aligned)
    }

    /// Returns `[iova, iova + len)` to the free ranges. Refuses a range that is not wholly
    /// allocated (a double free or a range outside the space).
    pub fn free(&mut self, iova: u64, len: u64) -> Result<()> {
        let invalid = |reason| Error::InvalidIovaRange {
            space: self.name.clone(),
            start: iova,
            end: iova.saturating_add(len),
            reason,
        };
        let last = iova
            .checked_add(len)
            .and_then(|e| e.checked_sub(1))
            .filter(|_| len > 0)
            .ok_or_else(|| invalid("empty or overflowing range"))?;
        if !self.ranges.iter().any(|r| r.start <= iova && last <= r.last) {
            return Err(invalid("not inside one valid range"));
        }
        let before = self.free.range(..=last).next_back().map(|(&s, &l)| (s, l));
        if before.is_some_and(|(_, l)| l >= iova) {
            return Err(invalid("range is (partly) free already"));
        }
        let mut start = iova;
        let mut end = last;
        if let Some((s, l)) = before {
            if l.checked_add(1) == Some(iova) {
                self.free.remove(&s);
                start = s;
            }
        }
        if let Some(next_last) = last.checked_add(1).and_then(|n| self.free.get(&n).copied()) {
            self.free.remove(&(last + 1));
            end = next_last;
        }
        self.free.insert(start, end);
        Ok(())
    }

    /// Bytes currently free.
    pub fn free_bytes(&self) -> u128 {
        self.free
            .iter()
            .map(|(&s, &l)| u128::from(l - s) + 1)
            .sum()
    }
}

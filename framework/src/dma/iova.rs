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

    /// The parts of `ranges` inside this range (a window lent in a shared address space).
    pub fn clip(&self, ranges: &[IovaRange]) -> Vec<IovaRange> {
        ranges
            .iter()
            .filter(|r| r.start <= self.last && self.start <= r.last)
            .map(|r| IovaRange {
                start: r.start.max(self.start),
                last: r.last.min(self.last),
            })
            .collect()
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
        }
        // Ranges that touch are one space to a device: merge them, so an allocation may span
        // the border and its free is still inside one valid range.
        let mut merged: Vec<IovaRange> = Vec::with_capacity(sorted.len());
        for range in sorted {
            match merged.last_mut() {
                Some(last) if last.last.checked_add(1) == Some(range.start) => {
                    last.last = range.last
                }
                _ => merged.push(range),
            }
        }
        let sorted = merged;
        for range in &sorted {
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
        if !self
            .ranges
            .iter()
            .any(|r| r.start <= iova && last <= r.last)
        {
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
        self.free.iter().map(|(&s, &l)| u128::from(l - s) + 1).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allocator(ranges: &[(u64, u64)]) -> IovaAllocator {
        let ranges: Vec<IovaRange> = ranges.iter().map(|&(s, l)| IovaRange::new(s, l)).collect();
        IovaAllocator::new("test", &ranges).unwrap()
    }

    fn free_map(a: &IovaAllocator) -> Vec<(u64, u64)> {
        a.free.iter().map(|(&s, &l)| (s, l)).collect()
    }

    #[test]
    fn freeing_merges_with_both_neighbours() {
        let mut a = allocator(&[(0x1000, 0x4fff)]);
        let x = a.alloc(0x1000, 0x1000).unwrap();
        let y = a.alloc(0x1000, 0x1000).unwrap();
        let z = a.alloc(0x1000, 0x1000).unwrap();
        assert_eq!((x, y, z), (0x1000, 0x2000, 0x3000));
        assert_eq!(free_map(&a), [(0x4000, 0x4fff)]);

        a.free(y, 0x1000).unwrap();
        assert_eq!(free_map(&a), [(0x2000, 0x2fff), (0x4000, 0x4fff)]);
        // Left neighbour free: merges into [x, y].
        a.free(x, 0x1000).unwrap();
        assert_eq!(free_map(&a), [(0x1000, 0x2fff), (0x4000, 0x4fff)]);
        // Both neighbours free: one range again.
        a.free(z, 0x1000).unwrap();
        assert_eq!(free_map(&a), [(0x1000, 0x4fff)]);
        assert_eq!(a.free_bytes(), 0x4000);
        // The merged range serves an allocation as large as the whole space.
        assert_eq!(a.alloc(0x4000, 0x1000).unwrap(), 0x1000);
    }

    #[test]
    fn freeing_merges_with_the_right_neighbour_only() {
        let mut a = allocator(&[(0x1000, 0x2fff)]);
        let x = a.alloc(0x1000, 1).unwrap();
        let y = a.alloc(0x1000, 1).unwrap();
        a.free(y, 0x1000).unwrap();
        assert_eq!(free_map(&a), [(0x2000, 0x2fff)]);
        a.free(x, 0x1000).unwrap();
        assert_eq!(free_map(&a), [(0x1000, 0x2fff)]);
    }

    #[test]
    fn ranges_that_touch_are_one_space() {
        // Two valid ranges back to back: an allocation may span the border, and its free is
        // accepted (it used to leak: the free was refused as "not inside one valid range").
        let mut a = allocator(&[(0x1000, 0x1fff), (0x2000, 0x2fff)]);
        assert_eq!(a.ranges(), &[IovaRange::new(0x1000, 0x2fff)]);
        let x = a.alloc(0x2000, 0x1000).unwrap();
        assert_eq!(x, 0x1000);
        a.free(x, 0x2000).unwrap();
        assert_eq!(a.free_bytes(), 0x2000);
    }

    #[test]
    fn iova_zero_is_never_handed_out() {
        let mut a = allocator(&[(0, 0xfff)]);
        let first = a.alloc(1, 1).unwrap();
        assert_eq!(first, 1);
        assert_eq!(a.free_bytes(), 0xfff - 1);
        // A range holding only address 0 is no usable range at all.
        let err = IovaAllocator::new("zero", &[IovaRange::new(0, 0)]).unwrap_err();
        assert!(err.to_string().contains("no usable IOVA range"), "{err}");
    }

    #[test]
    fn overlapping_ranges_are_refused_with_the_values() {
        let ranges = [
            IovaRange::new(0x1000, 0x5fff),
            IovaRange::new(0x4000, 0x8fff),
        ];
        let err = IovaAllocator::new("ioas 3", &ranges).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("ioas 3"), "{text}");
        assert!(text.contains("0x4000..0x8fff"), "{text}");
        assert!(text.contains("overlaps another range"), "{text}");
        // Order of the input does not matter, nor does sharing one address.
        let ranges = [
            IovaRange::new(0x5fff, 0x8fff),
            IovaRange::new(0x1000, 0x5fff),
        ];
        let err = IovaAllocator::new("ioas 3", &ranges).unwrap_err();
        assert!(err.to_string().contains("0x5fff..0x8fff"), "{err}");
    }

    #[test]
    fn last_below_start_is_refused_with_the_values() {
        let err = IovaAllocator::new("ioas 1", &[IovaRange::new(0x9000, 0x8fff)]).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("0x9000..0x8fff"), "{text}");
        assert!(text.contains("last address is below the start"), "{text}");
        assert!(matches!(
            err,
            Error::InvalidIovaRange {
                start: 0x9000,
                end: 0x8fff,
                ..
            }
        ));
    }

    #[test]
    fn zero_length_and_bad_alignment_are_refused() {
        let mut a = allocator(&[(0x1000, 0xffff)]);
        assert!(matches!(
            a.alloc(0, 0x1000),
            Err(Error::InvalidIovaRange { .. })
        ));
        assert!(matches!(
            a.alloc(0x1000, 0),
            Err(Error::InvalidIovaRange { .. })
        ));
        assert!(matches!(
            a.alloc(0x1000, 0x1800),
            Err(Error::InvalidIovaRange { .. })
        ));
        assert_eq!(a.free_bytes(), 0xf000);
    }

    #[test]
    fn double_free_partial_free_and_foreign_ranges_are_refused() {
        let mut a = allocator(&[(0x1000, 0xffff)]);
        let x = a.alloc(0x2000, 0x1000).unwrap();
        a.free(x, 0x2000).unwrap();
        let before = free_map(&a);
        let err = a.free(x, 0x2000).unwrap_err();
        assert!(err.to_string().contains("free already"), "{err}");
        let y = a.alloc(0x1000, 0x1000).unwrap();
        // Overlaps the allocation and the free space after it.
        assert!(a.free(y, 0x2000).is_err());
        a.free(y, 0x1000).unwrap();
        assert_eq!(free_map(&a), before);
        assert!(a.free(0x10_0000, 0x1000).is_err(), "outside every range");
        assert!(a.free(u64::MAX, 2).is_err(), "overflowing");
        assert!(a.free(0x2000, 0).is_err(), "empty");
        assert_eq!(free_map(&a), before, "refused frees change nothing");
    }

    #[test]
    fn exhaustion_names_the_request() {
        let mut a = allocator(&[(0x1000, 0x1fff)]);
        let err = a.alloc(0x2000, 0x1000).unwrap_err();
        assert!(
            matches!(
                err,
                Error::IovaExhausted {
                    len: 0x2000,
                    align: 0x1000,
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("0x2000"), "{err}");
    }
}

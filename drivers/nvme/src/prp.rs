//! Physical Region Page entries and lists (Base 2.0 "Physical Region Page Entry and List").
//!
//! The driver uses a memory page size (`CC.MPS`) of 4 KiB. A transfer of `len` bytes at a
//! device address `iova` is described by:
//!
//! - `PRP1`: `iova` itself; it may start at any dword-aligned offset into its page;
//! - nothing else when the transfer ends in the first page (`PRP2` = 0);
//! - `PRP2` = the second page when it ends there;
//! - otherwise `PRP2` = the address of a PRP list: one entry per further page, each page
//!   aligned. A list page holds 512 entries; when more are needed, the last entry of a full
//!   list page points to the next list page instead of to data.
//!
//! The list pages come from a [`PrpListPages`] the queue pair preallocated for each command
//! slot, sized with [`list_pages_for`] for the largest transfer, so building a list allocates
//! nothing.

/// The memory page size the driver programs (`CC.MPS` = 0).
pub const PAGE_SIZE: u64 = 4096;
/// PRP entries in one list page.
pub const ENTRIES_PER_PAGE: usize = (PAGE_SIZE / 8) as usize;

/// Where a PRP list may be written: a few page-aligned pages of device-visible memory.
pub trait PrpListPages {
    /// Number of list pages available.
    fn pages(&self) -> usize;
    /// Device address of list page `page` (page aligned).
    fn page_iova(&self, page: usize) -> u64;
    /// Writes entry `index` (0..512) of list page `page`.
    fn write_entry(&mut self, page: usize, index: usize, value: u64);
}

/// Why a transfer cannot be described.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PrpError {
    /// Zero bytes.
    Empty,
    /// `PRP1` must be dword aligned.
    Unaligned,
    /// More list pages than the slot has (the transfer is larger than the queue allows).
    ListTooSmall {
        /// List pages needed.
        needed: usize,
        /// List pages available.
        available: usize,
    },
}

/// Number of memory pages `[iova, iova + len)` touches.
pub const fn pages_spanned(iova: u64, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    let first = iova / PAGE_SIZE;
    let last = (iova + len as u64 - 1) / PAGE_SIZE;
    (last - first + 1) as usize
}

/// List pages needed for a list of `entries` entries (the pages after the first data page):
/// none for up to one entry (it goes in `PRP2`), then 512 entries in one page, 511 per page
/// plus one when chained.
pub const fn list_pages_for(entries: usize) -> usize {
    if entries <= 1 {
        0
    } else {
        (entries - 1).div_ceil(ENTRIES_PER_PAGE - 1)
    }
}

/// List pages one command slot needs for transfers of up to `max_len` bytes at any offset.
pub const fn list_pages_for_transfer(max_len: usize) -> usize {
    // The worst case starts just before a page boundary: ceil(len / page) + 1 pages.
    let pages = (max_len as u64).div_ceil(PAGE_SIZE) as usize + 1;
    list_pages_for(pages - 1)
}

/// Builds `(PRP1, PRP2)` for `len` bytes at `iova`, writing a list into `list` when needed.
pub fn build(iova: u64, len: usize, list: &mut impl PrpListPages) -> Result<(u64, u64), PrpError> {
    if len == 0 {
        return Err(PrpError::Empty);
    }
    if !iova.is_multiple_of(4) {
        return Err(PrpError::Unaligned);
    }
    let pages = pages_spanned(iova, len);
    let second = (iova & !(PAGE_SIZE - 1)) + PAGE_SIZE;
    match pages {
        1 => return Ok((iova, 0)),
        2 => return Ok((iova, second)),
        _ => {}
    }
    let entries = pages - 1;
    let needed = list_pages_for(entries);
    if needed > list.pages() {
        return Err(PrpError::ListTooSmall {
            needed,
            available: list.pages(),
        });
    }
    let (mut page, mut slot) = (0, 0);
    for j in 0..entries {
        if slot == ENTRIES_PER_PAGE - 1 && entries - j > 1 {
            // A full page with more to come: its last entry chains to the next list page.
            let next = list.page_iova(page + 1);
            list.write_entry(page, slot, next);
            page += 1;
            slot = 0;
        }
        list.write_entry(page, slot, second + j as u64 * PAGE_SIZE);
        slot += 1;
    }
    Ok((iova, list.page_iova(0)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    /// List pages at fake IOVAs, recording what is written.
    struct Fake {
        base: u64,
        pages: usize,
        entries: BTreeMap<(usize, usize), u64>,
    }

    impl Fake {
        fn new(pages: usize) -> Self {
            Fake {
                base: 0x7700_0000,
                pages,
                entries: BTreeMap::new(),
            }
        }

        /// Follows `PRP2` as a device would: the data pages in order.
        fn walk(&self, prp2: u64, entries: usize) -> Vec<u64> {
            let mut out = Vec::new();
            let mut page = ((prp2 - self.base) / PAGE_SIZE) as usize;
            let mut slot = 0;
            while out.len() < entries {
                let value = self.entries[&(page, slot)];
                if slot == ENTRIES_PER_PAGE - 1 && out.len() + 1 < entries {
                    assert_eq!(value, self.page_iova(page + 1), "chain pointer");
                    page += 1;
                    slot = 0;
                    continue;
                }
                out.push(value);
                slot += 1;
            }
            out
        }
    }

    impl PrpListPages for Fake {
        fn pages(&self) -> usize {
            self.pages
        }
        fn page_iova(&self, page: usize) -> u64 {
            assert!(page < self.pages);
            self.base + page as u64 * PAGE_SIZE
        }
        fn write_entry(&mut self, page: usize, index: usize, value: u64) {
            assert!(page < self.pages && index < ENTRIES_PER_PAGE);
            self.entries.insert((page, index), value);
        }
    }

    #[test]
    fn within_one_page_at_any_dword_offset() {
        let mut list = Fake::new(1);
        assert_eq!(build(0x10_0000, 4096, &mut list), Ok((0x10_0000, 0)));
        assert_eq!(build(0x10_0204, 512, &mut list), Ok((0x10_0204, 0)));
        assert_eq!(build(0x10_0ffc, 4, &mut list), Ok((0x10_0ffc, 0)));
        assert!(list.entries.is_empty());
        assert_eq!(build(0x10_0002, 512, &mut list), Err(PrpError::Unaligned));
        assert_eq!(build(0x10_0000, 0, &mut list), Err(PrpError::Empty));
    }

    #[test]
    fn exactly_two_pages_use_prp2_as_the_second_page() {
        let mut list = Fake::new(1);
        assert_eq!(
            build(0x10_0000, 8192, &mut list),
            Ok((0x10_0000, 0x10_1000))
        );
        // An offset into the first page: 512 bytes there, the rest in the next page.
        assert_eq!(
            build(0x10_0e00, 4096, &mut list),
            Ok((0x10_0e00, 0x10_1000))
        );
        assert!(list.entries.is_empty());
    }

    #[test]
    fn three_pages_need_a_list() {
        let mut list = Fake::new(1);
        let (prp1, prp2) = build(0x10_0800, 8192 + 4, &mut list).unwrap();
        assert_eq!(prp1, 0x10_0800);
        assert_eq!(prp2, list.page_iova(0));
        assert_eq!(list.walk(prp2, 2), vec![0x10_1000, 0x10_2000]);
    }

    #[test]
    fn a_full_list_page_holds_512_entries_without_chaining() {
        let mut list = Fake::new(1);
        // 513 pages: PRP1 plus 512 list entries in exactly one list page.
        let (_, prp2) = build(0x20_0000, 513 * 4096, &mut list).unwrap();
        let pages = list.walk(prp2, 512);
        assert_eq!(pages[0], 0x20_1000);
        assert_eq!(pages[511], 0x20_0000 + 512 * 4096);
        assert_eq!(list.entries.len(), 512);
    }

    #[test]
    fn longer_lists_chain_through_the_last_entry() {
        // 514 pages: 513 entries need a second list page (511 + chain, then 2).
        let mut list = Fake::new(2);
        let (_, prp2) = build(0x20_0000, 514 * 4096, &mut list).unwrap();
        assert_eq!(list.entries[&(0, 511)], list.page_iova(1));
        let pages = list.walk(prp2, 513);
        for (i, page) in pages.iter().enumerate() {
            assert_eq!(*page, 0x20_1000 + i as u64 * 4096);
        }
        // Three list pages, starting at an offset (one extra page spanned).
        let mut list = Fake::new(3);
        let len = 1100 * 4096;
        let (prp1, prp2) = build(0x40_0010, len, &mut list).unwrap();
        assert_eq!(prp1, 0x40_0010);
        let entries = pages_spanned(0x40_0010, len) - 1;
        assert_eq!(entries, 1100);
        assert_eq!(list_pages_for(entries), 3);
        let pages = list.walk(prp2, entries);
        assert_eq!(pages.last(), Some(&(0x40_0000 + 1100 * 4096)));
        assert!(pages.windows(2).all(|w| w[1] == w[0] + 4096));
    }

    #[test]
    fn too_small_a_list_is_refused_before_writing() {
        let mut list = Fake::new(1);
        assert_eq!(
            build(0x20_0000, 514 * 4096, &mut list),
            Err(PrpError::ListTooSmall {
                needed: 2,
                available: 1
            })
        );
        assert!(list.entries.is_empty());
    }

    #[test]
    fn list_sizing() {
        assert_eq!(list_pages_for(0), 0);
        assert_eq!(list_pages_for(1), 0);
        assert_eq!(list_pages_for(2), 1);
        assert_eq!(list_pages_for(512), 1);
        assert_eq!(list_pages_for(513), 2);
        assert_eq!(list_pages_for(1023), 2, "511 + 512");
        assert_eq!(list_pages_for(1024), 3);
        // 128 KiB at an offset spans 33 pages: 32 list entries, one list page.
        assert_eq!(list_pages_for_transfer(128 * 1024), 1);
        assert_eq!(list_pages_for_transfer(4096), 0);
        assert_eq!(list_pages_for_transfer(2 * 1024 * 1024), 1);
        assert_eq!(list_pages_for_transfer(4 * 1024 * 1024), 3);
        assert_eq!(pages_spanned(0xfff, 2), 2);
        assert_eq!(pages_spanned(0x1000, 4096), 1);
    }
}

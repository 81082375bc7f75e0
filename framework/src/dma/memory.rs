//! Host memory for DMA: locked, zeroed, from 2 MiB hugepages when the system has them.

use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};

use memmap2::{MmapMut, MmapOptions};

use crate::error::{Error, Result};

/// 2 MiB, the x86 huge page.
pub const HUGE_PAGE_SIZE: usize = 2 << 20;
/// 4 KiB, the base page.
pub const BASE_PAGE_SIZE: usize = 4096;

static HUGEPAGE_WARNING: AtomicBool = AtomicBool::new(false);

/// Page-aligned, zeroed, locked anonymous memory that a device may be given.
///
/// Allocations of at least one huge page come from 2 MiB hugepages (fewer IOTLB entries, and
/// what DPDK and SPDK use); if the system has none reserved, 4 KiB pages are used and one
/// warning says how to reserve some. Smaller allocations use 4 KiB pages: a 4 KiB queue does
/// not pin 2 MiB. Memory is locked so the kernel never moves or swaps a page the IOMMU points at.
#[derive(Debug)]
pub struct HostMemory {
    map: MmapMut,
    page_size: usize,
}

impl HostMemory {
    /// Allocates at least `len` bytes, rounded up to the page size used.
    pub fn allocate(len: usize) -> Result<Self> {
        if len == 0 {
            return Err(Error::InvalidDmaSize {
                len,
                reason: "DMA memory must be at least one byte",
            });
        }
        if len >= HUGE_PAGE_SIZE {
            let rounded = round_up(len, HUGE_PAGE_SIZE)?;
            match MmapOptions::new()
                .len(rounded)
                .huge(Some(21))
                .populate()
                .map_anon()
            {
                Ok(map) => return Self::lock(map, HUGE_PAGE_SIZE),
                Err(err) => {
                    if !HUGEPAGE_WARNING.swap(true, Ordering::Relaxed) {
                        tracing::warn!(
                            error = %err,
                            "no 2 MiB hugepages available, using 4 KiB pages for DMA memory \
                             (reserve some: echo 512 > /proc/sys/vm/nr_hugepages)"
                        );
                    }
                }
            }
        }
        let rounded = round_up(len, BASE_PAGE_SIZE)?;
        let map = MmapOptions::new()
            .len(rounded)
            .populate()
            .map_anon()
            .map_err(|source| Error::DmaAlloc {
                len: rounded,
                what: "anonymous mmap",
                source,
            })?;
        Self::lock(map, BASE_PAGE_SIZE)
    }

    fn lock(map: MmapMut, page_size: usize) -> Result<Self> {
        if let Err(source) = map.lock() {
            return Err(Error::MemlockLimit {
                len: map.len(),
                limit: memlock_limit().map_or_else(|| "unknown".to_string(), |l| l.to_string()),
                source,
            });
        }
        Ok(HostMemory { map, page_size })
    }

    /// Length in bytes (a multiple of the page size).
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Never true: allocations are at least one page.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Page size backing this memory.
    pub fn page_size(&self) -> usize {
        self.page_size
    }

    /// True when backed by 2 MiB hugepages.
    pub fn is_hugepage(&self) -> bool {
        self.page_size == HUGE_PAGE_SIZE
    }

    /// Base address. Access goes through raw pointers only: once mapped for a device, no Rust
    /// reference into this memory may exist.
    pub fn base(&mut self) -> NonNull<u8> {
        NonNull::new(self.map.as_mut_ptr()).expect("mmap never returns null")
    }
}

fn round_up(len: usize, page: usize) -> Result<usize> {
    len.checked_next_multiple_of(page)
        .ok_or(Error::InvalidDmaSize {
            len,
            reason: "too large to round up to a page",
        })
}

/// The soft RLIMIT_MEMLOCK in bytes, if it could be read.
fn memlock_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max locked memory"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_length_is_refused_with_the_value() {
        let err = HostMemory::allocate(0).unwrap_err();
        assert!(err.to_string().contains("invalid DMA size 0"), "{err}");
    }

    #[test]
    fn rounds_up_to_the_page_and_is_zeroed() {
        let mut mem = HostMemory::allocate(100).unwrap();
        assert_eq!(mem.len() % mem.page_size(), 0);
        assert!(mem.len() >= 100);
        let base = mem.base();
        // SAFETY: reading a byte inside a live mapping that no device has been given.
        assert_eq!(unsafe { base.as_ptr().add(99).read() }, 0);
    }

    #[test]
    fn large_allocations_use_hugepages_or_fall_back_to_base_pages() {
        let mem = HostMemory::allocate(HUGE_PAGE_SIZE + 1).unwrap();
        assert!(mem.len() > HUGE_PAGE_SIZE);
        assert!(matches!(mem.page_size(), BASE_PAGE_SIZE | HUGE_PAGE_SIZE));
    }
}

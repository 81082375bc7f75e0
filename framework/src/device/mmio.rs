//! Register access: the small trait drivers are generic over, and its MMIO implementation.
//!
//! Drivers name registers by byte offset into a BAR. The real backend maps the BAR with `mmap`
//! and [`MmioRegion`] turns each access into one volatile load or store; the simulated backend
//! forwards the access to a device model. Because drivers are generic over [`RegisterIo`], the
//! real path is monomorphised down to the volatile access and two fences.
//!
//! # Ordering
//! A store to a register is preceded by a release fence, so that descriptors and queue entries
//! written to DMA memory before a doorbell are visible to the device when it sees the doorbell.
//! A load is followed by an acquire fence, so that DMA memory read after a status register is
//! not read early. On x86 both fences compile to nothing but keep the compiler from reordering.
//!
//! # Panics
//! An access at an offset that is unaligned for its width or lies outside the BAR panics: the
//! offsets are the driver's own constants or indices it has already bounded, so such an access
//! is a bug in the driver, like an out-of-bounds slice index. Values read from the device are
//! never used as offsets without a check.

use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::sync::Arc;

/// Access to the registers of one BAR.
pub trait RegisterIo: Clone + Send + Sync + 'static {
    /// Size of the BAR in bytes.
    fn len(&self) -> usize;
    /// True for a zero-sized BAR.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Reads the 32-bit register at `offset`.
    fn read32(&self, offset: usize) -> u32;
    /// Writes the 32-bit register at `offset`.
    fn write32(&self, offset: usize, value: u32);
    /// Reads the 64-bit register at `offset` with one access.
    fn read64(&self, offset: usize) -> u64;
    /// Writes the 64-bit register at `offset` with one access.
    fn write64(&self, offset: usize, value: u64);
}

/// Checks that an access of `width` bytes at `offset` is aligned and inside `len` bytes.
#[inline(always)]
pub(crate) fn check_access(offset: usize, width: usize, len: usize) {
    assert!(
        offset.is_multiple_of(width) && offset.saturating_add(width) <= len,
        "register access of {width} bytes at {offset:#x} outside a {len:#x}-byte BAR or unaligned"
    );
}

/// Keeps the mapping behind an [`MmioRegion`] alive.
pub trait MappingOwner: Send + Sync + fmt::Debug {}

/// A BAR mapped into this process, accessed with volatile loads and stores.
#[derive(Clone)]
pub struct MmioRegion {
    base: NonNull<u8>,
    len: usize,
    _owner: Arc<dyn MappingOwner>,
}

// SAFETY: the region is device memory mapped for the life of `_owner`; volatile accesses from
// several threads are what the hardware expects, and no Rust reference into it ever exists.
unsafe impl Send for MmioRegion {}
// SAFETY: as for `Send`: all accesses are volatile and go through `&self` methods.
unsafe impl Sync for MmioRegion {}

impl MmioRegion {
    /// Wraps a mapped BAR.
    ///
    /// # Safety
    /// `base` must point to a mapping of at least `len` bytes of device memory that stays valid
    /// until `owner` is dropped, and must be aligned to 8 bytes.
    pub unsafe fn new(base: NonNull<u8>, len: usize, owner: Arc<dyn MappingOwner>) -> Self {
        MmioRegion {
            base,
            len,
            _owner: owner,
        }
    }
}

impl fmt::Debug for MmioRegion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MmioRegion")
            .field("base", &self.base)
            .field("len", &self.len)
            .finish()
    }
}

impl RegisterIo for MmioRegion {
    fn len(&self) -> usize {
        self.len
    }

    #[inline(always)]
    fn read32(&self, offset: usize) -> u32 {
        check_access(offset, 4, self.len);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        let value = unsafe { self.base.as_ptr().add(offset).cast::<u32>().read_volatile() };
        fence(Ordering::Acquire);
        value
    }

    #[inline(always)]
    fn write32(&self, offset: usize, value: u32) {
        check_access(offset, 4, self.len);
        fence(Ordering::Release);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u32>()
                .write_volatile(value)
        }
    }

    #[inline(always)]
    fn read64(&self, offset: usize) -> u64 {
        check_access(offset, 8, self.len);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        let value = unsafe { self.base.as_ptr().add(offset).cast::<u64>().read_volatile() };
        fence(Ordering::Acquire);
        value
    }

    #[inline(always)]
    fn write64(&self, offset: usize, value: u64) {
        check_access(offset, 8, self.len);
        fence(Ordering::Release);
        // SAFETY: in bounds and aligned (checked above); the mapping lives as long as `self`.
        unsafe {
            self.base
                .as_ptr()
                .add(offset)
                .cast::<u64>()
                .write_volatile(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Heap(#[allow(dead_code)] Box<[u64]>);
    impl MappingOwner for Heap {}

    fn region(words: usize) -> MmioRegion {
        let mut backing = vec![0u64; words].into_boxed_slice();
        let base = NonNull::new(backing.as_mut_ptr().cast::<u8>()).unwrap();
        // SAFETY: `backing` is 8-byte aligned, `words * 8` bytes long and owned by the region.
        unsafe { MmioRegion::new(base, words * 8, Arc::new(Heap(backing))) }
    }

    #[test]
    fn reads_back_what_was_written_at_both_widths() {
        let regs = region(4);
        regs.write32(4, 0xdead_beef);
        regs.write64(8, 0x0123_4567_89ab_cdef);
        assert_eq!(regs.read32(4), 0xdead_beef);
        assert_eq!(regs.read64(8), 0x0123_4567_89ab_cdef);
        assert_eq!(regs.read32(8), 0x89ab_cdef, "little-endian halves");
        assert_eq!(regs.read32(12), 0x0123_4567);
    }

    #[test]
    #[should_panic(expected = "outside")]
    fn access_past_the_end_panics_before_touching_memory() {
        region(2).read32(16);
    }

    #[test]
    #[should_panic(expected = "unaligned")]
    fn unaligned_access_panics() {
        region(2).read64(4);
    }
}

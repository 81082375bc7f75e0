//! Mapped DMA memory and the typed views drivers use.
//!
//! Memory a device can write is never behind a Rust reference while the device owns it: queue
//! entries and descriptors are read and written with volatile accesses through [`DmaRegion`]
//! and [`DmaArray`]. Only [`DmaBuffer`] hands out slices, through `&self`/`&mut self`, and the
//! drivers borrow it mutably for the whole of an I/O, so software and device never overlap.
//!
//! # Panics
//! Offsets and indices are the driver's own, already bounded; out-of-bounds or misaligned
//! accesses panic like slice indexing does. Values read from a device are checked by drivers
//! before they are used as indices.

use std::marker::PhantomData;
use std::mem::{align_of, size_of};
use std::ptr::NonNull;
use std::sync::Arc;

use bytemuck::Pod;

use super::memory::HostMemory;
use super::space::{DmaDirection, DmaSpace};

/// Locked host memory mapped into an IOMMU address space. Unmapped before it is freed.
#[derive(Debug)]
pub struct DmaRegion {
    space: Arc<DmaSpace>,
    memory: Option<HostMemory>,
    base: NonNull<u8>,
    len: usize,
    iova: u64,
    direction: DmaDirection,
}

// SAFETY: the region owns its mapping; all access is through raw pointers in `&self`/`&mut self`
// methods that are volatile (shared) or exclusive, so moving it to another thread is sound.
unsafe impl Send for DmaRegion {}
// SAFETY: `&self` methods only do volatile loads/stores of `Pod` values or byte copies, which
// are what concurrent device access already implies; no reference into the memory escapes.
unsafe impl Sync for DmaRegion {}

impl DmaRegion {
    pub(super) fn new(
        space: Arc<DmaSpace>,
        memory: HostMemory,
        base: NonNull<u8>,
        len: usize,
        iova: u64,
        direction: DmaDirection,
    ) -> Self {
        DmaRegion {
            space,
            memory: Some(memory),
            base,
            len,
            iova,
            direction,
        }
    }

    /// The device address of the first byte.
    pub fn iova(&self) -> u64 {
        self.iova
    }

    /// The device address of byte `offset`.
    pub fn iova_at(&self, offset: usize) -> u64 {
        assert!(
            offset <= self.len,
            "offset {offset:#x} past a {:#x}-byte region",
            self.len
        );
        self.iova + offset as u64
    }

    /// The usable length (as requested; the mapping is rounded up to pages).
    pub fn len(&self) -> usize {
        self.len
    }

    /// Never true: regions are at least one byte.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The direction the device was given.
    pub fn direction(&self) -> DmaDirection {
        self.direction
    }

    /// Bytes actually mapped (a whole number of pages).
    pub fn mapped_len(&self) -> usize {
        self.memory.as_ref().map_or(0, HostMemory::len)
    }

    #[inline(always)]
    fn ptr_for(&self, offset: usize, width: usize, align: usize) -> *mut u8 {
        assert!(
            offset.saturating_add(width) <= self.len && offset.is_multiple_of(align),
            "DMA access of {width} bytes at {offset:#x} outside a {:#x}-byte region or unaligned",
            self.len
        );
        // SAFETY: `offset + width <= len` (checked) keeps the pointer inside the mapping.
        unsafe { self.base.as_ptr().add(offset) }
    }

    /// Volatile read of a `T` at `offset` (aligned for `T`).
    #[inline(always)]
    pub fn read<T: Pod>(&self, offset: usize) -> T {
        let ptr = self.ptr_for(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned (checked); any bit pattern is a valid `T: Pod`.
        unsafe { ptr.cast::<T>().read_volatile() }
    }

    /// Volatile write of a `T` at `offset` (aligned for `T`).
    #[inline(always)]
    pub fn write<T: Pod>(&self, offset: usize, value: T) {
        let ptr = self.ptr_for(offset, size_of::<T>(), align_of::<T>());
        // SAFETY: in bounds and aligned (checked); the region is writable memory we own.
        unsafe { ptr.cast::<T>().write_volatile(value) }
    }

    /// Copies bytes out of the region.
    pub fn read_bytes(&self, offset: usize, out: &mut [u8]) {
        let ptr = self.ptr_for(offset, out.len(), 1);
        // SAFETY: source in bounds (checked), destination is a distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(ptr, out.as_mut_ptr(), out.len()) }
    }

    /// Copies bytes into the region.
    pub fn write_bytes(&self, offset: usize, data: &[u8]) {
        let ptr = self.ptr_for(offset, data.len(), 1);
        // SAFETY: destination in bounds (checked), source is a distinct Rust slice.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), ptr, data.len()) }
    }

    /// Sets every byte to `value`.
    pub fn fill(&self, value: u8) {
        let ptr = self.ptr_for(0, self.len, 1);
        // SAFETY: the whole region is in bounds.
        unsafe { std::ptr::write_bytes(ptr, value, self.len) }
    }

    /// A pointer to `len` bytes at `offset`, bounds-checked (panics like [`DmaRegion::read`]).
    ///
    /// For owners that split the region into parts each with its own exclusive holder (the
    /// buffer pool); turning the pointer into a slice is the caller's `unsafe`, justified by
    /// that exclusivity.
    #[inline(always)]
    pub(crate) fn slice_raw(&self, offset: usize, len: usize) -> *mut u8 {
        self.ptr_for(offset, len, 1)
    }

    /// Exclusive view of the bytes, for owners that know the device is not using them.
    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `&mut self` excludes every other access from software; callers hand the
        // region to a device only through APIs that also take it by `&mut` or by value.
        unsafe { std::slice::from_raw_parts_mut(self.base.as_ptr(), self.len) }
    }

    /// Shared view of the bytes, for owners that know the device is not writing them.
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: as for `bytes_mut`; only `DmaBuffer`, which is lent to devices by `&mut`,
        // exposes this.
        unsafe { std::slice::from_raw_parts(self.base.as_ptr(), self.len) }
    }
}

impl Drop for DmaRegion {
    fn drop(&mut self) {
        let mapped_len = self.mapped_len();
        match self.space.mapper().unmap(self.iova, mapped_len) {
            Ok(()) => self.space.free_iova(self.iova, mapped_len),
            Err(err) => {
                // The device may still reach this memory: leak it rather than let it be reused.
                tracing::error!(%err, iova = self.iova, "DMA unmap failed; leaking the memory");
                std::mem::forget(self.memory.take());
            }
        }
    }
}

/// A fixed-length array of `T` in device-visible memory: queues and descriptor rings.
#[derive(Debug)]
pub struct DmaArray<T: Pod> {
    region: DmaRegion,
    count: usize,
    _element: PhantomData<T>,
}

impl<T: Pod> DmaArray<T> {
    pub(super) fn new(region: DmaRegion, count: usize) -> Self {
        DmaArray {
            region,
            count,
            _element: PhantomData,
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.count
    }

    /// Never true: arrays have at least one element.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Device address of element 0.
    pub fn iova(&self) -> u64 {
        self.region.iova()
    }

    /// Device address of element `index`.
    pub fn iova_of(&self, index: usize) -> u64 {
        assert!(
            index < self.count,
            "index {index} of a {}-element DMA array",
            self.count
        );
        self.region.iova() + (index * size_of::<T>()) as u64
    }

    /// Volatile read of element `index`.
    #[inline(always)]
    pub fn get(&self, index: usize) -> T {
        assert!(
            index < self.count,
            "index {index} of a {}-element DMA array",
            self.count
        );
        self.region.read(index * size_of::<T>())
    }

    /// Volatile write of element `index`.
    #[inline(always)]
    pub fn set(&self, index: usize, value: T) {
        assert!(
            index < self.count,
            "index {index} of a {}-element DMA array",
            self.count
        );
        self.region.write(index * size_of::<T>(), value)
    }

    /// The region underneath, for byte-level access (fields inside an entry).
    pub fn region(&self) -> &DmaRegion {
        &self.region
    }
}

/// A data buffer software fills or reads while no I/O uses it.
///
/// Drivers take it by `&mut` for the length of an I/O, so its slices never alias a transfer.
#[derive(Debug)]
pub struct DmaBuffer {
    region: DmaRegion,
}

impl DmaBuffer {
    pub(crate) fn new(region: DmaRegion) -> Self {
        DmaBuffer { region }
    }

    /// Device address of the first byte.
    pub fn iova(&self) -> u64 {
        self.region.iova()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.region.len()
    }

    /// Never true.
    pub fn is_empty(&self) -> bool {
        self.region.is_empty()
    }

    /// The bytes, to read after an I/O completed.
    pub fn as_slice(&self) -> &[u8] {
        self.region.bytes()
    }

    /// The bytes, to fill before an I/O.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        self.region.bytes_mut()
    }

    /// The mapped region, for drivers building descriptors.
    pub fn region(&self) -> &DmaRegion {
        &self.region
    }
}

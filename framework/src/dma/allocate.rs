//! Mapping memory into an IOMMU address space: the [`DmaSpace`] methods that hand out
//! regions, arrays and buffers. On top of `space.rs` (the address space and its IOVA
//! allocator) and `region.rs` (one mapping, which unmaps itself through its space on drop), so
//! the space never needs to know how a region is built.

use std::sync::Arc;

use bytemuck::Pod;

use super::memory::HostMemory;
use super::region::{DmaArray, DmaBuffer, DmaRegion};
use super::space::{DmaDirection, DmaSpace};
use crate::error::{Error, Result};

impl DmaSpace {
    /// Allocates locked host memory of at least `len` bytes and maps it for the device.
    ///
    /// The IOVA is aligned to the backing page size, so a hugepage maps as one IOMMU large page.
    pub fn allocate(self: &Arc<Self>, len: usize, direction: DmaDirection) -> Result<DmaRegion> {
        let mut memory = HostMemory::allocate(len)?;
        let mapped_len = memory.len();
        let iova = self.alloc_iova(mapped_len, memory.page_size())?;
        let host = memory.base();
        // SAFETY: `host` is a page-aligned mapping of `mapped_len` bytes owned by `memory`,
        // which the returned region keeps until it has unmapped this range in its `Drop`.
        let mapped = unsafe { self.mapper().map(iova, host, mapped_len, direction) };
        if let Err(err) = mapped {
            self.free_iova(iova, mapped_len);
            return Err(err);
        }
        tracing::trace!(space = %self.name(), iova, len = mapped_len, ?direction, "DMA map");
        Ok(DmaRegion::new(
            Arc::clone(self),
            memory,
            host,
            len,
            iova,
            direction,
        ))
    }

    /// An array of `count` `T`s in device-visible memory (queues, descriptor rings).
    pub fn allocate_array<T: Pod>(
        self: &Arc<Self>,
        count: usize,
        direction: DmaDirection,
    ) -> Result<DmaArray<T>> {
        let bytes = count
            .checked_mul(std::mem::size_of::<T>())
            .filter(|&b| b > 0)
            .ok_or(Error::InvalidDmaSize {
                len: count,
                reason: "array element count must be non-zero and fit in memory",
            })?;
        Ok(DmaArray::new(self.allocate(bytes, direction)?, count))
    }

    /// A data buffer of `len` bytes that software fills or reads between I/Os.
    pub fn allocate_buffer(
        self: &Arc<Self>,
        len: usize,
        direction: DmaDirection,
    ) -> Result<DmaBuffer> {
        Ok(DmaBuffer::new(self.allocate(len, direction)?))
    }
}

//! IOMMU address spaces: the mapper a backend provides and the allocator on top of it.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use bytemuck::Pod;
use serde::{Deserialize, Serialize};

use super::iova::{IovaAllocator, IovaRange};
use super::memory::HostMemory;
use super::region::{DmaArray, DmaBuffer, DmaRegion};
use crate::error::{Error, Result};

/// Which way a device may move data through a mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmaDirection {
    /// The device only reads (submission queues, TX buffers, data to write).
    ToDevice,
    /// The device only writes (completion queues are read too: use `Bidirectional`).
    FromDevice,
    /// The device reads and writes.
    Bidirectional,
}

impl DmaDirection {
    /// True if the device may read through the mapping.
    pub fn device_reads(self) -> bool {
        matches!(self, DmaDirection::ToDevice | DmaDirection::Bidirectional)
    }

    /// True if the device may write through the mapping.
    pub fn device_writes(self) -> bool {
        matches!(self, DmaDirection::FromDevice | DmaDirection::Bidirectional)
    }
}

/// An IOMMU domain a backend can map host memory into.
///
/// Implemented by the iommufd IOAS, the VFIO type1 container and the simulated IOMMU.
pub trait IommuMapper: Send + Sync + fmt::Debug {
    /// A name for messages (`iommufd ioas 2`, `sim iommu`).
    fn name(&self) -> String;
    /// The IOVA ranges the IOMMU can translate.
    fn iova_ranges(&self) -> Result<Vec<IovaRange>>;
    /// Maps `len` bytes at `host` to `iova`.
    ///
    /// # Safety
    /// `host` must be valid for reads and writes of `len` bytes, page aligned, and stay so
    /// until [`IommuMapper::unmap`] of the same range has returned.
    unsafe fn map(
        &self,
        iova: u64,
        host: NonNull<u8>,
        len: usize,
        direction: DmaDirection,
    ) -> Result<()>;
    /// Removes the mapping of `[iova, iova + len)`; afterwards the device cannot reach it.
    fn unmap(&self, iova: u64, len: usize) -> Result<()>;
}

/// An IOMMU address space: a mapper plus the IOVA allocator that honours its valid ranges.
#[derive(Debug)]
pub struct DmaSpace {
    mapper: Arc<dyn IommuMapper>,
    iova: Mutex<IovaAllocator>,
}

impl DmaSpace {
    /// Wraps a mapper, reading its valid IOVA ranges.
    pub fn new(mapper: Arc<dyn IommuMapper>) -> Result<Arc<Self>> {
        let ranges = mapper.iova_ranges()?;
        let iova = IovaAllocator::new(mapper.name(), &ranges)?;
        Ok(Arc::new(DmaSpace {
            mapper,
            iova: Mutex::new(iova),
        }))
    }

    /// The mapper's name.
    pub fn name(&self) -> String {
        self.mapper.name()
    }

    /// The IOMMU behind this space.
    pub fn mapper(&self) -> &Arc<dyn IommuMapper> {
        &self.mapper
    }

    /// Allocates locked host memory of at least `len` bytes and maps it for the device.
    ///
    /// The IOVA is aligned to the backing page size, so a hugepage maps as one IOMMU large page.
    pub fn allocate(self: &Arc<Self>, len: usize, direction: DmaDirection) -> Result<DmaRegion> {
        let mut memory = HostMemory::allocate(len)?;
        let mapped_len = memory.len();
        let iova = self
            .iova
            .lock()
            .expect("IOVA allocator lock poisoned")
            .alloc(mapped_len as u64, memory.page_size() as u64)?;
        let host = memory.base();
        // SAFETY: `host` is a page-aligned mapping of `mapped_len` bytes owned by `memory`,
        // which the returned region keeps until it has unmapped this range in its `Drop`.
        let mapped = unsafe { self.mapper.map(iova, host, mapped_len, direction) };
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

    /// Called by [`DmaRegion`]'s drop after a successful unmap.
    pub(super) fn free_iova(&self, iova: u64, len: usize) {
        let result = self
            .iova
            .lock()
            .expect("IOVA allocator lock poisoned")
            .free(iova, len as u64);
        if let Err(err) = result {
            tracing::error!(%err, "IOVA free failed");
        }
    }
}

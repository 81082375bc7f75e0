//! IOMMU address spaces: the mapper a backend provides and the IOVA allocator on top of it.
//! Mapping memory into a space (`DmaSpace::allocate*`) is in `allocate.rs`, above both this
//! file and the regions it hands out.

use std::fmt;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::iova::{IovaAllocator, IovaRange};
use crate::error::Result;

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

    /// Takes `len` bytes of IOVA aligned to `align`, for a mapping about to be made.
    pub(super) fn alloc_iova(&self, len: usize, align: usize) -> Result<u64> {
        self.iova
            .lock()
            .expect("IOVA allocator lock poisoned")
            .alloc(len as u64, align as u64)
    }

    /// Called by `DmaRegion`'s drop after a successful unmap.
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

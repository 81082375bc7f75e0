//! DMA memory: locked host memory, IOMMU address spaces, typed buffers and buffer pools.

mod allocate;
mod iova;
mod memory;
pub mod pool;
mod region;
mod space;

pub use iova::{IovaAllocator, IovaRange};
pub use memory::{HostMemory, BASE_PAGE_SIZE, HUGE_PAGE_SIZE};
pub use pool::{BufferPool, PoolBuffer};
pub use region::{DmaArray, DmaBuffer, DmaRegion};
pub use space::{DmaDirection, DmaSpace, IommuMapper};

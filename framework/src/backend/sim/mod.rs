//! The simulated backend: an emulated PCI bus with IOMMU groups, reset groups, a checking
//! IOMMU, device models, a controlled clock and fault injection.

mod clock;
mod iommu;
mod model;
pub mod topology;

pub use clock::SimClock;
pub use iommu::{DmaAccess, DmaFault, FaultReason, SimIommu, DEFAULT_IOVA_RANGES};
pub use model::{BarInfo, DeviceModel, ModelContext, ModelFactory, ModelInfo, ModelRegistry, ResetKind};

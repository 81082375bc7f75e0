//! The simulated backend: an emulated PCI bus with IOMMU groups, reset groups, a checking
//! IOMMU, device models, a controlled clock and fault injection.

mod bus;
mod clock;
mod config_space;
mod iommu;
mod model;
pub mod topology;

pub use bus::{
    FunctionStats, SimBar, SimBus, SimFault, SimFunction, BUS_RESET_ASSERT, BUS_RESET_READY_DELAY,
    FLR_READY_DELAY, LINK_TRAIN_LIMIT, RESET_READY_LIMIT,
};
pub use clock::SimClock;
pub use iommu::{DmaAccess, DmaFault, FaultReason, SimIommu, DEFAULT_IOVA_RANGES};
pub use model::{
    BarInfo, DeviceModel, ModelContext, ModelFactory, ModelInfo, ModelRegistry, ResetKind,
};

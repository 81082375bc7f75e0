//! Test device: a DMA copy engine model and its driver.
//!
//! The smallest device that exercises the whole simulated path: a driver programs registers
//! through [`crate::device::RegisterIo`], the model reads descriptors and moves data by DMA
//! through the simulated IOMMU, writes phase-tagged completions and raises MSI-X vector 0.
//! [`spec`] is shared by both sides; [`model`] plugs into the simulated bus as `copy-engine`.

pub mod driver;
pub mod model;
pub mod spec;

pub use driver::{Completion, CopyEngineDriver, CopyRequest};
pub use model::{CopyEngine, CopyEngineStats};

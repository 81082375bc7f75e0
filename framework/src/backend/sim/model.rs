//! The device-model interface of the simulated bus.
//!
//! A model is the device side of a PCI function: it answers register reads, reacts to register
//! writes, moves data by DMA through the simulated IOMMU, raises MSI-X vectors, runs timers on
//! the bus's virtual clock and returns to its power-on state on a reset. The bus emulates the
//! config space (header, BARs, MSI-X / PCIe / PM capabilities) from [`ModelInfo`], so models
//! only describe themselves.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;

use super::clock::SimClock;
use super::iommu::{DmaAccess, DmaFault, FaultReason, SimIommu};
use crate::device::EventFd;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::time::Clock;

/// One memory BAR of a model (always 64-bit, non-prefetchable).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BarInfo {
    /// BAR index (0, 2 or 4 for 64-bit BARs).
    pub index: u8,
    /// Size in bytes, a power of two of at least 16.
    pub size: u64,
}

/// What a model is, for the emulated config space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelInfo {
    /// PCI vendor ID.
    pub vendor_id: u16,
    /// PCI device ID.
    pub device_id: u16,
    /// 24-bit class code (base class, subclass, programming interface).
    pub class_code: u32,
    /// Revision ID.
    pub revision: u8,
    /// Memory BARs.
    pub bars: Vec<BarInfo>,
    /// MSI-X vectors (0 for none).
    pub msix_vectors: u16,
}

/// The kind of reset a model is put through.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResetKind {
    /// Function Level Reset of this function alone.
    FunctionLevel,
    /// Secondary bus or slot reset, hitting every function of the reset group.
    Bus,
}

/// The device side of a simulated PCI function.
pub trait DeviceModel: Send + 'static {
    /// Identity and layout for the config space.
    fn info(&self) -> ModelInfo;
    /// A read of `width` (4 or 8) bytes at `offset` of BAR `bar`.
    fn mmio_read(&mut self, ctx: &mut ModelContext<'_>, bar: u8, offset: u64, width: u8) -> u64;
    /// A write of `width` (4 or 8) bytes at `offset` of BAR `bar`.
    fn mmio_write(
        &mut self,
        ctx: &mut ModelContext<'_>,
        bar: u8,
        offset: u64,
        width: u8,
        value: u64,
    );
    /// A timer set with [`ModelContext::schedule`] fell due.
    fn on_timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        let _ = (ctx, token);
    }
    /// The function was reset: return to the power-on state.
    fn reset(&mut self, kind: ResetKind);
    /// For tests that inspect a model's state (`downcast_ref` to the concrete type).
    fn as_any(&self) -> &dyn Any;
    /// Mutable access for tests that reconfigure a model (fault injection).
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

/// MSI-X state of one function, shared by the bus and its [`ModelContext`].
#[derive(Debug, Default)]
pub(crate) struct MsixVectors {
    /// One eventfd per vector ever enabled; kept across disable and enable so handles stay
    /// valid, as the VFIO backend keeps them.
    pub(crate) vectors: Vec<Arc<EventFd>>,
    /// Vectors currently enabled (0 when MSI-X is off).
    pub(crate) enabled: usize,
}

/// What a model may do while the bus is calling it.
pub struct ModelContext<'a> {
    pub(crate) address: PciAddress,
    pub(crate) index: usize,
    pub(crate) bus_master: bool,
    pub(crate) iommu: &'a SimIommu,
    pub(crate) clock: &'a SimClock,
    pub(crate) msix: &'a MsixVectors,
    pub(crate) interrupts_raised: &'a mut u64,
}

impl fmt::Debug for ModelContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ModelContext")
            .field("address", &self.address)
            .field("bus_master", &self.bus_master)
            .finish()
    }
}

impl ModelContext<'_> {
    /// The function the model is.
    pub fn address(&self) -> PciAddress {
        self.address
    }

    /// Current virtual time.
    pub fn now(&self) -> Duration {
        self.clock.now()
    }

    fn check_bus_master(&self, iova: u64, len: usize, access: DmaAccess) -> Result<(), DmaFault> {
        if self.bus_master {
            return Ok(());
        }
        Err(DmaFault {
            device: self.address,
            iova,
            len,
            access,
            reason: FaultReason::BusMasterDisabled,
        })
    }

    /// Reads guest memory at `iova` through the IOMMU.
    pub fn dma_read(&mut self, iova: u64, buf: &mut [u8]) -> Result<(), DmaFault> {
        self.check_bus_master(iova, buf.len(), DmaAccess::Read)?;
        self.iommu.dma_read(self.address, iova, buf)
    }

    /// Writes guest memory at `iova` through the IOMMU.
    pub fn dma_write(&mut self, iova: u64, data: &[u8]) -> Result<(), DmaFault> {
        self.check_bus_master(iova, data.len(), DmaAccess::Write)?;
        self.iommu.dma_write(self.address, iova, data)
    }

    /// Reads a `T` from guest memory.
    pub fn dma_read_pod<T: Pod>(&mut self, iova: u64) -> Result<T, DmaFault> {
        let mut value = T::zeroed();
        self.dma_read(iova, bytemuck::bytes_of_mut(&mut value))?;
        Ok(value)
    }

    /// Writes a `T` to guest memory.
    pub fn dma_write_pod<T: Pod>(&mut self, iova: u64, value: &T) -> Result<(), DmaFault> {
        self.dma_write(iova, bytemuck::bytes_of(value))
    }

    /// Signals MSI-X vector `vector`. Dropped (as hardware would keep it pending) when MSI-X is
    /// not enabled or the vector is beyond what the driver enabled.
    pub fn raise_interrupt(&mut self, vector: u16) {
        let enabled = &self.msix.vectors[..self.msix.enabled.min(self.msix.vectors.len())];
        if let Some(event) = enabled.get(usize::from(vector)) {
            *self.interrupts_raised += 1;
            if let Err(err) = event.signal() {
                tracing::error!(device = %self.address, vector, %err, "sim MSI-X signal failed");
            }
        }
    }

    /// Calls [`DeviceModel::on_timer`] with `token` once `after` of virtual time has passed.
    pub fn schedule(&mut self, after: Duration, token: u64) {
        self.clock.schedule(after, self.index, token);
    }
}

/// Builds a model from its topology-file parameters.
pub type ModelFactory = fn(&toml::Table) -> Result<Box<dyn DeviceModel>>;

/// The device models a topology file may name.
#[derive(Clone, Default)]
pub struct ModelRegistry {
    factories: BTreeMap<String, ModelFactory>,
}

impl fmt::Debug for ModelRegistry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.factories.keys()).finish()
    }
}

impl ModelRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `factory` under `name`, replacing an earlier one.
    pub fn register(&mut self, name: &str, factory: ModelFactory) -> &mut Self {
        self.factories.insert(name.to_string(), factory);
        self
    }

    /// Builds the model `name` for `device`.
    pub fn build(
        &self,
        device: PciAddress,
        name: &str,
        params: &toml::Table,
    ) -> Result<Box<dyn DeviceModel>> {
        let factory = self
            .factories
            .get(name)
            .ok_or_else(|| Error::UnknownModel {
                device,
                name: name.to_string(),
                known: self
                    .factories
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        factory(params)
    }
}

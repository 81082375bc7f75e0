//! A PCI function as drivers see it: config space, BAR registers, DMA, MSI-X, reset.
//!
//! [`PciFunction`] is what a backend implements (VFIO or the simulated bus); drivers are generic
//! over it and never learn which one they run on. [`PciFunctionExt`] adds the helpers every
//! driver needs on top of raw config access (bus mastering, capabilities, FLR support).

pub mod config;
mod interrupt;
pub mod mmio;

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use interrupt::{EventFd, InterruptVector};
pub use mmio::{MappingOwner, MmioRegion, RegisterIo};

use crate::dma::DmaSpace;
use crate::error::{Error, Result};
use crate::pci::PciAddress;
use crate::time::Clock;

/// How a function (or its slot or bus) can be reset, as sysfs `reset_method` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetMethod {
    /// Device-specific reset quirk.
    DeviceSpecific,
    /// ACPI `_RST`.
    Acpi,
    /// PCIe Function Level Reset.
    Flr,
    /// Advanced Features FLR (conventional PCI).
    AfFlr,
    /// D3hot to D0 power-state transition.
    Pm,
    /// Secondary bus reset of the parent bridge (hits every function on the bus).
    Bus,
    /// Hotplug slot reset (hits every function in the slot).
    Slot,
    /// CXL bus reset.
    CxlBus,
}

impl ResetMethod {
    /// The sysfs name of the method.
    pub fn sysfs_name(self) -> &'static str {
        match self {
            ResetMethod::DeviceSpecific => "device_specific",
            ResetMethod::Acpi => "acpi",
            ResetMethod::Flr => "flr",
            ResetMethod::AfFlr => "af_flr",
            ResetMethod::Pm => "pm",
            ResetMethod::Bus => "bus",
            ResetMethod::Slot => "slot",
            ResetMethod::CxlBus => "cxl_bus",
        }
    }

    /// Parses a sysfs name.
    pub fn from_sysfs_name(name: &str) -> Option<Self> {
        Some(match name {
            "device_specific" => ResetMethod::DeviceSpecific,
            "acpi" => ResetMethod::Acpi,
            "flr" => ResetMethod::Flr,
            "af_flr" => ResetMethod::AfFlr,
            "pm" => ResetMethod::Pm,
            "bus" => ResetMethod::Bus,
            "slot" => ResetMethod::Slot,
            "cxl_bus" => ResetMethod::CxlBus,
            _ => return None,
        })
    }

    /// True for methods that reset only this function.
    pub fn is_function_local(self) -> bool {
        !matches!(
            self,
            ResetMethod::Bus | ResetMethod::Slot | ResetMethod::CxlBus
        )
    }
}

impl fmt::Display for ResetMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.sysfs_name())
    }
}

/// Who holds a member of a reset group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum Ownership {
    /// Opened by this process.
    Owned,
    /// Held by another process or owner, named when known.
    OwnedElsewhere { owner: String },
    /// Not opened by anyone we know of.
    Unopened,
}

/// One function that a bus or slot reset of a device would also hit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetGroupMember {
    /// The member's address.
    pub address: PciAddress,
    /// Its IOMMU group, when known.
    pub iommu_group: Option<u32>,
    /// How it can be reset on its own, as sysfs lists it (empty when unknown).
    #[serde(default)]
    pub reset_methods: Vec<ResetMethod>,
    /// Who holds it.
    pub ownership: Ownership,
}

/// A PCI function opened through a backend.
///
/// Implemented by the VFIO backends and by the simulated bus. Every method is safe: the
/// backends keep `unsafe` inside their ioctl, mmap and DMA modules.
pub trait PciFunction: Send + Sync + 'static {
    /// Register access to a BAR; cheap to clone, shareable across cores.
    type Registers: RegisterIo;

    /// The function's address.
    fn address(&self) -> PciAddress;
    /// Reads `buf.len()` bytes of config space at `offset`.
    fn read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()>;
    /// Writes `data` to config space at `offset`.
    fn write_config(&self, offset: u16, data: &[u8]) -> Result<()>;
    /// Maps memory BAR `index` for register access.
    fn map_bar(&self, index: u8) -> Result<Self::Registers>;
    /// The IOMMU address space the function's DMA goes through.
    fn dma_space(&self) -> &Arc<DmaSpace>;
    /// Enables MSI-X with `count` vectors, each signalling its own eventfd. A vector keeps
    /// its eventfd across [`disable_msix`](Self::disable_msix) and a later enable, so handles
    /// taken before a reset still fire after it.
    fn enable_msix(&self, count: u16) -> Result<Vec<InterruptVector>>;
    /// Disables MSI-X: no vector fires until it is enabled again.
    fn disable_msix(&self) -> Result<()>;
    /// The reset methods the kernel (or the simulated bus) offers for this function.
    fn reset_methods(&self) -> Vec<ResetMethod>;
    /// Resets this function alone (FLR or another function-local method).
    fn reset_function(&self) -> Result<()>;
    /// The functions a bus or slot reset of this one would hit, with their ownership.
    fn reset_group(&self) -> Result<Vec<ResetGroupMember>>;
    /// Resets the whole reset group (secondary bus or slot reset). Refused unless every member
    /// is owned by this process.
    fn reset_group_hot(&self) -> Result<()>;
    /// The clock drivers of this function use for deadlines.
    fn clock(&self) -> &Arc<dyn Clock>;
}

/// Config-space helpers for every [`PciFunction`].
pub trait PciFunctionExt: PciFunction {
    /// Reads a 16-bit config register.
    fn read_config_u16(&self, offset: u16) -> Result<u16> {
        let mut b = [0u8; 2];
        self.read_config(offset, &mut b)?;
        Ok(u16::from_le_bytes(b))
    }

    /// Reads a 32-bit config register.
    fn read_config_u32(&self, offset: u16) -> Result<u32> {
        let mut b = [0u8; 4];
        self.read_config(offset, &mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    /// Writes a 16-bit config register.
    fn write_config_u16(&self, offset: u16, value: u16) -> Result<()> {
        self.write_config(offset, &value.to_le_bytes())
    }

    /// Reads the vendor and device IDs, failing with [`Error::DeviceGone`] on all ones.
    fn ids(&self) -> Result<(u16, u16)> {
        let id = self.read_config_u32(config::VENDOR_ID)?;
        if id == u32::MAX {
            return Err(Error::DeviceGone {
                device: self.address(),
            });
        }
        Ok((id as u16, (id >> 16) as u16))
    }

    /// Sets or clears bits of the command register, returning its previous value.
    fn update_command(&self, set: u16, clear: u16) -> Result<u16> {
        let old = self.read_config_u16(config::COMMAND)?;
        self.write_config_u16(config::COMMAND, (old & !clear) | set)?;
        Ok(old)
    }

    /// Enables or disables memory decoding and bus mastering together: a driver needs both
    /// to run, and the reset coordinator clears both before a reset.
    fn set_bus_master(&self, enable: bool) -> Result<()> {
        let bits = config::COMMAND_MEMORY | config::COMMAND_BUS_MASTER;
        if enable {
            self.update_command(bits, 0)?;
        } else {
            self.update_command(0, bits)?;
        }
        Ok(())
    }

    /// The standard capability list.
    fn capabilities(&self) -> Result<Vec<config::Capability>> {
        let mut header = [0u8; 256];
        self.read_config(0, &mut header)?;
        Ok(config::capabilities(&header))
    }

    /// True when the PCIe capability advertises Function Level Reset.
    fn has_flr(&self) -> Result<bool> {
        let Some(pcie) = self
            .capabilities()?
            .into_iter()
            .find(|c| c.id == config::CAP_ID_PCIE)
        else {
            return Ok(false);
        };
        let devcap = self.read_config_u32(pcie.offset + config::PCIE_DEVCAP)?;
        Ok(devcap & config::PCIE_DEVCAP_FLR != 0)
    }

    /// Number of MSI-X vectors the function implements (0 without the capability).
    fn msix_vector_count(&self) -> Result<u16> {
        let Some(msix) = self
            .capabilities()?
            .into_iter()
            .find(|c| c.id == config::CAP_ID_MSIX)
        else {
            return Ok(0);
        };
        let control = self.read_config_u16(msix.offset + config::MSIX_MESSAGE_CONTROL)?;
        Ok((control & config::MSIX_TABLE_SIZE_MASK) + 1)
    }
}

impl<F: PciFunction + ?Sized> PciFunctionExt for F {}

/// A shared function is a function: a driver can own an `Arc<F>` while the reset coordinator
/// holds another handle to the same function.
impl<F: PciFunction> PciFunction for Arc<F> {
    type Registers = F::Registers;

    fn address(&self) -> PciAddress {
        (**self).address()
    }
    fn read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()> {
        (**self).read_config(offset, buf)
    }
    fn write_config(&self, offset: u16, data: &[u8]) -> Result<()> {
        (**self).write_config(offset, data)
    }
    fn map_bar(&self, index: u8) -> Result<Self::Registers> {
        (**self).map_bar(index)
    }
    fn dma_space(&self) -> &Arc<DmaSpace> {
        (**self).dma_space()
    }
    fn enable_msix(&self, count: u16) -> Result<Vec<InterruptVector>> {
        (**self).enable_msix(count)
    }
    fn disable_msix(&self) -> Result<()> {
        (**self).disable_msix()
    }
    fn reset_methods(&self) -> Vec<ResetMethod> {
        (**self).reset_methods()
    }
    fn reset_function(&self) -> Result<()> {
        (**self).reset_function()
    }
    fn reset_group(&self) -> Result<Vec<ResetGroupMember>> {
        (**self).reset_group()
    }
    fn reset_group_hot(&self) -> Result<()> {
        (**self).reset_group_hot()
    }
    fn clock(&self) -> &Arc<dyn Clock> {
        (**self).clock()
    }
}

/// The object-safe part of a [`PciFunction`] that the reset coordinator drives: config space,
/// interrupts off, the reset primitives and the clock. Every `PciFunction` is one.
pub trait ResetTarget: Send + Sync {
    /// The function's address.
    fn target_address(&self) -> PciAddress;
    /// Reads config space.
    fn target_read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()>;
    /// Writes config space.
    fn target_write_config(&self, offset: u16, data: &[u8]) -> Result<()>;
    /// Masks every MSI-X vector.
    fn target_disable_msix(&self) -> Result<()>;
    /// The reset methods on offer.
    fn target_reset_methods(&self) -> Vec<ResetMethod>;
    /// Function-level reset.
    fn target_reset_function(&self) -> Result<()>;
    /// Members of the reset group with their ownership.
    fn target_reset_group(&self) -> Result<Vec<ResetGroupMember>>;
    /// Bus or slot reset of the whole group.
    fn target_reset_group_hot(&self) -> Result<()>;
    /// The function's clock.
    fn target_clock(&self) -> Arc<dyn Clock>;
}

impl<F: PciFunction> ResetTarget for F {
    fn target_address(&self) -> PciAddress {
        self.address()
    }
    fn target_read_config(&self, offset: u16, buf: &mut [u8]) -> Result<()> {
        self.read_config(offset, buf)
    }
    fn target_write_config(&self, offset: u16, data: &[u8]) -> Result<()> {
        self.write_config(offset, data)
    }
    fn target_disable_msix(&self) -> Result<()> {
        self.disable_msix()
    }
    fn target_reset_methods(&self) -> Vec<ResetMethod> {
        self.reset_methods()
    }
    fn target_reset_function(&self) -> Result<()> {
        self.reset_function()
    }
    fn target_reset_group(&self) -> Result<Vec<ResetGroupMember>> {
        self.reset_group()
    }
    fn target_reset_group_hot(&self) -> Result<()> {
        self.reset_group_hot()
    }
    fn target_clock(&self) -> Arc<dyn Clock> {
        Arc::clone(self.clock())
    }
}

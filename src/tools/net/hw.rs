//! Real ports: a function bound to vfio-pci, opened through [`VfioContext`], its driver
//! chosen by its PCI ids (an 82599 gets `userpci-ixgbe`, an 82576 `userpci-igb`). The tools'
//! loops are generic over [`NetPort`], so what runs on a port is a [`PortJob`], called once
//! with the driver's concrete type.

use crate::framework::backend::vfio::{VfioContext, VfioFunction, VfioOptions};
use crate::framework::device::PciFunctionExt;
use crate::framework::net::NetPort;
use crate::framework::pci::PciAddress;
use crate::igb::{IgbDevice, IgbOptions, IGB_82576_DEVICE_IDS};
use crate::ixgbe::{IxgbeDevice, IxgbeOptions, INTEL_VENDOR_ID, IXGBE_82599_DEVICE_IDS};

use crate::tools::error::{Result, ToolError};

/// Work on one or more ports of one driver.
pub trait PortJob {
    /// What the job returns.
    type Output;
    /// Runs on `ports` (in the order their addresses were given).
    fn run<P: NetPort>(self, ports: Vec<P>) -> Result<Self::Output>
    where
        ToolError: From<P::Error>;
}

/// The NIC drivers the tools know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// Intel 82599 (`userpci-ixgbe`).
    Ixgbe,
    /// Intel 82576 (`userpci-igb`).
    Igb,
}

impl Driver {
    /// The driver for a function with these ids, if any.
    pub fn for_ids(vendor: u16, device: u16) -> Option<Driver> {
        if vendor != INTEL_VENDOR_ID {
            return None;
        }
        if IXGBE_82599_DEVICE_IDS.contains(&device) {
            return Some(Driver::Ixgbe);
        }
        if IGB_82576_DEVICE_IDS.contains(&device) {
            return Some(Driver::Igb);
        }
        None
    }

    fn name(self) -> &'static str {
        match self {
            Driver::Ixgbe => "ixgbe",
            Driver::Igb => "igb",
        }
    }
}

fn open_vfio(context: &VfioContext, address: PciAddress) -> Result<(VfioFunction, Driver)> {
    let function = context.open(address)?;
    let (vendor, device) = function.ids()?;
    let driver = Driver::for_ids(vendor, device).ok_or_else(|| ToolError::UnsupportedNic {
        address,
        vendor,
        device,
    })?;
    Ok((function, driver))
}

/// Opens every address (one VFIO context, so functions of one IOMMU group or reset group
/// can be used together), brings each port up with its driver's defaults, and runs `job` on
/// them. All ports must have the same driver.
pub fn with_ports<J: PortJob>(addresses: &[PciAddress], job: J) -> Result<J::Output> {
    let context = VfioContext::new(VfioOptions::new())?;
    let mut functions = Vec::with_capacity(addresses.len());
    for &address in addresses {
        functions.push((address, open_vfio(&context, address)?));
    }
    let driver = functions.first().map(|(_, (_, d))| *d);
    if let Some((address, (_, other))) = functions.iter().find(|(_, (_, d))| Some(*d) != driver) {
        return Err(ToolError::MixedDrivers {
            first: addresses[0],
            first_driver: driver.map_or("none", Driver::name),
            other: *address,
            other_driver: other.name(),
        });
    }
    match driver {
        Some(Driver::Ixgbe) | None => {
            let mut ports = Vec::with_capacity(functions.len());
            for (_, (function, _)) in functions {
                ports.push(IxgbeDevice::new(function, IxgbeOptions::default())?);
            }
            job.run(ports)
        }
        Some(Driver::Igb) => {
            let mut ports = Vec::with_capacity(functions.len());
            for (_, (function, _)) in functions {
                ports.push(IgbDevice::new(function, IgbOptions::default())?);
            }
            job.run(ports)
        }
    }
}

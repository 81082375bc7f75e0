//! Bring-up options and what bring-up learned.

use std::time::Duration;

use userpci_framework::pci::PciAddress;

use crate::error::{Error, Result};
use crate::spec::registers::{Cap, Vs};

/// How to bring a controller up.
#[derive(Clone, Debug)]
pub struct ControllerOptions {
    /// Entries of the admin submission and completion queues (2..=4096, capped by
    /// `CAP.MQES + 1`).
    pub admin_entries: u16,
    /// I/O queue pairs to ask for (Set Features Number of Queues); the controller may grant
    /// fewer.
    pub io_queues: u16,
    /// How long an admin command may take.
    pub admin_timeout: Duration,
    /// Use shadow doorbells (Doorbell Buffer Config) when the controller offers them
    /// (`OACS` bit 8), for the I/O queues.
    pub shadow_doorbells: bool,
    /// Enable MSI-X (one vector for the admin queue, one per I/O queue while there are
    /// vectors) so interrupts can wake a sleeping reactor. Polling works either way.
    pub interrupts: bool,
    /// Largest data transfer per command the driver issues, in bytes (a multiple of 4 KiB);
    /// MDTS lowers it. Larger requests are split.
    pub max_transfer: u64,
}

impl Default for ControllerOptions {
    fn default() -> Self {
        ControllerOptions {
            admin_entries: 32,
            io_queues: 4,
            admin_timeout: Duration::from_secs(10),
            shadow_doorbells: true,
            interrupts: true,
            max_transfer: 1 << 20,
        }
    }
}

impl ControllerOptions {
    pub(super) fn validate(&self, device: PciAddress, cap: Cap) -> Result<()> {
        let invalid = |what, value: u64, expected: String| Error::InvalidOption {
            device,
            what,
            value,
            expected,
        };
        let max_admin = cap.max_queue_entries().min(4096);
        if self.admin_entries < 2 || u32::from(self.admin_entries) > max_admin {
            return Err(invalid(
                "admin queue entries",
                self.admin_entries.into(),
                format!("2..={max_admin} (CAP.MQES + 1, at most 4096)"),
            ));
        }
        if self.io_queues == 0 || self.io_queues == u16::MAX {
            return Err(invalid(
                "I/O queue count",
                self.io_queues.into(),
                "1..=65534".into(),
            ));
        }
        if self.max_transfer < crate::prp::PAGE_SIZE
            || !self.max_transfer.is_multiple_of(crate::prp::PAGE_SIZE)
            || self.max_transfer > 1 << 30
        {
            return Err(invalid(
                "maximum transfer",
                self.max_transfer,
                "a multiple of 4096 bytes up to 1 GiB".into(),
            ));
        }
        Ok(())
    }
}

/// What Identify Controller and the registers said, decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerInfo {
    /// `SN`.
    pub serial: String,
    /// `MN`.
    pub model: String,
    /// `FR`.
    pub firmware: String,
    /// `CAP`.
    pub cap: Cap,
    /// `VS`.
    pub version: Vs,
    /// `MDTS` as reported (0: no limit).
    pub mdts: u8,
    /// Largest transfer per command the driver uses, bytes (MDTS and the option).
    pub max_transfer: u64,
    /// `OACS`.
    pub oacs: u16,
    /// `ONCS`.
    pub oncs: u16,
    /// `VWC`.
    pub vwc: u8,
    /// `NN`.
    pub nn: u32,
    /// `CNTLID`.
    pub cntlid: u16,
    /// I/O queue pairs that can be created (granted and within the options).
    pub io_queues: u16,
    /// Whether I/O queues use shadow doorbells.
    pub shadow_doorbells: bool,
}

//! Bring-up options and what bring-up learned.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{ResetCause, ResetCoordinator, ResetRequest};

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
    /// Who performs a reset the driver finds it needs (a command timeout whose Abort did not
    /// help, `CSTS.CFS`, registers reading all ones). `None`: the driver resets the
    /// controller itself (`CC.EN` 1 → 0 and back). `Some`: it asks the handler, normally the
    /// reset coordinator, which quiesces every function of the reset group, resets, and
    /// recovers this controller through its [`crate::NvmeParticipant`].
    pub reset_handler: Option<ResetHandler>,
}

/// Where a controller sends the resets it needs; see [`ControllerOptions::reset_handler`].
#[derive(Clone)]
pub struct ResetHandler(Arc<dyn Fn(PciAddress, ResetCause) -> bool + Send + Sync>);

impl ResetHandler {
    /// A handler from a function that returns whether it took care of the reset (the reset
    /// ran, and the controller was recovered or given up by it); on `false` (refused, say)
    /// the driver resets the controller itself.
    pub fn new(handler: impl Fn(PciAddress, ResetCause) -> bool + Send + Sync + 'static) -> Self {
        ResetHandler(Arc::new(handler))
    }

    /// Sends every reset to `coordinator`, with the scope left to its plan (FLR when the
    /// function has one and the fault is local, else the reset group).
    pub fn coordinator(coordinator: Arc<ResetCoordinator>) -> Self {
        ResetHandler::new(move |device, cause| {
            match coordinator.request(ResetRequest::new(device, cause)) {
                Ok(_) => true,
                Err(err) => {
                    tracing::error!(%device, ?cause, %err, "reset coordinator refused the reset");
                    false
                }
            }
        })
    }

    pub(crate) fn call(&self, device: PciAddress, cause: ResetCause) -> bool {
        (self.0)(device, cause)
    }
}

impl fmt::Debug for ResetHandler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ResetHandler(..)")
    }
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
            reset_handler: None,
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
    /// `AERL`, zero-based: Asynchronous Event Requests the controller holds at once - 1.
    pub aerl: u8,
    /// `LPA`, Log Page Attributes.
    pub lpa: u8,
    /// `ELPE`, zero-based: Error Information log entries - 1.
    pub elpe: u8,
    /// `RTD3E`, microseconds (0: not reported): the shutdown deadline when nonzero.
    pub rtd3e_us: u32,
    /// `WCTEMP`, kelvins (0: not reported).
    pub warning_temperature: u16,
    /// `CCTEMP`, kelvins (0: not reported).
    pub critical_temperature: u16,
    /// I/O queue pairs that can be created (granted and within the options).
    pub io_queues: u16,
    /// Whether I/O queues use shadow doorbells.
    pub shadow_doorbells: bool,
}

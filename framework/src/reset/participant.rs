//! What a driver gives the reset coordinator: a participant with phases it can be polled
//! through, a priority and a time budget per phase.

use std::time::Duration;

use crate::error::Result;
use crate::pci::PciAddress;

/// Whether a phase has finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// The phase is complete.
    Done,
    /// Still working: poll again.
    Pending,
}

/// A driver instance taking part in coordinated resets of its function.
///
/// The coordinator calls `begin_quiesce` on every affected participant, then polls them all
/// until each is done or its quiesce budget has run out; after the reset it recovers them one
/// by one in priority order, each under its recover budget. A participant must not touch its
/// device between the end of quiesce and `begin_recover`: the device is being reset.
pub trait ResetParticipant: Send {
    /// A name for reports (`nvme0`, `01:00.0 copy engine`).
    fn name(&self) -> String;
    /// The function the participant drives.
    fn address(&self) -> PciAddress;
    /// Stops new submissions and starts taking back in-flight work for replay.
    fn begin_quiesce(&mut self) -> Result<()>;
    /// Continues quiescing; `Done` when nothing touches the device any more.
    fn poll_quiesce(&mut self) -> Result<Progress>;
    /// Starts re-initialising the device after the reset.
    fn begin_recover(&mut self) -> Result<()>;
    /// Continues recovering; `Done` when the driver serves I/O again (taken-back work re-issued).
    fn poll_recover(&mut self) -> Result<Progress>;
    /// The participant missed a deadline or its device did not come back: fail what it took
    /// back as retriable and stop using the device.
    fn abandon(&mut self, reason: &str);
}

/// How a participant is scheduled and how long it may take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParticipantConfig {
    /// Recovery order: lower first (storage before the NIC that serves it, say).
    pub priority: u32,
    /// Time allowed from `begin_quiesce` to `Done`.
    pub quiesce_budget: Duration,
    /// Time allowed from `begin_recover` to `Done`.
    pub recover_budget: Duration,
}

impl Default for ParticipantConfig {
    fn default() -> Self {
        ParticipantConfig {
            priority: 100,
            quiesce_budget: Duration::from_millis(50),
            recover_budget: Duration::from_secs(2),
        }
    }
}

//! The counters a workload keeps for the report: the errors its callers were told, what the
//! driver's queue pairs counted, what reading back found. A leaf.

use serde::Serialize;
use userpci_nvme::Error;

/// The errors callers were told, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FailureCounts {
    /// Taken back by a reset and not re-issued (or the controller lost): retry.
    pub retriable: u64,
    /// The device is gone.
    pub device_gone: u64,
    /// The controller failed.
    pub controller_failed: u64,
    /// The command timed out and was aborted.
    pub timeout: u64,
    /// The controller answered with an error status.
    pub command_status: u64,
    /// Anything else.
    pub other: u64,
}

impl FailureCounts {
    pub(super) fn add(&mut self, error: &Error) {
        let counter = match error {
            Error::Retriable { .. } => &mut self.retriable,
            Error::DeviceGone { .. } => &mut self.device_gone,
            Error::ControllerFailed { .. } => &mut self.controller_failed,
            Error::Timeout { .. } => &mut self.timeout,
            Error::Command { .. } => &mut self.command_status,
            _ => &mut self.other,
        };
        *counter += 1;
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        self.retriable
            + self.device_gone
            + self.controller_failed
            + self.timeout
            + self.command_status
            + self.other
    }
}

/// What the driver's queue pairs counted, summed over the controller's lifetimes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriverCounts {
    pub bogus_cid_reserved: u64,
    pub bogus_cid_out_of_range: u64,
    pub bogus_cid_not_in_flight: u64,
    pub bogus_sq_head_invalid: u64,
    pub timeouts: u64,
    pub aborts: u64,
    pub reissued: u64,
    pub reconnects: u64,
}

impl DriverCounts {
    pub(super) fn add(&mut self, s: &userpci_nvme::QpairStats) {
        self.bogus_cid_reserved += s.bogus.cid_reserved;
        self.bogus_cid_out_of_range += s.bogus.cid_out_of_range;
        self.bogus_cid_not_in_flight += s.bogus.cid_not_in_flight;
        self.bogus_sq_head_invalid += s.bogus.sq_head_invalid;
        self.timeouts += s.timeouts;
        self.aborts += s.aborts;
        self.reissued += s.reissued;
        self.reconnects += s.reconnects;
    }
}

/// What reading back found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyCounts {
    /// Slots holding their last acknowledged write.
    pub slots_verified: u64,
    /// Slots holding a failed write's data (it landed before the caller was told it failed).
    pub in_doubt_landed: u64,
    /// Slots whose acknowledged write is gone.
    pub lost: u64,
}

impl VerifyCounts {
    /// Adds `other` in.
    pub fn add(&mut self, other: &VerifyCounts) {
        self.slots_verified += other.slots_verified;
        self.in_doubt_landed += other.in_doubt_landed;
        self.lost += other.lost;
    }
}

//! Fault injection and the model's counters: the faults as state here, the methods that set
//! them on the model in `inject.rs`.
//!
//! Faults are set on the model through `SimBus::with_model::<NvmeModel, _>`. Two kinds:
//!
//! - **States** ([`NvmeModel::hang`], [`NvmeModel::fatal`]) last until the reset level given
//!   with them (a controller reset through `CC.EN` 1 to 0, or a function or bus reset) or until
//!   [`NvmeModel::clear_faults`].
//! - **One-shot faults** ([`NvmeModel::fail_command`], [`NvmeModel::corrupt_next_completion`])
//!   stay armed across resets until they fire or are cleared.
//!
//! Clearing a hang does not by itself resume work: the next doorbell write or timer does.
//!
//! [`NvmeModel::hang`]: super::NvmeModel::hang
//! [`NvmeModel::fatal`]: super::NvmeModel::fatal
//! [`NvmeModel::clear_faults`]: super::NvmeModel::clear_faults
//! [`NvmeModel::fail_command`]: super::NvmeModel::fail_command
//! [`NvmeModel::corrupt_next_completion`]: super::NvmeModel::corrupt_next_completion

use crate::spec::Status;

/// Which commands a one-shot fault applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandClass {
    /// Commands on the admin queue.
    Admin,
    /// Commands on I/O queues.
    Io,
    /// Either.
    Any,
}

impl CommandClass {
    pub(super) fn matches(self, sqid: u16) -> bool {
        match self {
            CommandClass::Admin => sqid == 0,
            CommandClass::Io => sqid != 0,
            CommandClass::Any => true,
        }
    }
}

/// The reset that ends a hang or fatal state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// A controller reset (`CC.EN` 1 to 0) clears it, as well as anything stronger.
    ControllerReset,
    /// Only a function-level or bus reset clears it. Until then `CC.EN` transitions do not
    /// bring `CSTS.RDY` up (a hang also keeps it from going down).
    FunctionReset,
}

/// How the next completion is corrupted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corruption {
    /// `CID` FFFFh, a value the specification tells hosts not to use.
    CidOutOfRange,
    /// The `CID` of the previous completion on the same queue (the fault waits for a queue
    /// that has posted one).
    DuplicateCid,
    /// `SQHD` equal to the submission queue's size, one past the last valid slot.
    SqHeadOutOfRange,
    /// The entry is written with the phase tag inverted, so the host takes it for an old
    /// entry: it is lost to the host, and the queue looks empty until the host gives up on
    /// the command (a timeout). The queue's tail still advances, as the controller believes
    /// it posted the entry.
    WrongPhase,
}

/// Host actions the specification forbids or calls errors, counted since construction.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ProtocolViolations {
    /// Doorbell writes while the controller is not enabled and ready: `CC.EN` 0, between
    /// `CC.EN` 1 to 0 and `CSTS.RDY` 0, or between `CC.EN` 0 to 1 and `CSTS.RDY` 1.
    pub doorbell_while_disabled: u64,
    /// Doorbell writes for a queue that does not exist (or inside a doorbell stride).
    pub doorbell_invalid_register: u64,
    /// Doorbell values out of range: an SQ tail at or beyond the queue size, a CQ head beyond
    /// the entries posted.
    pub doorbell_invalid_value: u64,
    /// `CC.EN` set again before `CSTS.RDY` had followed the previous clear.
    pub enable_before_not_ready: u64,
}

impl ProtocolViolations {
    /// Every violation.
    pub fn total(&self) -> u64 {
        self.doorbell_while_disabled
            + self.doorbell_invalid_register
            + self.doorbell_invalid_value
            + self.enable_before_not_ready
    }
}

/// What the model has seen and done since construction (not cleared by resets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NvmeModelStats {
    /// Admin commands fetched.
    pub admin_commands: u64,
    /// Read commands fetched.
    pub reads: u64,
    /// Write commands fetched.
    pub writes: u64,
    /// Flush commands fetched.
    pub flushes: u64,
    /// Write Zeroes commands fetched.
    pub write_zeroes: u64,
    /// Dataset Management commands fetched.
    pub dataset_management: u64,
    /// I/O commands with an opcode the model does not implement.
    pub other_io: u64,
    /// Completion queue entries posted.
    pub completions: u64,
    /// Completions posted with a status other than success.
    pub errors: u64,
    /// Submission queue tail doorbell writes (any queue, valid or not).
    pub sq_doorbell_writes: u64,
    /// Completion queue head doorbell writes.
    pub cq_doorbell_writes: u64,
    /// Protocol violations.
    pub violations: ProtocolViolations,
    /// Delete I/O Submission Queue commands received (valid or not).
    pub sq_deletes: u64,
    /// Delete I/O Completion Queue commands received.
    pub cq_deletes: u64,
    /// Controller resets (`CC.EN` 1 to 0).
    pub controller_resets: u64,
    /// Function-level and bus resets.
    pub function_resets: u64,
    /// Shutdown notifications (`CC.SHN` 00b to nonzero).
    pub shutdowns: u64,
    /// MSI-X vectors signalled (dropped by the bus when MSI-X is off).
    pub interrupts: u64,
    /// Bytes moved from namespaces to the host (Read).
    pub bytes_read: u64,
    /// Bytes moved from the host to namespaces (Write).
    pub bytes_written: u64,
}

/// The faults armed on a model.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Faults {
    pub(super) hang: Option<Recovery>,
    pub(super) fatal: Option<Recovery>,
    /// (class, commands of that class still to go before the failing one, status).
    pub(super) fail: Option<(CommandClass, u32, Status)>,
    pub(super) corrupt: Option<(CommandClass, Corruption)>,
}

impl Faults {
    /// Clears the states that `level` recovers from.
    pub(super) fn on_reset(&mut self, function_level: bool) {
        let clears = |r: Option<Recovery>| function_level || r == Some(Recovery::ControllerReset);
        if clears(self.hang) {
            self.hang = None;
        }
        if clears(self.fatal) {
            self.fatal = None;
        }
    }

    /// The injected status for a command about to run on `sqid`, if this is the one.
    pub(super) fn take_failure(&mut self, sqid: u16) -> Option<Status> {
        let (class, left, status) = self.fail.as_mut()?;
        if !class.matches(sqid) {
            return None;
        }
        if *left > 1 {
            *left -= 1;
            return None;
        }
        let status = *status;
        self.fail = None;
        Some(status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nth_matching_command_fails_once() {
        let mut faults = Faults {
            fail: Some((CommandClass::Io, 2, Status::INTERNAL_ERROR)),
            ..Faults::default()
        };
        assert_eq!(faults.take_failure(0), None, "admin does not count");
        assert_eq!(faults.take_failure(1), None);
        assert_eq!(faults.take_failure(2), Some(Status::INTERNAL_ERROR));
        assert_eq!(faults.take_failure(1), None);
    }

    #[test]
    fn resets_clear_the_states_they_recover() {
        let mut faults = Faults {
            hang: Some(Recovery::ControllerReset),
            fatal: Some(Recovery::FunctionReset),
            ..Faults::default()
        };
        faults.on_reset(false);
        assert_eq!(
            (faults.hang, faults.fatal),
            (None, Some(Recovery::FunctionReset))
        );
        faults.on_reset(true);
        assert_eq!(faults.fatal, None);
        let violations = ProtocolViolations {
            doorbell_while_disabled: 1,
            doorbell_invalid_value: 2,
            ..ProtocolViolations::default()
        };
        assert_eq!(violations.total(), 3);
    }
}

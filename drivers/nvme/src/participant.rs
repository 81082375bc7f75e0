//! The NVMe driver as a reset-coordinator participant.
//!
//! Quiesce stops every queue pair (no submit, no poll, no doorbell from here on) and asks the
//! controller to stop; in-flight commands stay in their queue pairs' trackers. No Delete
//! SQ/CQ is sent: the function or bus reset deletes the queues. Recover re-initialises the
//! controller, checks that its namespaces are unchanged, recreates every queue pair's queues
//! at the same QIDs and memory, and lets each owning core re-issue what it had in flight,
//! once, on its next poll. Re-issue happens only after the reset completed, so an old
//! instance of a command can never complete after its copy was sent.

use userpci_framework::device::PciFunction;
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{Progress, ResetParticipant};

use crate::controller::Controller;

/// A [`Controller`] taking part in coordinated resets.
#[derive(Debug)]
pub struct NvmeParticipant<F: PciFunction> {
    controller: Controller<F>,
    name: String,
}

impl<F: PciFunction> NvmeParticipant<F> {
    /// A participant for `controller`, named `name` in reports.
    pub fn new(controller: Controller<F>, name: impl Into<String>) -> Self {
        NvmeParticipant {
            controller,
            name: name.into(),
        }
    }
}

fn hook_error(
    participant: &str,
    phase: &'static str,
    err: crate::Error,
) -> userpci_framework::Error {
    userpci_framework::Error::ParticipantFailed {
        participant: participant.to_string(),
        phase,
        reason: err.to_string(),
    }
}

impl<F: PciFunction> ResetParticipant for NvmeParticipant<F> {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn address(&self) -> PciAddress {
        self.controller.device()
    }

    fn begin_quiesce(&mut self) -> userpci_framework::Result<()> {
        self.controller.quiesce_for_reset();
        Ok(())
    }

    fn poll_quiesce(&mut self) -> userpci_framework::Result<Progress> {
        // Stopping the queues waited for every core to leave its submit or poll.
        Ok(Progress::Done)
    }

    fn begin_recover(&mut self) -> userpci_framework::Result<()> {
        self.controller
            .recover()
            .map_err(|err| hook_error(&self.name, "recover", err))
    }

    fn poll_recover(&mut self) -> userpci_framework::Result<Progress> {
        Ok(Progress::Done)
    }

    fn abandon(&mut self, reason: &str) {
        self.controller.abandon(reason);
    }
}

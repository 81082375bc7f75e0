//! The state a controller shares with its queue pairs: [`Inner`], behind the [`Controller`]
//! handle and an `Arc` in every queue pair, and what sits behind its control-path mutex.
//! Below the controller and the queue pairs alike, so neither reaches into the other for it.
//!
//! [`Controller`]: super::Controller

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, MutexGuard};

use userpci_framework::device::{InterruptVector, PciFunction};
use userpci_framework::dma::{DmaArray, DmaBuffer};
use userpci_framework::pci::PciAddress;

use super::admin::AdminQueue;
use super::init::Hw;
use super::options::{ControllerInfo, ControllerOptions};
use super::state::{AtomicControllerState, ControllerState, QpairShared};
use crate::error::{Error, Result};
use crate::namespace::{Namespace, UnusableNamespace};
use crate::queue::ShadowBuffers;
use crate::spec::registers::{self, Cap};
use crate::spec::{CompletionEntry, SubmissionEntry};

/// The queues of one I/O queue pair, shared with the controller so that a reset can zero
/// the completion queue and create both again at the same addresses.
#[derive(Debug)]
pub(crate) struct QueueMemory {
    pub(crate) sq: DmaArray<SubmissionEntry>,
    pub(crate) cq: DmaArray<CompletionEntry>,
}

/// A queue pair as the controller knows it.
#[derive(Debug)]
pub(crate) struct QpairEntry {
    pub(crate) qid: u16,
    pub(crate) entries: u16,
    pub(crate) vector: u16,
    pub(crate) interrupts: bool,
    pub(crate) memory: Arc<QueueMemory>,
    pub(crate) shared: Arc<QpairShared>,
}

/// Everything behind the control-path mutex.
#[derive(Debug)]
pub(crate) struct AdminState {
    pub(crate) queue: AdminQueue,
    pub(crate) data: DmaBuffer,
    pub(crate) qpairs: Vec<QpairEntry>,
    pub(crate) io_queues: u16,
}

/// The state a controller shares with its queue pairs.
pub(crate) struct Inner<F: PciFunction> {
    pub(crate) function: F,
    pub(crate) regs: F::Registers,
    pub(crate) device: PciAddress,
    pub(crate) cap: Cap,
    pub(crate) options: ControllerOptions,
    pub(crate) info: ControllerInfo,
    pub(crate) namespaces: Vec<Namespace>,
    pub(crate) unusable: Vec<UnusableNamespace>,
    pub(crate) admin: Mutex<AdminState>,
    pub(crate) state: AtomicControllerState,
    /// Completed resets, so that two queue pairs asking for one do not cause two.
    pub(crate) generation: AtomicU64,
    /// True while the controller is known not to be doing DMA (disabled or gone), so
    /// buffers of failed commands can be handed back.
    pub(crate) quiet: AtomicBool,
    pub(crate) vectors: Vec<InterruptVector>,
    pub(crate) shadow: Option<Arc<ShadowBuffers>>,
}

impl<F: PciFunction> Inner<F> {
    pub(crate) fn hw(&self) -> Hw<'_, F> {
        Hw {
            function: &self.function,
            regs: &self.regs,
            device: self.device,
            cap: self.cap,
            admin_timeout: self.options.admin_timeout,
        }
    }

    pub(crate) fn lock_admin(&self) -> MutexGuard<'_, AdminState> {
        // A panic while holding the lock leaves the admin queue consistent enough to reset.
        self.admin
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one admin command (the controller must be enabled).
    pub(crate) fn admin_command(
        &self,
        admin: &mut AdminState,
        sqe: SubmissionEntry,
    ) -> Result<CompletionEntry> {
        self.check_enabled()?;
        admin.queue.execute(
            &self.regs,
            self.function.clock().as_ref(),
            self.device,
            sqe,
            self.options.admin_timeout,
        )
    }

    pub(crate) fn check_enabled(&self) -> Result<()> {
        match self.state.get() {
            ControllerState::Enabled => Ok(()),
            ControllerState::Resetting => Err(Error::Resetting {
                device: self.device,
            }),
            ControllerState::Failed => Err(Error::ControllerFailed {
                device: self.device,
                reason: "a controller reset failed",
            }),
            ControllerState::Gone => Err(Error::DeviceGone {
                device: self.device,
                register: "CSTS",
            }),
            ControllerState::ShutDown => Err(Error::ShutDown {
                device: self.device,
            }),
        }
    }

    /// The MSI-X vector for `qid`: vector 0 belongs to the admin queue; I/O queues share the
    /// others round robin.
    pub(super) fn vector_for(&self, qid: u16) -> Option<u16> {
        let count = self.vectors.len() as u16;
        match count {
            0 => None,
            1 => Some(0),
            _ => Some(1 + (qid - 1) % (count - 1)),
        }
    }

    /// Creates the CQ, then the SQ, of a registered or new queue pair (its shadow doorbell
    /// slots zeroed first, as the new queues start at index 0).
    pub(super) fn create_queues(&self, admin: &mut AdminQueue, entry: &QpairEntry) -> Result<()> {
        if let Some(shadow) = &self.shadow {
            let dstrd = self.cap.dstrd();
            shadow.reset_slot(registers::sq_tail_doorbell(entry.qid, dstrd));
            shadow.reset_slot(registers::cq_head_doorbell(entry.qid, dstrd));
        }
        let qsize = entry.entries - 1;
        let cq = SubmissionEntry::create_io_cq(
            entry.qid,
            qsize,
            entry.memory.cq.iova(),
            entry.vector,
            entry.interrupts,
        );
        let clock = self.function.clock().as_ref();
        let timeout = self.options.admin_timeout;
        admin.execute(&self.regs, clock, self.device, cq, timeout)?;
        let sq =
            SubmissionEntry::create_io_sq(entry.qid, qsize, entry.memory.sq.iova(), entry.qid, 0);
        if let Err(err) = admin.execute(&self.regs, clock, self.device, sq, timeout) {
            let delete = SubmissionEntry::delete_io_cq(entry.qid);
            if let Err(cleanup) = admin.execute(&self.regs, clock, self.device, delete, timeout) {
                tracing::warn!(device = %self.device, qid = entry.qid, %cleanup, "Delete I/O CQ after a failed Create I/O SQ");
            }
            return Err(err);
        }
        Ok(())
    }

    /// Deletes a queue pair's SQ then CQ (normal teardown, not during a reset).
    pub(crate) fn delete_queues(&self, admin: &mut AdminState, qid: u16) -> Result<()> {
        self.admin_command(admin, SubmissionEntry::delete_io_sq(qid))?;
        self.admin_command(admin, SubmissionEntry::delete_io_cq(qid))?;
        Ok(())
    }

    /// Removes a queue pair from the registry.
    pub(crate) fn unregister(&self, admin: &mut AdminState, qid: u16) {
        admin.qpairs.retain(|e| e.qid != qid);
    }
}

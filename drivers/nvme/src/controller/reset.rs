//! Quiesce, recover, abort: the controller side of error handling.

use std::sync::atomic::Ordering;

use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::reset::ResetCause;

use super::inner::{AdminState, Inner};
use super::state::{ControllerState, QpairState};
use crate::error::{Error, Result};
use crate::spec::SubmissionEntry;

impl<F: PciFunction> Inner<F> {
    /// A reset a queue pair found it needs: through the reset handler when there is one
    /// (the coordinator resets the function or its group and recovers this controller),
    /// else [`Inner::reset`]. Nothing happens when a reset completed since the caller saw
    /// generation `seen`.
    pub(crate) fn request_reset(&self, cause: ResetCause, seen: Option<u64>) -> Result<()> {
        if let Some(handler) = &self.options.reset_handler {
            if seen.is_some_and(|seen| self.generation.load(Ordering::Acquire) != seen) {
                return Ok(());
            }
            tracing::warn!(device = %self.device, ?cause, "asking the reset handler for a reset");
            if handler.call(self.device, cause) {
                return Ok(());
            }
            tracing::warn!(device = %self.device, "the reset handler did not reset; resetting the controller here");
        }
        self.reset(cause.as_str(), seen)
    }

    /// Resets the controller, unless one completed since the caller saw generation
    /// `seen` (another queue pair asked first).
    pub(crate) fn reset(&self, reason: &str, seen: Option<u64>) -> Result<()> {
        let mut admin = self.lock_admin();
        if let Some(seen) = seen {
            if self.generation.load(Ordering::Acquire) != seen {
                tracing::debug!(device = %self.device, reason, "reset already done by another caller");
                return Ok(());
            }
        }
        let span = tracing::warn_span!("nvme_reset", device = %self.device, reason);
        let _enter = span.enter();
        tracing::warn!("controller reset");
        self.quiesce_locked(&mut admin)?;
        self.recover_locked(&mut admin)
    }

    /// Stops every queue pair, then disables the controller.
    pub(crate) fn quiesce_locked(&self, admin: &mut AdminState) -> Result<()> {
        match self.state.get() {
            ControllerState::Gone => {
                return Err(Error::DeviceGone {
                    device: self.device,
                    register: "CSTS",
                })
            }
            ControllerState::ShutDown => {
                return Err(Error::ShutDown {
                    device: self.device,
                })
            }
            ControllerState::Failed | ControllerState::Enabled | ControllerState::Resetting => {}
        }
        self.stop_queues(admin);
        match self.hw().disable() {
            Ok(()) => {
                self.quiet.store(true, Ordering::Release);
                tracing::info!("controller disabled (CSTS.RDY=0)");
                Ok(())
            }
            Err(err @ Error::DeviceGone { .. }) => {
                self.mark_gone(admin);
                Err(err)
            }
            Err(err) => {
                tracing::error!(%err, "controller did not disable");
                self.mark_failed(admin);
                Err(err)
            }
        }
    }

    /// Stops every queue pair and waits until none is inside a submit or poll: from here on
    /// nothing touches the queues or doorbells.
    pub(crate) fn stop_queues(&self, admin: &AdminState) {
        self.state.set(ControllerState::Resetting);
        for entry in &admin.qpairs {
            entry.shared.set(QpairState::Disabled);
        }
        for entry in &admin.qpairs {
            entry.shared.wait_idle();
        }
        tracing::debug!(queues = admin.qpairs.len(), "queue pairs stopped");
    }

    /// Quiesce before a function or bus reset done by someone else: the queues are stopped
    /// first; then `CC.EN` is cleared if the device answers, without waiting for
    /// `CSTS.RDY` (a hung controller may never get there, and the reset that follows stops
    /// it for certain). In-flight commands stay with their queue pairs for re-issue.
    pub(crate) fn quiesce_for_reset(&self, admin: &AdminState) {
        if self.state.get() == ControllerState::ShutDown {
            // Already stopped and disabled; the reset changes nothing for it.
            return;
        }
        self.stop_queues(admin);
        let cc = self.regs.read32(crate::spec::registers::CC);
        if cc == u32::MAX {
            tracing::warn!(device = %self.device, "CC reads all ones: leaving the stop to the reset");
        } else if cc & 1 != 0 {
            self.regs.write32(crate::spec::registers::CC, cc & !1);
        }
    }

    /// Gives the controller up after a reset it did not survive: every queue pair fails
    /// what it holds as retriable.
    pub(crate) fn abandon(&self, admin: &AdminState, reason: &str) {
        tracing::error!(device = %self.device, reason, "controller abandoned");
        self.mark_failed(admin);
    }

    /// Re-initialises a disabled (or freshly reset) controller and recreates every
    /// registered queue pair. A controller marked gone is tried too: a bus reset may have
    /// brought it back.
    pub(crate) fn recover_locked(&self, admin: &mut AdminState) -> Result<()> {
        if self.state.get() == ControllerState::ShutDown {
            // Shut down on purpose: a reset of its group does not bring it back.
            tracing::debug!(device = %self.device, "shut down: not recovered");
            return Ok(());
        }
        self.state.set(ControllerState::Resetting);
        match self.try_recover(admin) {
            Ok(()) => {
                self.generation.fetch_add(1, Ordering::AcqRel);
                self.state.set(ControllerState::Enabled);
                tracing::info!(queues = admin.qpairs.len(), "controller recovered");
                Ok(())
            }
            Err(err) => {
                tracing::error!(%err, "controller recovery failed");
                if matches!(err, Error::DeviceGone { .. }) {
                    self.mark_gone(admin);
                } else {
                    // Leave it disabled, so the device does no DMA into memory handed back.
                    let quiet = self.hw().disable().is_ok();
                    self.quiet.store(quiet, Ordering::Release);
                    self.mark_failed(admin);
                }
                Err(err)
            }
        }
    }

    fn try_recover(&self, admin: &mut AdminState) -> Result<()> {
        let hw = self.hw();
        // A function or bus reset in between clears the command register, and the reset
        // coordinator masked MSI-X: enable both again (the vectors keep their eventfds).
        self.function.set_bus_master(true)?;
        if !self.vectors.is_empty() {
            self.function.enable_msix(self.vectors.len() as u16)?;
        }
        hw.disable()?;
        admin.queue.reset();
        self.quiet.store(false, Ordering::Release);
        hw.enable(&admin.queue)?;
        let id = hw.identify_controller(&mut admin.queue, &mut admin.data)?;
        if id.serial() != self.info.serial {
            return Err(Error::NamespaceChanged {
                device: self.device,
                nsid: 0,
                what: format!(
                    "controller serial {:?} became {:?}",
                    self.info.serial,
                    id.serial()
                ),
            });
        }
        let granted = hw.set_queue_count(&mut admin.queue, self.info.io_queues)?;
        admin.io_queues = granted;
        let (now, _) = hw.namespaces(
            &mut admin.queue,
            &mut admin.data,
            &id,
            self.info.max_transfer,
        )?;
        for before in &self.namespaces {
            let after = now.iter().find(|ns| ns.nsid == before.nsid);
            let change = match after {
                None => Some("no longer active or usable".to_string()),
                Some(after) => before.same_identity(after),
            };
            if let Some(what) = change {
                return Err(Error::NamespaceChanged {
                    device: self.device,
                    nsid: before.nsid,
                    what,
                });
            }
        }
        if let Some(shadow) = &self.shadow {
            if !hw.configure_shadow_doorbells(&mut admin.queue, shadow) {
                return Err(Error::Unsupported {
                    device: self.device,
                    what: "Doorbell Buffer Config, accepted before the reset, now fails".into(),
                });
            }
        }
        if let Err(err) = self.restore_async_events(admin) {
            // I/O does not depend on it: recover without asynchronous events.
            tracing::warn!(%err, "asynchronous events not armed again after the reset");
        }
        let AdminState { queue, qpairs, .. } = admin;
        for entry in qpairs.iter() {
            if entry.qid > granted {
                tracing::error!(
                    qid = entry.qid,
                    granted,
                    "queue no longer granted after reset"
                );
                // The controller was disabled above and has no such queue: nothing it held
                // can be transferred, so its buffers go back with the failure.
                entry.shared.fail_released();
                continue;
            }
            entry.memory.cq.region().fill(0);
            match self.create_queues(queue, entry) {
                Ok(()) => entry.shared.set(QpairState::NeedsReconnect),
                Err(err @ Error::DeviceGone { .. }) => return Err(err),
                Err(err) => {
                    tracing::error!(qid = entry.qid, %err, "queue pair not recreated");
                    // As above: disabled since, and no doorbell of it is written again.
                    entry.shared.fail_released();
                }
            }
        }
        Ok(())
    }

    /// Marks the controller and every queue pair failed.
    fn mark_failed(&self, admin: &AdminState) {
        self.state.set(ControllerState::Failed);
        for entry in &admin.qpairs {
            entry.shared.set(QpairState::Failed);
        }
    }

    /// Marks the device gone (surprise removal): no DMA can happen any more.
    pub(crate) fn mark_gone(&self, admin: &AdminState) {
        tracing::error!(device = %self.device, "device gone (registers read all ones)");
        self.state.set(ControllerState::Gone);
        self.quiet.store(true, Ordering::Release);
        for entry in &admin.qpairs {
            entry.shared.set(QpairState::Gone);
        }
    }

    /// Sends Abort for command `cid` of submission queue `sqid`. Returns whether the
    /// controller reports it aborted (completion DW0 bit 0 clear).
    pub(crate) fn abort(&self, sqid: u16, cid: u16) -> Result<bool> {
        let mut admin = self.lock_admin();
        let cqe = self.admin_command(&mut admin, SubmissionEntry::abort(sqid, cid))?;
        Ok(cqe.dw0 & 1 == 0)
    }

    /// Reads `CSTS` for a queue pair that saw a timeout: `Ok(true)` when the controller is
    /// fatal and needs a reset; marks the device gone on all ones.
    pub(crate) fn check_fatal(&self) -> Result<bool> {
        match self.hw().csts() {
            Ok(csts) => Ok(csts.cfs()),
            Err(err) => {
                if let Some(handler) = &self.options.reset_handler {
                    // Registers read all ones: a bus reset may bring the device back.
                    if handler.call(self.device, ResetCause::NotResponding)
                        && self.state.get() == ControllerState::Enabled
                    {
                        return Ok(false);
                    }
                }
                let admin = self.lock_admin();
                self.mark_gone(&admin);
                Err(err)
            }
        }
    }
}

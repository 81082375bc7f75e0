//! Normal shutdown (Base 2.0 section 3.6.1, "Memory-based Controller Shutdown"): stop
//! submitting, delete every I/O submission queue then every I/O completion queue, set
//! `CC.SHN` to 01b and wait for `CSTS.SHST` 10b. The deadline is Identify Controller `RTD3E`
//! when the controller reports one, else [`DEFAULT_SHUTDOWN_TIMEOUT`].
//!
//! Once shutdown processing completes the controller is also disabled (`CC.EN` 1 → 0): the
//! specification requires a controller reset before further use anyway, and the reset drops
//! the Asynchronous Event Requests it still holds, so nothing can write into the admin queue
//! memory after the driver frees it.

use std::sync::atomic::Ordering;
use std::time::Duration;

use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::time::poll_until;

use super::inner::{AdminState, Inner};
use super::state::{ControllerState, QpairState};
use super::Controller;
use crate::error::{Error, Result};
use crate::spec::registers::{self, Cc, Csts};
use crate::spec::SubmissionEntry;

/// The shutdown deadline for a controller that reports no `RTD3E` (Linux's default too).
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest `RTD3E` honoured: a device reporting more is not waited for that long.
const MAX_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);

/// What a completed shutdown saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ShutdownReport {
    /// `CSTS` when shutdown processing was complete (`SHST` 10b), before the disable.
    pub csts: Csts,
    /// From `CC.SHN` = 01b to `CSTS.SHST` = 10b.
    pub waited: Duration,
    /// The deadline that applied.
    pub deadline: Duration,
    /// I/O queue pairs whose queues were deleted first.
    pub queues_deleted: usize,
}

impl<F: PciFunction> Inner<F> {
    /// `RTD3E` (microseconds) rounded up to milliseconds, capped; the default when 0.
    pub(crate) fn shutdown_timeout(&self) -> Duration {
        match self.info.rtd3e_us {
            0 => DEFAULT_SHUTDOWN_TIMEOUT,
            us => Duration::from_micros(u64::from(us))
                .max(Duration::from_millis(1))
                .min(MAX_SHUTDOWN_TIMEOUT),
        }
    }

    /// Deletes the I/O queues of every registered queue pair, SQ before CQ (the queue pairs
    /// are stopped). Returns how many pairs had both deleted.
    fn delete_all_queues(&self, admin: &mut AdminState) -> usize {
        let clock = self.function.clock();
        let timeout = self.options.admin_timeout;
        let AdminState { queue, qpairs, .. } = admin;
        let mut deleted = 0;
        for entry in qpairs.iter() {
            let sq = queue.execute(
                &self.regs,
                clock.as_ref(),
                self.device,
                SubmissionEntry::delete_io_sq(entry.qid),
                timeout,
            );
            let cq = sq.and_then(|_| {
                queue.execute(
                    &self.regs,
                    clock.as_ref(),
                    self.device,
                    SubmissionEntry::delete_io_cq(entry.qid),
                    timeout,
                )
            });
            match cq {
                Ok(_) => deleted += 1,
                Err(err) => {
                    tracing::warn!(device = %self.device, qid = entry.qid, %err, "deleting I/O queues before shutdown");
                }
            }
        }
        deleted
    }

    /// The shutdown sequence, with the control-path lock held.
    pub(crate) fn shutdown_locked(
        &self,
        admin: &mut AdminState,
        deadline: Duration,
    ) -> Result<ShutdownReport> {
        let device = self.device;
        let was = self.state.get();
        match was {
            ControllerState::Gone => {
                return Err(Error::DeviceGone {
                    device,
                    register: "CSTS",
                })
            }
            ControllerState::ShutDown => return Err(Error::ShutDown { device }),
            ControllerState::Enabled | ControllerState::Resetting | ControllerState::Failed => {}
        }
        let span = tracing::info_span!("nvme_shutdown", %device);
        let _enter = span.enter();
        self.stop_queues(admin);
        let cc = Cc(self.regs.read32(registers::CC));
        if cc.0 == u32::MAX {
            self.mark_gone(admin);
            return Err(Error::DeviceGone {
                device,
                register: "CC",
            });
        }
        // Only a running controller can execute Delete I/O SQ / CQ.
        let queues_deleted = if was == ControllerState::Enabled && cc.en() {
            self.delete_all_queues(admin)
        } else {
            0
        };
        for entry in &admin.qpairs {
            entry.shared.set(QpairState::ShutDown);
        }
        admin.queue.events.reset();
        tracing::debug!(deadline_ms = deadline.as_millis() as u64, "CC.SHN = 01b");
        self.regs
            .write32(registers::CC, cc.with_shn(Cc::SHN_NORMAL).0);
        let clock = self.function.clock();
        let start = clock.now();
        let mut last = Csts::new();
        let result = poll_until(
            clock.as_ref(),
            device,
            "CSTS.SHST=10b after CC.SHN=01b",
            deadline,
            || {
                last = Csts(self.regs.read32(registers::CSTS));
                if last.is_all_ones() {
                    return Err(userpci_framework::Error::DeviceGone { device });
                }
                Ok((last.shst() == Csts::SHST_COMPLETE).then_some(last))
            },
        );
        let waited = clock.now().saturating_sub(start);
        let csts = match result {
            Ok(csts) => csts,
            Err(userpci_framework::Error::DeviceGone { .. }) => {
                self.mark_gone(admin);
                return Err(Error::DeviceGone {
                    device,
                    register: "CSTS",
                });
            }
            Err(userpci_framework::Error::Timeout { .. }) => {
                let err = Error::ShutdownTimeout {
                    device,
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                    deadline_ms: u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
                    shst: last.shst(),
                };
                tracing::error!(%err, "shutdown did not complete");
                // Stop it anyway, so the memory it was given can be freed.
                let quiet = self.hw().disable().is_ok();
                self.quiet.store(quiet, Ordering::Release);
                self.state.set(ControllerState::Failed);
                return Err(err);
            }
            Err(other) => return Err(other.into()),
        };
        // A controller reset, required before any further use (section 3.6.1), which also
        // drops the held Asynchronous Event Requests.
        match self.hw().disable() {
            Ok(()) => self.quiet.store(true, Ordering::Release),
            Err(err) => tracing::warn!(%err, "controller not disabled after shutdown"),
        }
        self.state.set(ControllerState::ShutDown);
        tracing::info!(
            waited_us = waited.as_micros() as u64,
            queues_deleted,
            "controller shut down (CSTS.SHST=10b)"
        );
        Ok(ShutdownReport {
            csts,
            waited,
            deadline,
            queues_deleted,
        })
    }
}

impl<F: PciFunction> Controller<F> {
    /// The deadline [`Controller::shutdown`] uses: Identify Controller `RTD3E` when nonzero
    /// (at most 60 s), else [`DEFAULT_SHUTDOWN_TIMEOUT`].
    pub fn shutdown_timeout(&self) -> Duration {
        self.inner.shutdown_timeout()
    }

    /// Normal shutdown within [`Controller::shutdown_timeout`] (see the module
    /// documentation). Queue pairs still open are stopped and their queues deleted first;
    /// their in-flight commands complete with [`Error::Retriable`] and new ones are refused.
    /// Afterwards the controller is [`ControllerState::ShutDown`].
    pub fn shutdown(&self) -> Result<ShutdownReport> {
        self.shutdown_within(self.shutdown_timeout())
    }

    /// [`Controller::shutdown`] with an explicit deadline for `CSTS.SHST`. On a timeout the
    /// error names the `SHST` value last seen, and the controller is disabled and `Failed`.
    pub fn shutdown_within(&self, deadline: Duration) -> Result<ShutdownReport> {
        let mut admin = self.inner.lock_admin();
        self.inner.shutdown_locked(&mut admin, deadline)
    }
}

impl<F: PciFunction> Drop for Inner<F> {
    /// The last handle is gone (every queue pair deleted its queues when dropped): a
    /// best-effort normal shutdown of a controller still in service.
    fn drop(&mut self) {
        if self.state.get() != ControllerState::Enabled {
            return;
        }
        let deadline = self.shutdown_timeout();
        let mut admin = self.lock_admin();
        if let Err(err) = self.shutdown_locked(&mut admin, deadline) {
            tracing::warn!(device = %self.device, %err, "shutdown on drop failed");
        }
    }
}

//! The queue pair's side of error handling: aborts, asking for a reset, reconnecting and
//! re-issuing after one, failing what cannot be re-issued, and teardown.

use std::sync::atomic::Ordering;

use userpci_framework::device::PciFunction;
use userpci_framework::reset::ResetCause;

use super::tracker::TrackerState;
use super::{IoCompletion, IoQueuePair, QpairCore};
use crate::buffer::IoBuffer;
use crate::controller::QpairState;
use crate::error::Error;
use crate::queue::{CqRing, SqRing};

impl<F: PciFunction, T, B: IoBuffer> QpairCore<F, T, B> {
    /// After a controller reset recreated this pair's queues: fresh indices, and every
    /// command that was in flight written to the SQ again, once, with its CID, PRPs and
    /// buffer unchanged. A command re-issued `max_reissues` times already is not sent again:
    /// the next poll fails it with [`Error::Retriable`]. Runs inside the critical section.
    pub(super) fn reconnect(&mut self) {
        self.sq = SqRing::new(self.entries);
        self.cq = CqRing::new(self.entries);
        self.unstamped.clear();
        self.to_abort.clear();
        self.reset_wanted = None;
        self.seen_generation = self.ctrl.generation.load(Ordering::Acquire);
        self.stats.reconnects += 1;
        self.now = self.ctrl.function.clock().now();
        self.last_check = self.now;
        let mut reissued = 0u64;
        for index in 0..self.trackers.capacity() as u16 {
            let tracker = self.trackers.get_mut(index);
            match tracker.state {
                TrackerState::Free | TrackerState::Doomed => continue,
                TrackerState::InFlight | TrackerState::Aborting { .. } => {}
            }
            if tracker.reissues >= self.options.max_reissues {
                tracker.state = TrackerState::Doomed;
                self.doomed = true;
                continue;
            }
            tracker.reissues += 1;
            tracker.state = TrackerState::InFlight;
            let sqe = tracker.sqe;
            let slot = self.sq.push();
            tracker.sq_slot = slot;
            self.memory.sq.set(usize::from(slot), sqe);
            self.unstamped.push(index);
            reissued += 1;
        }
        self.stats.reissued += reissued;
        tracing::info!(device = %self.device, qid = self.qid, reissued, "queue pair reconnected after reset");
        self.ring_sq();
    }

    /// Fails the requests of commands [`QpairCore::reconnect`] did not re-issue.
    pub(super) fn fail_doomed(
        &mut self,
        on_complete: &mut impl FnMut(IoCompletion<T, B>),
    ) -> usize {
        self.doomed = false;
        let mut done = 0;
        for index in 0..self.trackers.capacity() as u16 {
            let tracker = self.trackers.get(index);
            if tracker.state != TrackerState::Doomed {
                continue;
            }
            let request = tracker.request;
            self.trackers.release(index);
            let error = Error::Retriable {
                device: self.device,
                qid: self.qid,
                reason: "taken back by controller resets more often than max_reissues",
            };
            done += self.finish(request, Err(error), on_complete);
        }
        done
    }

    /// Sends the aborts found by the last scan and asks for a reset when one is due. Runs
    /// outside the critical section.
    pub(super) fn handle_timeouts(&mut self) {
        match self.ctrl.check_fatal() {
            Ok(true) => {
                // A warning, as Linux's "controller is down; will reset": the reset that
                // follows is what decides whether anything failed.
                tracing::warn!(device = %self.device, qid = self.qid, "CSTS.CFS: controller fatal; resetting");
                self.reset_wanted = Some(ResetCause::FatalStatus);
            }
            Ok(false) => {}
            Err(err) => {
                // Gone: the next poll fails everything.
                tracing::error!(device = %self.device, %err, "device gone while handling a timeout");
                self.to_abort.clear();
                self.reset_wanted = None;
                return;
            }
        }
        if self.ctrl.generation.load(Ordering::Acquire) != self.seen_generation {
            // A reset (ours through the reset handler, or another queue pair's) completed
            // meanwhile: the commands will be re-issued on the next poll; nothing to abort.
            self.to_abort.clear();
            self.reset_wanted = None;
            return;
        }
        let mut pending = std::mem::take(&mut self.to_abort);
        if self.reset_wanted.is_none() {
            for &index in &pending {
                let tracker = self.trackers.get(index);
                if tracker.state != TrackerState::InFlight {
                    continue;
                }
                let cid = self.trackers.cid(index);
                let opcode = tracker.sqe.opcode();
                let waited = self.now.saturating_sub(tracker.submitted_at);
                self.stats.timeouts += 1;
                tracing::warn!(
                    device = %self.device,
                    qid = self.qid,
                    cid,
                    opcode,
                    waited_ms = waited.as_millis() as u64,
                    "command timed out; sending Abort"
                );
                self.trackers.get_mut(index).state = TrackerState::Aborting { since: self.now };
                self.stats.aborts += 1;
                match self.ctrl.abort(self.qid, cid) {
                    Ok(aborted) => tracing::debug!(cid, aborted, "Abort completed"),
                    Err(err @ (Error::Command { .. } | Error::Resetting { .. })) => {
                        // Abort Command Limit Exceeded and the like: the abort timeout decides.
                        tracing::warn!(cid, %err, "Abort not accepted");
                    }
                    Err(err) => {
                        tracing::error!(cid, %err, "Abort failed: resetting the controller");
                        self.reset_wanted = Some(ResetCause::Timeout);
                        break;
                    }
                }
            }
        }
        pending.clear();
        self.to_abort = pending;
        if let Some(cause) = self.reset_wanted.take() {
            if let Err(err) = self.ctrl.request_reset(cause, Some(self.seen_generation)) {
                tracing::error!(device = %self.device, %err, "controller reset failed");
            }
        }
    }

    /// A poll while the queue may not run: nothing while disabled (a reset is in progress);
    /// every in-flight request failed when the controller failed or is gone. Buffers go back
    /// with them when the controller is stopped, or when `released`: this pair alone failed,
    /// its queues not recreated after the reset disabled the controller.
    pub(super) fn not_running(
        &mut self,
        state: QpairState,
        released: bool,
        on_complete: &mut impl FnMut(IoCompletion<T, B>),
    ) -> usize {
        let error = |device, qid| match state {
            QpairState::Gone => Error::DeviceGone {
                device,
                register: "CSTS",
            },
            QpairState::ShutDown => Error::Retriable {
                device,
                qid,
                reason: "the controller was shut down (its queues deleted)",
            },
            _ => Error::Retriable {
                device,
                qid,
                reason: "the controller could not be recovered",
            },
        };
        match state {
            QpairState::Failed | QpairState::Gone | QpairState::ShutDown => {}
            _ => return 0,
        }
        // Buffers go back only when the controller is known to be stopped.
        let quiet = released || self.ctrl.quiet.load(Ordering::Acquire);
        let mut done = 0;
        for index in 0..self.trackers.capacity() as u16 {
            let tracker = self.trackers.get(index);
            if tracker.state == TrackerState::Free {
                continue;
            }
            let request = tracker.request;
            self.trackers.release(index);
            if !quiet {
                if let Some(buffer) = self.requests.get_mut(request).buffer.take() {
                    tracing::error!(qid = self.qid, "leaking a buffer the device may still use");
                    std::mem::forget(buffer);
                }
            }
            done += self.finish(request, Err(error(self.device, self.qid)), on_complete);
        }
        self.unstamped.clear();
        self.to_abort.clear();
        done
    }
}

impl<F: PciFunction, T, B: IoBuffer> Drop for IoQueuePair<F, T, B> {
    /// Unregisters the queue pair and deletes its SQ then CQ; after Delete I/O SQ completes
    /// the controller no longer touches the commands of that queue, so their buffers can be
    /// freed. If the queues cannot be deleted and the controller may still be running, the
    /// buffers of in-flight commands and the queue memory are leaked rather than freed.
    fn drop(&mut self) {
        let core = &mut self.core;
        let ctrl = std::sync::Arc::clone(&core.ctrl);
        let mut admin = ctrl.lock_admin();
        ctrl.unregister(&mut admin, core.qid);
        let released = match self.shared.state() {
            QpairState::Enabled | QpairState::NeedsReconnect => {
                match ctrl.delete_queues(&mut admin, core.qid) {
                    Ok(()) => true,
                    Err(err) => {
                        tracing::warn!(device = %core.device, qid = core.qid, %err, "deleting the I/O queues failed");
                        ctrl.quiet.load(Ordering::Acquire)
                    }
                }
            }
            QpairState::Failed if self.shared.released() => true,
            QpairState::Disabled | QpairState::Failed | QpairState::Gone | QpairState::ShutDown => {
                ctrl.quiet.load(Ordering::Acquire)
            }
        };
        drop(admin);
        if !released {
            tracing::error!(
                device = %core.device,
                qid = core.qid,
                in_flight = core.trackers.in_flight(),
                "queue pair dropped while the controller may still use its memory: leaking it"
            );
            std::mem::forget(std::sync::Arc::clone(&core.memory));
            std::mem::forget(std::sync::Arc::clone(&core.prp));
            for index in 0..core.trackers.capacity() as u16 {
                let tracker = core.trackers.get(index);
                if tracker.state != TrackerState::Free {
                    let request = tracker.request;
                    if let Some(buffer) = core.requests.get_mut(request).buffer.take() {
                        std::mem::forget(buffer);
                    }
                }
            }
        } else {
            tracing::debug!(device = %core.device, qid = core.qid, "I/O queue pair deleted");
        }
    }
}

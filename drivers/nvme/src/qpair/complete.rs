//! Reaping completions: validation of untrusted entries, request completion, the periodic
//! timeout scan.

use userpci_framework::device::PciFunction;
use userpci_framework::reset::ResetCause;

use super::tracker::{CidError, TrackerState};
use super::{IoCompletion, IoQueuePair, QpairCore};
use crate::buffer::IoBuffer;
use crate::controller::QpairState;
use crate::error::Error;
use crate::spec::{CompletionEntry, Status};

/// Bogus completions logged at `warn` per queue pair before the rest go to `debug`.
const WARN_LIMIT: u32 = 8;

impl<F: PciFunction, T, B: IoBuffer> IoQueuePair<F, T, B> {
    /// Writes the SQ doorbell for queued commands, reaps up to `max` completion entries
    /// (0: as many as are posted, at most one pass over the queue), writes the CQ head
    /// doorbell once, and calls `on_complete` once per finished request. Returns the number
    /// of requests finished.
    ///
    /// It also drives error handling: expired commands are aborted, and a command that stays
    /// stuck after its abort resets the controller (blocking this call for the reset); after
    /// a reset the in-flight commands are re-issued here. When the controller failed, every
    /// in-flight request finishes here with an error.
    pub fn process_completions(
        &mut self,
        max: usize,
        on_complete: &mut impl FnMut(IoCompletion<T, B>),
    ) -> usize {
        let mut done = self.poll_once(max, on_complete);
        if self.core.reset_wanted.is_some() || !self.core.to_abort.is_empty() {
            // Outside the critical section: aborts take the admin lock, and a reset waits
            // for every queue pair, this one included, to be outside.
            self.core.handle_timeouts();
            done += self.poll_once(max, on_complete);
        }
        done
    }

    fn poll_once(&mut self, max: usize, on_complete: &mut impl FnMut(IoCompletion<T, B>)) -> usize {
        match self.shared.enter() {
            Ok(mut guard) => {
                if guard.state() == QpairState::NeedsReconnect {
                    self.core.reconnect();
                    guard.reconnected();
                }
                let mut done = 0;
                if self.core.doomed {
                    done += self.core.fail_doomed(on_complete);
                }
                done + self.core.poll(max, on_complete)
            }
            Err(state) => self
                .core
                .not_running(state, self.shared.released(), on_complete),
        }
    }
}

impl<F: PciFunction, T, B: IoBuffer> QpairCore<F, T, B> {
    /// One pass, inside the critical section.
    fn poll(&mut self, max: usize, on_complete: &mut impl FnMut(IoCompletion<T, B>)) -> usize {
        self.now = self.ctrl.function.clock().now();
        self.ring_sq();
        // At most one pass over the queue per doorbell write, so the head written can never
        // wrap onto the value written before.
        let limit = usize::from(self.entries - 1);
        let limit = if max == 0 { limit } else { max.min(limit) };
        let mut reaped = 0;
        let mut done = 0;
        while reaped < limit {
            let Some(cqe) = self.cq.peek(&self.memory.cq) else {
                break;
            };
            self.cq.advance();
            reaped += 1;
            done += self.handle(cqe, on_complete);
        }
        if let Some((new, old)) = self.cq.take_doorbell() {
            if self.cq_db.ring(new, old) {
                self.stats.doorbell_writes += 1;
            } else {
                self.stats.doorbell_writes_elided += 1;
            }
        }
        if self.trackers.in_flight() > 0
            && self.now.saturating_sub(self.last_check) >= self.options.timeout_check_interval
        {
            self.scan_timeouts();
        }
        done
    }

    /// Validates one completion entry and completes its command.
    fn handle(
        &mut self,
        cqe: CompletionEntry,
        on_complete: &mut impl FnMut(IoCompletion<T, B>),
    ) -> usize {
        if cqe.sq_id() != self.qid {
            self.stats.bogus.sq_id_mismatch += 1;
            self.bogus(&cqe, "SQ ID of another queue");
            return 0;
        }
        if !self.sq.update_head(cqe.sq_head()) {
            self.stats.bogus.sq_head_invalid += 1;
            self.bogus(
                &cqe,
                "SQ head outside what the controller could have fetched",
            );
        }
        let index = match self.trackers.lookup(cqe.cid()) {
            Ok(index) => index,
            Err(CidError::Reserved) => {
                self.stats.bogus.cid_reserved += 1;
                self.bogus(&cqe, "CID FFFFh, reserved by the NVMe specification");
                return 0;
            }
            Err(CidError::OutOfRange) => {
                self.stats.bogus.cid_out_of_range += 1;
                self.bogus(&cqe, "CID out of range");
                return 0;
            }
            Err(CidError::NotInFlight) => {
                self.stats.bogus.cid_not_in_flight += 1;
                self.bogus(&cqe, "CID of no command in flight (duplicate or stale)");
                return 0;
            }
        };
        let tracker = self.trackers.get(index);
        // The controller fetched this command, so its head is past the command's slot: with
        // SQHD bogus (or behind), entries whose commands completed still become free, and a
        // queue with nothing in flight is never left looking full. A value behind the head
        // is refused by `update_head`, so this never moves the head back.
        let fetched = (tracker.sq_slot + 1) % self.entries;
        self.sq.update_head(fetched);
        let (opcode, request) = (tracker.sqe.opcode(), tracker.request);
        let aborted = matches!(tracker.state, TrackerState::Aborting { .. });
        let waited = self.now.saturating_sub(tracker.submitted_at);
        self.trackers.release(index);
        self.stats.completed += 1;
        let status = cqe.status();
        let result = if status.is_success() {
            Ok(())
        } else if aborted && status.code() == Status::ABORT_REQUESTED {
            Err(Error::Timeout {
                device: self.device,
                qid: self.qid,
                cid: cqe.cid(),
                opcode,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            })
        } else {
            Err(Error::Command {
                device: self.device,
                qid: self.qid,
                opcode,
                status,
            })
        };
        self.finish(request, result, on_complete)
    }

    /// Records a command's outcome on its request; calls back when the request is done.
    pub(super) fn finish(
        &mut self,
        request: u16,
        result: Result<(), Error>,
        on_complete: &mut impl FnMut(IoCompletion<T, B>),
    ) -> usize {
        match self.requests.complete_one(request, result) {
            Some((token, buffer, result)) => {
                if result.is_err() {
                    self.stats.errors += 1;
                }
                on_complete(IoCompletion {
                    token,
                    buffer,
                    result,
                });
                1
            }
            None => 0,
        }
    }

    fn bogus(&mut self, cqe: &CompletionEntry, what: &'static str) {
        self.warnings = self.warnings.saturating_add(1);
        if self.warnings <= WARN_LIMIT {
            tracing::warn!(
                device = %self.device,
                qid = self.qid,
                sq_id = cqe.sq_id(),
                sq_head = cqe.sq_head(),
                cid = cqe.cid(),
                status = %cqe.status(),
                what,
                "bogus completion ignored"
            );
        } else {
            tracing::debug!(
                qid = self.qid,
                cid = cqe.cid(),
                what,
                "bogus completion ignored"
            );
        }
    }

    /// Finds commands past their deadline (memory only; the actions happen outside).
    fn scan_timeouts(&mut self) {
        self.last_check = self.now;
        let (timeout, abort_timeout) = (self.options.timeout, self.options.abort_timeout);
        for index in 0..self.trackers.capacity() as u16 {
            let tracker = self.trackers.get(index);
            match tracker.state {
                TrackerState::InFlight
                    if self.now.saturating_sub(tracker.submitted_at) >= timeout
                        && !self.to_abort.contains(&index) =>
                {
                    self.to_abort.push(index);
                }
                TrackerState::Aborting { since }
                    if self.now.saturating_sub(since) >= abort_timeout =>
                {
                    self.reset_wanted = Some(ResetCause::Timeout);
                }
                _ => {}
            }
        }
    }

    /// The error a submission gets in `state`.
    pub(super) fn state_error(&self, state: QpairState) -> Error {
        match state {
            QpairState::Enabled | QpairState::NeedsReconnect | QpairState::Disabled => {
                Error::Resetting {
                    device: self.device,
                }
            }
            QpairState::Failed => Error::ControllerFailed {
                device: self.device,
                reason: "a controller reset failed or this queue could not be recreated",
            },
            QpairState::Gone => Error::DeviceGone {
                device: self.device,
                register: "CSTS",
            },
            QpairState::ShutDown => Error::ShutDown {
                device: self.device,
            },
        }
    }
}

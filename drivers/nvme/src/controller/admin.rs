//! The admin queue pair (QID 0): one command at a time, polled to completion with a deadline.
//!
//! Admin commands are rare (bring-up, queue creation, aborts, resets), so the admin queue is
//! kept simple: the controller holds it behind a mutex, a command is written, the MMIO
//! doorbell rung (the admin queue never uses shadow doorbells: the specification keeps them
//! for I/O queues, and QEMU and Linux treat QID 0 differently), and the completion queue is
//! polled until the entry with the command's CID arrives. Completions of the Asynchronous
//! Event Requests (their reserved CIDs, see `aer_slots.rs`) reaped on the way are kept in
//! their slots; entries with another CID (a late completion of a command that timed out
//! earlier) are consumed and ignored.

use std::time::Duration;

use userpci_framework::device::RegisterIo;
use userpci_framework::dma::{DmaArray, DmaDirection, DmaSpace};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::{poll_until, Clock};

use super::aer_slots::{AerSlots, AER_CID_BASE};
use crate::error::{Error, Result};
use crate::queue::{CqRing, SqRing};
use crate::spec::registers::{self, Csts};
use crate::spec::{CompletionEntry, SubmissionEntry};

/// The admin submission and completion queues.
#[derive(Debug)]
pub(crate) struct AdminQueue {
    pub(crate) sq_mem: DmaArray<SubmissionEntry>,
    pub(crate) cq_mem: DmaArray<CompletionEntry>,
    size: u16,
    sq: SqRing,
    cq: CqRing,
    next_cid: u16,
    dstrd: u8,
    /// The Asynchronous Event Requests and their completions.
    pub(crate) events: AerSlots,
}

impl AdminQueue {
    /// Allocates queues of `size` entries each.
    pub(crate) fn new(space: &std::sync::Arc<DmaSpace>, size: u16, dstrd: u8) -> Result<Self> {
        let sq_mem = space.allocate_array(usize::from(size), DmaDirection::ToDevice)?;
        let cq_mem = space.allocate_array(usize::from(size), DmaDirection::Bidirectional)?;
        let mut queue = AdminQueue {
            sq_mem,
            cq_mem,
            size,
            sq: SqRing::new(size),
            cq: CqRing::new(size),
            next_cid: 0,
            dstrd,
            events: AerSlots::new(),
        };
        queue.reset();
        Ok(queue)
    }

    /// Back to the state of a freshly enabled controller: empty rings, zeroed completions, no
    /// Asynchronous Event Request outstanding (a controller reset drops them).
    pub(crate) fn reset(&mut self) {
        self.cq_mem.region().fill(0);
        self.sq = SqRing::new(self.size);
        self.cq = CqRing::new(self.size);
        self.events.reset();
    }

    /// Entries per queue.
    pub(crate) fn size(&self) -> u16 {
        self.size
    }

    /// Submits `sqe` and waits up to `timeout` for its completion. A non-success status is
    /// [`Error::Command`]; no completion is [`Error::Timeout`], or [`Error::DeviceGone`] /
    /// [`Error::ControllerFatal`] when `CSTS` says why.
    pub(crate) fn execute<R: RegisterIo>(
        &mut self,
        regs: &R,
        clock: &dyn Clock,
        device: PciAddress,
        mut sqe: SubmissionEntry,
        timeout: Duration,
    ) -> Result<CompletionEntry> {
        let opcode = sqe.opcode();
        let cid = self.next_cid;
        // Regular commands wrap below the CIDs reserved for Asynchronous Event Requests.
        self.next_cid = (self.next_cid + 1) % AER_CID_BASE;
        sqe.set_cid(cid);
        self.submit(regs, device, sqe)?;
        let start = clock.now();
        let result = poll_until(clock, device, "admin command completion", timeout, || {
            Ok(self.reap(regs, Some(cid)))
        });
        let cqe = match result {
            Ok(cqe) => cqe,
            Err(userpci_framework::Error::Timeout { .. }) => {
                let csts = Csts(regs.read32(registers::CSTS));
                if csts.is_all_ones() {
                    return Err(Error::DeviceGone {
                        device,
                        register: "CSTS",
                    });
                }
                if csts.cfs() {
                    return Err(Error::ControllerFatal {
                        device,
                        csts: csts.0,
                    });
                }
                let waited = clock.now().saturating_sub(start);
                return Err(Error::Timeout {
                    device,
                    qid: 0,
                    cid,
                    opcode,
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                });
            }
            Err(other) => return Err(other.into()),
        };
        let status = cqe.status();
        if !status.is_success() {
            return Err(Error::Command {
                device,
                qid: 0,
                opcode,
                status,
            });
        }
        Ok(cqe)
    }

    /// Writes `sqe` (its CID set) to the ring and rings the tail doorbell, without waiting.
    pub(crate) fn submit<R: RegisterIo>(
        &mut self,
        regs: &R,
        device: PciAddress,
        sqe: SubmissionEntry,
    ) -> Result<()> {
        if self.sq.free() == 0 {
            // Commands that timed out earlier still occupy the ring: only a reset clears it.
            return Err(Error::QueueFull {
                device,
                qid: 0,
                in_flight: usize::from(self.size) - 1,
                sq_free: 0,
                needed: 1,
            });
        }
        let slot = self.sq.push();
        self.sq_mem.set(usize::from(slot), sqe);
        if let Some((tail, _)) = self.sq.take_doorbell() {
            regs.write32(registers::sq_tail_doorbell(0, self.dstrd), u32::from(tail));
        }
        Ok(())
    }

    /// Consumes what the controller posted (Asynchronous Event Request completions land in
    /// their slots), without waiting.
    pub(crate) fn poll<R: RegisterIo>(&mut self, regs: &R) {
        let _ = self.reap(regs, None);
    }

    /// Consumes posted completions until the one for `cid` (all of them for `None`); rings
    /// the head doorbell once.
    fn reap<R: RegisterIo>(&mut self, regs: &R, cid: Option<u16>) -> Option<CompletionEntry> {
        let mut found = None;
        let mut budget = self.size - 1;
        while budget > 0 {
            let Some(cqe) = self.cq.peek(&self.cq_mem) else {
                break;
            };
            self.cq.advance();
            budget -= 1;
            if cqe.sq_id() == 0 && !self.sq.update_head(cqe.sq_head()) {
                tracing::debug!(
                    sqhd = cqe.sq_head(),
                    "admin completion with an invalid SQ head"
                );
            }
            if cqe.sq_id() == 0 && Some(cqe.cid()) == cid {
                found = Some(cqe);
                break;
            }
            if cqe.sq_id() == 0 && self.events.complete(cqe.cid(), cqe.dw0, cqe.status()) {
                continue;
            }
            tracing::debug!(
                cid = cqe.cid(),
                expected = ?cid,
                "admin completion for another command ignored"
            );
        }
        if let Some((head, _)) = self.cq.take_doorbell() {
            regs.write32(registers::cq_head_doorbell(0, self.dstrd), u32::from(head));
        }
        found
    }
}

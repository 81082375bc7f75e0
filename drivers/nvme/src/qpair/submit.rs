//! Submission: checks made before anything is queued, MDTS splitting, PRP lists, the SQ
//! tail doorbell.

use userpci_framework::device::PciFunction;

use super::{IoQueuePair, Op, QpairCore, TrackerList};
use crate::buffer::IoBuffer;
use crate::controller::QpairState;
use crate::error::{Error, Rejected, Result};
use crate::namespace::{Namespace, MAX_BLOCKS_PER_COMMAND};
use crate::prp::{self, PAGE_SIZE};
use crate::spec::nvm::DatasetManagement;
use crate::spec::{DsmRange, SubmissionEntry};

impl<F: PciFunction, T, B: IoBuffer> IoQueuePair<F, T, B> {
    /// Queues a read of `buffer.len()` bytes from block `lba` into `buffer`.
    pub fn submit_read(
        &mut self,
        ns: &Namespace,
        lba: u64,
        buffer: B,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        self.submit(Op::Read, ns, lba, 0, Some(buffer), token)
    }

    /// Queues a write of `buffer` at block `lba`.
    pub fn submit_write(
        &mut self,
        ns: &Namespace,
        lba: u64,
        buffer: B,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        self.submit(Op::Write, ns, lba, 0, Some(buffer), token)
    }

    /// Queues a Flush of the namespace's volatile write cache.
    pub fn submit_flush(&mut self, ns: &Namespace, token: T) -> Result<(), Rejected<T, B>> {
        self.submit(Op::Flush, ns, 0, 0, None, token)
    }

    /// Queues Write Zeroes of `blocks` blocks from `lba`.
    pub fn submit_write_zeroes(
        &mut self,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        self.submit(Op::WriteZeroes, ns, lba, blocks, None, token)
    }

    /// Queues a deallocation ("trim", Dataset Management with `AD`) of `blocks` blocks.
    pub fn submit_trim(
        &mut self,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        self.submit(Op::Trim, ns, lba, blocks, None, token)
    }

    /// Writes the SQ tail doorbell for everything queued since the last write (a no-op when
    /// nothing was queued). [`IoQueuePair::process_completions`] does this too.
    pub fn commit(&mut self) -> Result<()> {
        match self.shared.enter() {
            Ok(mut guard) => {
                if guard.state() == QpairState::NeedsReconnect {
                    // Nothing queued before the reset is lost: reconnecting re-issues it.
                    self.core.reconnect();
                    guard.reconnected();
                }
                self.core.now = self.core.ctrl.function.clock().now();
                self.core.ring_sq();
                Ok(())
            }
            Err(state) => Err(self.core.state_error(state)),
        }
    }

    fn submit(
        &mut self,
        op: Op,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        buffer: Option<B>,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        let blocks = match self.core.validate(op, ns, lba, blocks, buffer.as_ref()) {
            Ok(blocks) => blocks,
            Err(error) => {
                return Err(Rejected {
                    error,
                    token,
                    buffer,
                })
            }
        };
        let guard = match self.shared.enter() {
            Ok(guard) => guard,
            Err(state) => {
                return Err(Rejected {
                    error: self.core.state_error(state),
                    token,
                    buffer,
                })
            }
        };
        let mut guard = guard;
        if guard.state() == QpairState::NeedsReconnect {
            // Commands that exhausted their re-issues fail at the next poll.
            self.core.reconnect();
            guard.reconnected();
        }
        self.core.enqueue(op, ns, lba, blocks, buffer, token)
    }
}

impl<F: PciFunction, T, B: IoBuffer> QpairCore<F, T, B> {
    /// Checks a request before anything is queued; returns its block count.
    fn validate(
        &self,
        op: Op,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        buffer: Option<&B>,
    ) -> Result<u64> {
        if ns.device != self.device {
            return Err(Error::NoSuchNamespace {
                device: self.device,
                nsid: ns.nsid,
            });
        }
        let blocks = match (op, buffer) {
            (Op::Read | Op::Write, Some(buffer)) => {
                let (iova, len) = (buffer.iova(), buffer.len());
                let direction_ok = match op {
                    Op::Read => buffer.device_writable(),
                    _ => buffer.device_readable(),
                };
                if !direction_ok {
                    return Err(Error::InvalidBuffer {
                        device: self.device,
                        iova,
                        len,
                        reason: "its DMA direction does not let the device move data that way",
                    });
                }
                if !iova.is_multiple_of(4) {
                    return Err(Error::InvalidBuffer {
                        device: self.device,
                        iova,
                        len,
                        reason: "PRPs need a dword-aligned start",
                    });
                }
                ns.blocks_in(iova, len)?
            }
            (Op::Flush, _) => return Ok(0),
            (Op::WriteZeroes, _) if !ns.write_zeroes => {
                return Err(Error::CommandUnsupported {
                    device: self.device,
                    command: "Write Zeroes",
                    field: "ONCS bit 3",
                })
            }
            (Op::Trim, _) if !ns.deallocate => {
                return Err(Error::CommandUnsupported {
                    device: self.device,
                    command: "Dataset Management",
                    field: "ONCS bit 2",
                })
            }
            _ => blocks,
        };
        ns.check_range(lba, blocks)?;
        Ok(blocks)
    }

    /// Blocks per command for `op`.
    fn blocks_per_command(op: Op, ns: &Namespace) -> u64 {
        match op {
            Op::Read | Op::Write => ns.max_blocks_per_command,
            Op::WriteZeroes => MAX_BLOCKS_PER_COMMAND,
            Op::Trim => u64::from(u32::MAX),
            Op::Flush => 1,
        }
    }

    /// Writes the commands of one request into the SQ (no doorbell).
    fn enqueue(
        &mut self,
        op: Op,
        ns: &Namespace,
        lba: u64,
        blocks: u64,
        buffer: Option<B>,
        token: T,
    ) -> Result<(), Rejected<T, B>> {
        let per_command = Self::blocks_per_command(op, ns);
        let commands = if op == Op::Flush {
            1
        } else {
            blocks.div_ceil(per_command)
        };
        let capacity = self.trackers.capacity();
        if commands > capacity as u64 {
            return Err(Rejected {
                error: Error::RequestTooLarge {
                    device: self.device,
                    qid: self.qid,
                    blocks,
                    commands: usize::try_from(commands).unwrap_or(usize::MAX),
                    capacity,
                },
                token,
                buffer,
            });
        }
        let commands = commands as u16;
        if self.trackers.available() < usize::from(commands)
            || self.sq.free() < commands
            || self.requests.available() == 0
        {
            return Err(Rejected {
                error: Error::QueueFull {
                    device: self.device,
                    qid: self.qid,
                    in_flight: capacity - self.trackers.available(),
                    sq_free: self.sq.free(),
                    needed: commands,
                },
                token,
                buffer,
            });
        }
        let iova = buffer.as_ref().map_or(0, |b| b.iova());
        let request = self.requests.alloc(token, buffer, commands);
        let block_size = u64::from(ns.block_size);
        for part in 0..u64::from(commands) {
            let first = part * per_command;
            let count = per_command.min(blocks.saturating_sub(first)).max(1);
            let index = self
                .trackers
                .alloc(request)
                .expect("free trackers were counted above");
            let sqe = self.build(op, ns, lba + first, count, iova + first * block_size, index);
            let sqe = sqe.with_cid(self.trackers.cid(index));
            let slot = self.sq.push();
            let tracker = self.trackers.get_mut(index);
            tracker.sqe = sqe;
            tracker.sq_slot = slot;
            self.memory.sq.set(usize::from(slot), sqe);
            self.unstamped.push(index);
        }
        self.stats.requests += 1;
        self.stats.submitted += u64::from(commands);
        Ok(())
    }

    /// The submission entry of one command (`count` blocks at `lba`, data at `iova`), with
    /// its PRP list or range list in tracker `index`'s pages.
    fn build(
        &mut self,
        op: Op,
        ns: &Namespace,
        lba: u64,
        count: u64,
        iova: u64,
        index: u16,
    ) -> SubmissionEntry {
        let mut list = TrackerList {
            region: &self.prp,
            first: usize::from(index) * self.prp_pages,
            pages: self.prp_pages,
        };
        let nsid = ns.nsid;
        match op {
            Op::Read | Op::Write => {
                let len = (count << ns.block_shift) as usize;
                // Cannot fail: alignment was validated and the list sized for the largest
                // command the namespace's limit allows.
                let (prp1, prp2) =
                    prp::build(iova, len, &mut list).expect("PRP list sized for MDTS");
                let nlb = (count - 1) as u16;
                if op == Op::Read {
                    SubmissionEntry::read(nsid, lba, nlb, prp1, prp2)
                } else {
                    SubmissionEntry::write(nsid, lba, nlb, prp1, prp2)
                }
            }
            Op::WriteZeroes => SubmissionEntry::write_zeroes(nsid, lba, (count - 1) as u16),
            Op::Trim => {
                let offset = list.first * PAGE_SIZE as usize;
                self.prp
                    .write::<DsmRange>(offset, DsmRange::new(lba, count as u32));
                SubmissionEntry::dataset_management(
                    nsid,
                    0,
                    DatasetManagement::AD,
                    self.prp.iova_at(offset),
                )
            }
            Op::Flush => SubmissionEntry::flush(nsid),
        }
    }

    /// Writes the SQ tail doorbell if entries were queued, stamping them with `now`.
    pub(super) fn ring_sq(&mut self) {
        let Some((new, old)) = self.sq.take_doorbell() else {
            return;
        };
        for &index in &self.unstamped {
            self.trackers.get_mut(index).submitted_at = self.now;
        }
        self.unstamped.clear();
        if self.sq_db.ring(new, old) {
            self.stats.doorbell_writes += 1;
        } else {
            self.stats.doorbell_writes_elided += 1;
        }
    }
}

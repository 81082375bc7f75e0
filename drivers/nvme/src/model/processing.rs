//! The processing loop: fetching commands, executing them, posting completions and
//! signalling interrupts (Base 2.0 "Queue Mechanism", "Interrupts").
//!
//! Work happens in deterministic order inside the call that causes it: a doorbell write or a
//! timer runs [`NvmeModel::run`], which executes due commands, posts waiting completions
//! (completion queues in queue order) and fetches new commands (submission queues in queue
//! order) until nothing moves.

use std::time::Duration;

use userpci_framework::backend::sim::ModelContext;

use super::faults::Corruption;
use super::hostile::DeviceWrite;
use super::queues::{Inflight, PendingCqe};
use super::shared::{Outcome, TIMER_COALESCE, TIMER_COMMAND};
use super::NvmeModel;
use crate::spec::features::InterruptCoalescing;
use crate::spec::{CompletionEntry, Status, SubmissionEntry};

impl NvmeModel {
    /// Executes due commands, posts waiting completions and fetches new commands until
    /// nothing moves.
    pub(super) fn run(&mut self, ctx: &mut ModelContext<'_>) {
        while self.processing() {
            let mut progress = self.execute_due(ctx);
            for cqid in 0..self.cqs.len() {
                progress |= self.post_pending(ctx, cqid as u16);
            }
            for sqid in 0..self.sqs.len() {
                progress |= self.fetch(ctx, sqid as u16);
            }
            if !progress {
                break;
            }
        }
    }

    fn execute_due(&mut self, ctx: &mut ModelContext<'_>) -> bool {
        if self.config.latency.is_zero() {
            return false;
        }
        let now = ctx.now();
        let mut any = false;
        while self.processing() {
            let mut oldest: Option<(u64, usize)> = None;
            for (sqid, sq) in self.sqs.iter().enumerate() {
                let Some(first) = sq.as_ref().and_then(|sq| sq.inflight.front()) else {
                    continue;
                };
                if first.due <= now && oldest.is_none_or(|(seq, _)| first.seq < seq) {
                    oldest = Some((first.seq, sqid));
                }
            }
            let Some((_, sqid)) = oldest else { break };
            let Some(command) = self.sqs[sqid]
                .as_mut()
                .and_then(|sq| sq.inflight.pop_front())
            else {
                break;
            };
            self.execute(ctx, sqid as u16, command.sqe);
            any = true;
        }
        any
    }

    fn fetch(&mut self, ctx: &mut ModelContext<'_>, sqid: u16) -> bool {
        let mut fetched = false;
        while self.processing() {
            let Some(sq) = self.sqs[usize::from(sqid)].as_mut() else {
                break;
            };
            if !sq.can_fetch() {
                if fetched && sqid != 0 && self.refresh_shadow_tail(ctx, sqid) {
                    continue;
                }
                break;
            }
            let address = sq.entry_address(sq.head);
            let Ok(sqe) = ctx.dma_read_pod::<SubmissionEntry>(address) else {
                // The queue itself is unreachable: nothing can report it but CSTS.CFS.
                self.cfs = true;
                break;
            };
            sq.advance_head();
            sq.outstanding += 1;
            fetched = true;
            self.count_command(sqid, &sqe);
            // Admin commands are not delayed, so Abort reaches a delayed I/O command.
            if self.config.latency.is_zero() || sqid == 0 {
                self.execute(ctx, sqid, sqe);
            } else {
                self.sequence += 1;
                let command = Inflight {
                    sqe,
                    due: ctx.now() + self.config.latency,
                    seq: self.sequence,
                };
                if let Some(sq) = self.sqs[usize::from(sqid)].as_mut() {
                    sq.inflight.push_back(command);
                }
                self.schedule(ctx, self.config.latency, TIMER_COMMAND, sqid);
            }
        }
        fetched
    }

    /// Shadow doorbells: publishes the tail as EventIdx and re-reads the shadow tail, which the
    /// host may have moved without ringing. True if there is more to fetch.
    fn refresh_shadow_tail(&mut self, ctx: &mut ModelContext<'_>, sqid: u16) -> bool {
        let Some((shadow, slot)) = self.shadow.and_then(|s| Some((s, s.sq_slot(sqid)?))) else {
            return false;
        };
        let Some(sq) = self.sqs[usize::from(sqid)].as_mut() else {
            return false;
        };
        let eventidx = self.hostile.eventidx(sqid, true, u32::from(sq.tail));
        shadow.write_eventidx(ctx, slot, eventidx);
        match shadow.read(ctx, slot) {
            Some(tail) if sq.valid_tail(tail) && tail != u32::from(sq.tail) => {
                sq.tail = tail as u16;
                sq.can_fetch()
            }
            _ => false,
        }
    }

    /// Runs one fetched command to its completion (or parks it).
    pub(super) fn execute(&mut self, ctx: &mut ModelContext<'_>, sqid: u16, sqe: SubmissionEntry) {
        let outcome = match self.faults.take_failure(sqid) {
            Some(status) => Outcome::status(status),
            None if sqid == 0 => self.admin(ctx, &sqe),
            None => self.io(ctx, &sqe),
        };
        match outcome {
            Outcome::Done(dw0, status) => self.complete(sqid, sqe.cid(), dw0, status),
            Outcome::Parked => {
                if let Some(sq) = self.sqs[usize::from(sqid)].as_mut() {
                    sq.outstanding = sq.outstanding.saturating_sub(1);
                }
                self.deliver_events();
            }
        }
    }

    /// Queues the completion of command `cid` from `sqid` on its completion queue.
    pub(super) fn complete(&mut self, sqid: u16, cid: u16, dw0: u32, status: Status) {
        let Some(sq) = self.sqs[usize::from(sqid)].as_ref() else {
            return;
        };
        let (cqid, sq_head) = (sq.cqid, sq.head);
        if !status.is_success() {
            self.stats.errors += 1;
            self.error_log.record(sqid, cid, status);
        }
        if let Some(cq) = self.cqs[usize::from(cqid)].as_mut() {
            cq.pending.push_back(PendingCqe {
                sqid,
                cid,
                dw0,
                status,
                sq_head,
            });
        }
    }

    /// Posts waiting completions while the queue has room; true if any was posted.
    fn post_pending(&mut self, ctx: &mut ModelContext<'_>, cqid: u16) -> bool {
        let shadow = self.shadow;
        let Some(cq) = self.cqs[usize::from(cqid)].as_mut() else {
            return false;
        };
        if cq.pending.is_empty() {
            return false;
        }
        if cqid != 0 {
            if let Some((shadow, slot)) = shadow.and_then(|s| Some((s, s.cq_slot(cqid)?))) {
                if let Some(head) = shadow.read(ctx, slot).filter(|&h| cq.valid_head(h)) {
                    cq.head = head as u16;
                }
                let eventidx = self.hostile.eventidx(cqid, false, u32::from(cq.head));
                shadow.write_eventidx(ctx, slot, eventidx);
            }
        }
        let mut posted = 0u32;
        while let Some(&p) = cq.pending.front() {
            if cq.is_full() {
                break;
            }
            let sq = self.sqs[usize::from(p.sqid)]
                .as_mut()
                .filter(|sq| sq.cqid == cqid);
            let (mut sq_head, sq_size) =
                sq.as_ref().map_or((p.sq_head, 0), |sq| (sq.head, sq.size));
            let mut cid = p.cid;
            let mut phase = cq.phase;
            if let Some((class, corruption)) = self.faults.corrupt {
                if class.matches(p.sqid) {
                    let applied = match corruption {
                        Corruption::CidOutOfRange => {
                            cid = 0xffff;
                            true
                        }
                        Corruption::DuplicateCid => match cq.last_cid {
                            Some(last) => {
                                cid = last;
                                true
                            }
                            None => false,
                        },
                        Corruption::SqHeadOutOfRange => {
                            // One past the last slot; FFFFh if the queue is gone (or has
                            // 65536 entries, where no value is out of range).
                            sq_head = u16::try_from(sq_size)
                                .ok()
                                .filter(|&s| s != 0)
                                .unwrap_or(u16::MAX);
                            true
                        }
                        Corruption::WrongPhase => {
                            phase = !phase;
                            true
                        }
                    };
                    if applied {
                        self.faults.corrupt = None;
                    }
                }
            }
            let mut entry = CompletionEntry::new(p.dw0, sq_head, p.sqid, cid, phase, p.status);
            if self.hostile.active() {
                let mut bytes: [u8; 16] = bytemuck::cast(entry);
                self.hostile.offer(DeviceWrite::Completion {
                    sqid: p.sqid,
                    entry: &mut bytes,
                });
                entry = bytemuck::cast(bytes);
            }
            if cq.push(ctx, &entry).is_err() {
                self.cfs = true;
                break;
            }
            cq.pending.pop_front();
            cq.last_cid = Some(cid);
            if let Some(sq) = sq {
                sq.outstanding = sq.outstanding.saturating_sub(1);
            }
            self.stats.completions += 1;
            posted += 1;
        }
        if posted > 0 {
            self.signal(ctx, cqid, posted);
        }
        posted > 0
    }

    /// Interrupts for `posted` new entries on `cqid`, with Interrupt Coalescing on I/O queues:
    /// an interrupt once more than `THR` entries wait, or `TIME` after the first of them.
    fn signal(&mut self, ctx: &mut ModelContext<'_>, cqid: u16, posted: u32) {
        let coalescing = InterruptCoalescing::from_dword(self.features.coalescing);
        let Some(cq) = self.cqs[usize::from(cqid)].as_mut() else {
            return;
        };
        if !cq.interrupts {
            return;
        }
        let vector = cq.vector;
        if cqid == 0 || coalescing.time == 0 {
            return self.raise(ctx, vector);
        }
        cq.coalescing.unsignalled += posted;
        if cq.coalescing.unsignalled > u32::from(coalescing.thr) {
            cq.coalescing.unsignalled = 0;
            self.raise(ctx, vector);
        } else if !cq.coalescing.timer_armed {
            cq.coalescing.timer_armed = true;
            let after = Duration::from_micros(100 * u64::from(coalescing.time));
            self.schedule(ctx, after, TIMER_COALESCE, cqid);
        }
    }

    pub(super) fn raise(&mut self, ctx: &mut ModelContext<'_>, vector: u16) {
        self.stats.interrupts += 1;
        ctx.raise_interrupt(vector);
    }
}

//! The raw polled API: a preallocated buffer per slot, `process_completions` in a loop.

use std::time::{Duration, Instant};

use crate::framework::backend::sim::SimClock;
use crate::framework::device::PciFunction;
use crate::framework::dma::{DmaBuffer, DmaDirection};
use crate::framework::runtime::affinity;
use crate::nvme::{Controller, Error as NvmeError, Namespace, QpairOptions, Rejected};
use crate::tools::nvme::device::Result;
use crate::tools::run::stop_requested;

use super::args::Workload;
use super::pattern::{check_pattern, fill_pattern, Picker, VerifySlot};
use super::plan::{advance_virtual_time, Plan};
use super::stats::CoreStats;

/// What a raw worker keeps per slot.
pub(super) struct RawSlot {
    pub(super) buffer: Option<DmaBuffer>,
    pub(super) unit: u64,
    pub(super) submitted_ns: u64,
    pub(super) verify: Option<VerifySlot>,
}

/// Submits slot `index`'s next I/O; on a refusal the buffer goes back to the slot.
pub(super) fn submit_raw<F: PciFunction>(
    qp: &mut crate::nvme::IoQueuePair<F, u32, DmaBuffer>,
    ns: &Namespace,
    plan: &Plan,
    picker: &mut Picker,
    slot: &mut RawSlot,
    index: u32,
    now_ns: u64,
) -> std::result::Result<(), NvmeError> {
    let mut buffer = slot.buffer.take().expect("an idle slot holds its buffer");
    let write = match &slot.verify {
        Some(v) => {
            slot.unit = v.unit();
            let lba = slot.unit * plan.bs_blocks;
            fill_pattern(buffer.as_mut_slice(), lba, v.pass, v.reading);
            !v.reading
        }
        None => {
            slot.unit = picker.unit();
            plan.rw.writes()
        }
    };
    let lba = slot.unit * plan.bs_blocks;
    slot.submitted_ns = now_ns;
    let submitted = if write {
        qp.submit_write(ns, lba, buffer, index)
    } else {
        qp.submit_read(ns, lba, buffer, index)
    };
    submitted.map_err(|Rejected { error, buffer, .. }| {
        slot.buffer = buffer;
        error
    })
}

/// A raw worker, ready to start.
pub(super) struct RawWorker<F: PciFunction> {
    pub(super) qp: crate::nvme::IoQueuePair<F, u32, DmaBuffer>,
    pub(super) slots: Vec<RawSlot>,
    /// Slots whose I/O completed in the last poll, and whether it succeeded.
    pub(super) completed: Vec<(u32, bool)>,
}

pub(super) fn setup_raw<F: PciFunction>(
    ctrl: &Controller<F>,
    plan: &Plan,
    index: usize,
) -> Result<RawWorker<F>> {
    affinity::pin_current_thread(plan.cpus[index])?;
    let qp = ctrl.create_io_qpair::<u32, DmaBuffer>(QpairOptions {
        entries: plan.entries,
        ..QpairOptions::default()
    })?;
    let space = ctrl.function().dma_space();
    let mut slots = Vec::with_capacity(plan.qd);
    for slot in 0..plan.qd {
        let mut buffer = space.allocate_buffer(plan.bs, DmaDirection::Bidirectional)?;
        fill_pattern(buffer.as_mut_slice(), slot as u64, u64::MAX, false);
        slots.push(RawSlot {
            buffer: Some(buffer),
            unit: 0,
            submitted_ns: 0,
            verify: (plan.rw == Workload::Verify).then(|| VerifySlot::new(plan, index, slot)),
        });
    }
    Ok(RawWorker {
        qp,
        slots,
        completed: Vec::with_capacity(plan.qd),
    })
}

pub(super) fn run_raw<F: PciFunction>(
    mut worker: RawWorker<F>,
    ns: &Namespace,
    plan: &Plan,
    index: usize,
    virtual_clock: Option<&SimClock>,
) -> CoreStats {
    let mut stats = CoreStats::new(plan.cpus[index]);
    stats.qid = worker.qp.qid();
    let mut picker = Picker::new(plan, index);
    let start = Instant::now();
    let deadline_ns = plan.duration.as_nanos() as u64;
    let qp = &mut worker.qp;
    for (i, slot) in worker.slots.iter_mut().enumerate() {
        if let Err(error) = submit_raw(qp, ns, plan, &mut picker, slot, i as u32, 0) {
            tracing::warn!(%error, "submission refused");
            stats.errors += 1;
        }
    }
    let mut now_ns = 0;
    loop {
        // The callback hands each buffer back to its slot and notes (slot, success); the
        // slots are resubmitted once the batch is reaped and the clock read.
        let (slots, completed, stats_ref) = (&mut worker.slots, &mut worker.completed, &mut stats);
        let done = qp.process_completions(0, &mut |c| {
            slots[c.token as usize].buffer = c.buffer;
            if let Err(error) = &c.result {
                stats_ref.errors += 1;
                if stats_ref.errors <= 8 {
                    tracing::warn!(%error, "I/O failed");
                }
            }
            completed.push((c.token, c.result.is_ok()));
        });
        if done == 0 {
            if qp.in_flight() == 0 {
                break;
            }
            if let Some(clock) = virtual_clock {
                advance_virtual_time(clock);
            }
            continue;
        }
        now_ns = start.elapsed().as_nanos() as u64;
        let submitting = now_ns < deadline_ns && !stop_requested();
        for (token, ok) in worker.completed.drain(..) {
            let slot = &mut worker.slots[token as usize];
            stats.record(now_ns - slot.submitted_ns);
            if let Some(v) = &mut slot.verify {
                if ok && v.reading {
                    let lba = slot.unit * plan.bs_blocks;
                    let data = slot.buffer.as_ref().expect("completions return the buffer");
                    if !check_pattern(data.as_slice(), lba, v.pass) {
                        stats.errors += 1;
                        stats.mismatches += 1;
                    }
                    v.advance();
                } else if ok {
                    v.reading = true;
                } else {
                    v.advance();
                }
            }
            if submitting {
                if let Err(error) = submit_raw(qp, ns, plan, &mut picker, slot, token, now_ns) {
                    stats.errors += 1;
                    if stats.errors <= 8 {
                        tracing::warn!(%error, "submission refused");
                    }
                }
            }
        }
    }
    stats.elapsed = Duration::from_nanos(now_ns.max(1));
    stats
}

//! The async API: a reactor per core, one task per slot awaiting its own I/O.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Instant;

use crate::framework::backend::sim::SimClock;
use crate::framework::device::PciFunction;
use crate::framework::dma::{DmaBuffer, DmaDirection};
use crate::framework::runtime::{
    add_poller, remove_poller, spawn_local, IdlePolicy, Reactor, ReactorConfig,
};
use crate::nvme::{Controller, Namespace, QpairOptions};
use crate::tools::nvme::device::Result;
use crate::tools::run::stop_requested;

use super::args::Workload;
use super::pattern::{check_pattern, fill_pattern, Picker, VerifySlot};
use super::plan::{advance_virtual_time, Plan};
use super::stats::CoreStats;

/// What the tasks of one async worker share.
pub(super) struct AsyncCore<F: PciFunction> {
    pub(super) qp: crate::nvme::AsyncQueuePair<F>,
    pub(super) ns: Namespace,
    pub(super) plan: Plan,
    pub(super) picker: RefCell<Picker>,
    /// Host time (ns since the start) when the queue pair's poller last reaped.
    pub(super) now: Cell<u64>,
    pub(super) stats: RefCell<CoreStats>,
}

/// One async slot: a task that runs I/O on its own buffer until the deadline.
pub(super) async fn async_slot<F: PciFunction>(
    core: Rc<AsyncCore<F>>,
    mut buffer: DmaBuffer,
    mut verify: Option<VerifySlot>,
) {
    let plan = &core.plan;
    let deadline_ns = plan.duration.as_nanos() as u64;
    loop {
        let submitted = core.now.get();
        if submitted >= deadline_ns || stop_requested() {
            return;
        }
        let (unit, write) = match &verify {
            Some(v) => {
                let lba = v.unit() * plan.bs_blocks;
                fill_pattern(buffer.as_mut_slice(), lba, v.pass, v.reading);
                (v.unit(), !v.reading)
            }
            None => (core.picker.borrow_mut().unit(), plan.rw.writes()),
        };
        let lba = unit * plan.bs_blocks;
        let result = if write {
            core.qp.write(&core.ns, lba, &buffer).await
        } else {
            core.qp.read(&core.ns, lba, &mut buffer).await
        };
        let mut stats = core.stats.borrow_mut();
        stats.record(core.now.get() - submitted);
        match result {
            Ok(()) => {
                if let Some(v) = &mut verify {
                    if v.reading {
                        if !check_pattern(buffer.as_slice(), lba, v.pass) {
                            stats.errors += 1;
                            stats.mismatches += 1;
                        }
                        v.advance();
                    } else {
                        v.reading = true;
                    }
                }
            }
            Err(error) => {
                stats.errors += 1;
                if stats.errors <= 8 {
                    tracing::warn!(%error, "I/O failed");
                }
                if let Some(v) = &mut verify {
                    v.advance();
                }
            }
        }
    }
}

pub(super) fn run_async<F: PciFunction>(
    ctrl: &Controller<F>,
    ns: &Namespace,
    plan: &Plan,
    index: usize,
    virtual_clock: Option<Arc<SimClock>>,
    start_line: &Barrier,
    abort: &AtomicBool,
) -> Result<Option<CoreStats>> {
    let core = plan.cpus[index];
    let config = ReactorConfig {
        idle: IdlePolicy::BusyPoll,
        ..ReactorConfig::default()
    };
    let reactor = match Reactor::pinned(core, config) {
        Ok(reactor) => reactor,
        Err(err) => {
            abort.store(true, Ordering::SeqCst);
            start_line.wait();
            return Err(err.into());
        }
    };
    let outcome = reactor.block_on(async {
        let setup = (|| -> Result<_> {
            let qp = ctrl.create_async_qpair(QpairOptions {
                entries: plan.entries,
                ..QpairOptions::default()
            })?;
            let space = ctrl.function().dma_space();
            let buffers = (0..plan.qd)
                .map(|slot| {
                    let mut buffer = space.allocate_buffer(plan.bs, DmaDirection::Bidirectional)?;
                    fill_pattern(buffer.as_mut_slice(), slot as u64, u64::MAX, false);
                    Ok(buffer)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((qp, buffers))
        })();
        if setup.is_err() {
            abort.store(true, Ordering::SeqCst);
        }
        start_line.wait();
        let (qp, buffers) = setup?;
        if abort.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let mut stats = CoreStats::new(core);
        stats.qid = qp.qid();
        let shared = Rc::new(AsyncCore {
            qp,
            ns: ns.clone(),
            plan: plan.clone(),
            picker: RefCell::new(Picker::new(plan, index)),
            now: Cell::new(0),
            stats: RefCell::new(stats),
        });
        let start = Instant::now();
        // After the queue pair's poller: the time its completions were reaped, and virtual
        // time moved on when it reaped nothing.
        let poller = {
            let shared = Rc::clone(&shared);
            let mut last_completed = 0;
            add_poller(move || {
                shared.now.set(start.elapsed().as_nanos() as u64);
                if let Some(clock) = &virtual_clock {
                    let completed = shared.qp.stats().completed;
                    if completed == last_completed && shared.qp.in_flight() > 0 {
                        advance_virtual_time(clock);
                    }
                    last_completed = completed;
                }
                false
            })
        };
        let tasks: Vec<_> = buffers
            .into_iter()
            .enumerate()
            .map(|(slot, buffer)| {
                let verify =
                    (plan.rw == Workload::Verify).then(|| VerifySlot::new(plan, index, slot));
                spawn_local(async_slot(Rc::clone(&shared), buffer, verify))
            })
            .collect();
        for task in tasks {
            task.await;
        }
        let elapsed = start.elapsed();
        remove_poller(poller);
        let mut stats = std::mem::replace(&mut *shared.stats.borrow_mut(), CoreStats::new(core));
        stats.elapsed = elapsed;
        Ok(Some(stats))
    });
    outcome?
}

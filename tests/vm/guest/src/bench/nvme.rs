//! userpci's side of the NVMe comparison: 4 KiB random reads at a fixed queue depth for a fixed
//! time on one controller, through the raw polled API (`IoQueuePair`, one preallocated buffer
//! per slot, resubmitted from the completion) and through the async API (one task per slot on
//! a busy-polling reactor), as `examples/common/perf.rs` does. The controller is polled: no
//! MSI-X, as the kernel's `--hipri` queues.

use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use userpci_framework::device::PciFunction;
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::runtime::{affinity, spawn_local, IdlePolicy, Reactor, ReactorConfig};
use userpci_nvme::{AsyncQueuePair, Controller, ControllerOptions, Namespace, QpairOptions};

use super::shared::{Rng, BLOCK_BYTES};
use crate::harness::Failure;

/// The options both APIs run with: one I/O queue pair, polled, shadow doorbells when offered.
pub fn controller_options() -> ControllerOptions {
    ControllerOptions {
        io_queues: 1,
        interrupts: false,
        ..ControllerOptions::default()
    }
}

/// One measurement: I/Os completed in `seconds` of submitting (the tail drained and counted).
#[derive(Clone, Copy, Debug)]
pub struct Measured {
    pub ios: u64,
    pub errors: u64,
    pub seconds: f64,
    /// Mean of submission-to-reap time over every I/O, in ns.
    pub lat_mean_ns: f64,
    /// Doorbell writes that reached MMIO (each one a trip into QEMU's device model) and those
    /// the shadow doorbell buffer absorbed.
    pub doorbell_writes: u64,
    pub doorbell_writes_elided: u64,
}

impl Measured {
    pub fn iops(&self) -> f64 {
        self.ios as f64 / self.seconds
    }

    pub fn to_json(self) -> Value {
        json!({
            "iops": self.iops(),
            "ios": self.ios,
            "errors": self.errors,
            "seconds": self.seconds,
            "lat_mean_us": self.lat_mean_ns / 1e3,
            "mmio_doorbells_per_io": self.doorbell_writes as f64 / self.ios.max(1) as f64,
            "elided_doorbells_per_io": self.doorbell_writes_elided as f64 / self.ios.max(1) as f64,
        })
    }
}

/// Positions of 4 KiB blocks in the namespace.
fn units(ns: &Namespace) -> u64 {
    ns.size_bytes() / BLOCK_BYTES as u64
}

fn lba_of(ns: &Namespace, unit: u64) -> u64 {
    unit * (BLOCK_BYTES as u64 / u64::from(ns.block_size()))
}

/// Raw polled API: `qd` slots, each resubmitted as soon as its completion is reaped.
pub fn raw<F: PciFunction>(
    ctrl: &Controller<F>,
    ns: &Namespace,
    qd: usize,
    duration: Duration,
    seed: u64,
) -> Result<Measured, Failure> {
    let mut qp = ctrl.create_io_qpair::<u32, DmaBuffer>(QpairOptions {
        entries: (qd + 1) as u16,
        ..QpairOptions::default()
    })?;
    let space = ctrl.function().dma_space();
    let mut buffers = (0..qd)
        .map(|_| space.allocate_buffer(BLOCK_BYTES, DmaDirection::Bidirectional))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .map(Some)
        .collect::<Vec<_>>();
    let mut submitted_at = vec![Duration::ZERO; qd];
    let mut done: Vec<(u32, bool)> = Vec::with_capacity(qd);
    let mut rng = Rng::new(seed);
    let units = units(ns);
    let (mut ios, mut errors, mut latency_sum) = (0u64, 0u64, Duration::ZERO);
    let start = Instant::now();
    for (slot, buffer) in buffers.iter_mut().enumerate() {
        let buffer = buffer.take().expect("every slot starts with its buffer");
        qp.submit_read(ns, lba_of(ns, rng.below(units)), buffer, slot as u32)
            .map_err(|r| Failure::from(r.error))?;
    }
    qp.commit()?;
    let mut now = Duration::ZERO;
    while qp.in_flight() > 0 {
        let reaped = qp.process_completions(0, &mut |c| {
            buffers[c.token as usize] = c.buffer;
            done.push((c.token, c.result.is_ok()));
        });
        if reaped == 0 {
            continue;
        }
        now = start.elapsed();
        let submitting = now < duration;
        for (slot, ok) in done.drain(..) {
            ios += 1;
            errors += u64::from(!ok);
            latency_sum += now - submitted_at[slot as usize];
            if submitting {
                let buffer = buffers[slot as usize]
                    .take()
                    .expect("a reaped slot has its buffer");
                submitted_at[slot as usize] = now;
                if let Err(r) = qp.submit_read(ns, lba_of(ns, rng.below(units)), buffer, slot) {
                    errors += 1;
                    buffers[slot as usize] = r.buffer;
                }
            }
        }
        qp.commit()?;
    }
    let stats = qp.stats();
    Ok(Measured {
        ios,
        errors,
        seconds: now.as_secs_f64(),
        lat_mean_ns: latency_sum.as_nanos() as f64 / ios.max(1) as f64,
        doorbell_writes: stats.doorbell_writes,
        doorbell_writes_elided: stats.doorbell_writes_elided,
    })
}

/// What the async tasks of one run share.
struct AsyncRun<F: PciFunction> {
    qp: AsyncQueuePair<F>,
    ns: Namespace,
    start: Instant,
    duration: Duration,
    rng: Cell<Rng>,
    ios: Cell<u64>,
    errors: Cell<u64>,
    latency_ns: Cell<u128>,
    last: Cell<Duration>,
}

async fn async_slot<F: PciFunction>(run: Rc<AsyncRun<F>>, mut buffer: DmaBuffer) {
    let units = units(&run.ns);
    loop {
        let submitted = run.start.elapsed();
        if submitted >= run.duration {
            return;
        }
        let mut rng = run.rng.get();
        let unit = rng.below(units);
        run.rng.set(rng);
        let result = run
            .qp
            .read(&run.ns, lba_of(&run.ns, unit), &mut buffer)
            .await;
        let now = run.start.elapsed();
        run.ios.set(run.ios.get() + 1);
        run.errors
            .set(run.errors.get() + u64::from(result.is_err()));
        run.latency_ns
            .set(run.latency_ns.get() + (now - submitted).as_nanos());
        run.last.set(run.last.get().max(now));
    }
}

/// Async API: `qd` tasks on a busy-polling reactor pinned to `core`.
pub fn async_api<F: PciFunction>(
    ctrl: &Controller<F>,
    ns: &Namespace,
    qd: usize,
    duration: Duration,
    seed: u64,
    core: usize,
) -> Result<Measured, Failure> {
    let reactor = Reactor::pinned(
        core,
        ReactorConfig {
            idle: IdlePolicy::BusyPoll,
            ..ReactorConfig::default()
        },
    )?;
    let outcome = reactor.block_on(async {
        let qp = ctrl.create_async_qpair(QpairOptions {
            entries: (qd + 1) as u16,
            ..QpairOptions::default()
        })?;
        let space = ctrl.function().dma_space();
        let buffers = (0..qd)
            .map(|_| space.allocate_buffer(BLOCK_BYTES, DmaDirection::Bidirectional))
            .collect::<Result<Vec<_>, _>>()?;
        let run = Rc::new(AsyncRun {
            qp,
            ns: ns.clone(),
            start: Instant::now(),
            duration,
            rng: Cell::new(Rng::new(seed)),
            ios: Cell::new(0),
            errors: Cell::new(0),
            latency_ns: Cell::new(0),
            last: Cell::new(Duration::ZERO),
        });
        let tasks: Vec<_> = buffers
            .into_iter()
            .map(|buffer| spawn_local(async_slot(Rc::clone(&run), buffer)))
            .collect();
        for task in tasks {
            task.await;
        }
        let ios = run.ios.get();
        let stats = run.qp.stats();
        Ok::<_, Failure>(Measured {
            ios,
            errors: run.errors.get(),
            seconds: run.last.get().as_secs_f64(),
            lat_mean_ns: run.latency_ns.get() as f64 / ios.max(1) as f64,
            doorbell_writes: stats.doorbell_writes,
            doorbell_writes_elided: stats.doorbell_writes_elided,
        })
    })?;
    outcome
}

/// Pins the calling thread (the raw API's loop) to `core`.
pub fn pin(core: usize) -> Result<(), Failure> {
    affinity::pin_current_thread(core)?;
    Ok(())
}

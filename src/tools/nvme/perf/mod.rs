//! `nvme_perf`: a load generator in the manner of SPDK's `perf`.
//!
//! One worker thread per core, pinned to it, with its own I/O queue pair. Each worker keeps
//! `--qd` I/Os of `--bs` bytes in flight for `--seconds`, then lets them drain, and reports
//! IOPS, MB/s and latency percentiles (HdrHistogram, ns); the totals add the cores up.
//!
//! - **raw API** (default): `IoQueuePair::submit_read` / `submit_write` with the slot index as
//!   the token and a preallocated `DmaBuffer` per slot, moved in and handed back by the
//!   completion; `process_completions` in a loop. Nothing allocates per I/O.
//! - **async API** (`--async`): a framework [`Reactor`] per core (busy polling, as SPDK's
//!   reactors), one task per slot awaiting `AsyncQueuePair::read` / `write` on its own buffer.
//!
//! Timing: one clock read per batch of completions, right after they were reaped; it ends the
//! latency of each I/O in the batch and starts the latency of the I/Os submitted in their
//! place (the async API reads it in a poller that runs after the queue pair's).
//!
//! Workloads: `randread` / `randwrite` pick a uniformly random `bs`-aligned offset (xorshift,
//! seeded with `--seed` and the core); `read` / `write` go through the namespace in order, each
//! core from its own start. `verify` gives every slot of every core its own stretch of the
//! namespace; a slot writes a pattern derived from (LBA, pass) there, reads it back into the
//! same buffer (overwritten first with the pattern's complement, so a read that moves no data
//! cannot pass), compares, and moves on; a mismatch counts as an error. Writes and reads both
//! count as I/Os.
//!
//! On the simulated backend with `--model-latency-ns`, commands complete in the bus's virtual
//! time: a worker that finds nothing to do advances the clock to the model's next timer. Rates
//! and latencies are still measured in the host's time (the CPU cost of the run); the report
//! also gives the virtual time that passed.

mod args;
mod pattern;
mod plan;
mod raw;
mod reactor;
mod report;
mod stats;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};

use crate::framework::backend::sim::SimClock;
use crate::framework::device::PciFunction;
use crate::framework::time::Clock;
use crate::nvme::{Controller, ControllerOptions, Namespace};

use super::device::{invalid, Opened, Result, ToolError};
use args::check_args;
use plan::{make_plan, Plan};
use raw::{run_raw, setup_raw};
use reactor::run_async;
use report::summarise;
use stats::{progress_while_running, CoreStats};

pub use args::{parse_cpu_list, PerfArgs, Workload};
pub use report::{CoreReport, PerfReport};

fn worker<F: PciFunction>(
    ctrl: &Controller<F>,
    ns: &Namespace,
    plan: &Plan,
    index: usize,
    virtual_clock: Option<Arc<SimClock>>,
    start_line: &Barrier,
    abort: &AtomicBool,
) -> Result<Option<CoreStats>> {
    if plan.use_async {
        return run_async(ctrl, ns, plan, index, virtual_clock, start_line, abort);
    }
    let setup = setup_raw(ctrl, plan, index);
    if setup.is_err() {
        abort.store(true, Ordering::SeqCst);
    }
    start_line.wait();
    let worker = setup?;
    if abort.load(Ordering::SeqCst) {
        return Ok(None);
    }
    Ok(Some(run_raw(
        worker,
        ns,
        plan,
        index,
        virtual_clock.as_deref(),
    )))
}

fn panic_message(panic: Box<dyn std::any::Any + Send>) -> String {
    match panic.downcast::<String>() {
        Ok(text) => *text,
        Err(panic) => match panic.downcast::<&'static str>() {
            Ok(text) => (*text).to_string(),
            Err(_) => "(no message)".into(),
        },
    }
}

fn run_on<F: PciFunction>(
    args: &PerfArgs,
    ctrl: &Controller<F>,
    cpus: Vec<usize>,
    backend: &'static str,
    virtual_clock: Option<Arc<SimClock>>,
    progress: &mut dyn FnMut(&str),
) -> Result<PerfReport> {
    let ns = match args.nsid {
        Some(nsid) => ctrl.namespace(nsid).map_err(|_| {
            let usable: Vec<String> = ctrl
                .namespaces()
                .iter()
                .map(|n| n.nsid().to_string())
                .collect();
            invalid(
                "--nsid",
                nsid,
                format!("a usable namespace ({})", usable.join(", ")),
            )
        })?,
        None => &ctrl.namespaces()[0],
    }
    .clone();
    let plan = make_plan(args, ctrl, &ns, cpus)?;
    let start_line = Barrier::new(plan.cpus.len());
    let abort = AtomicBool::new(false);
    let results: Vec<Result<Option<CoreStats>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..plan.cpus.len())
            .map(|index| {
                let (ns, plan, start_line, abort) = (&ns, &plan, &start_line, &abort);
                let clock = virtual_clock.clone();
                std::thread::Builder::new()
                    .name(format!("perf-core{}", plan.cpus[index]))
                    .spawn_scoped(scope, move || {
                        worker(ctrl, ns, plan, index, clock, start_line, abort)
                    })
            })
            .collect();
        let running = || {
            handles
                .iter()
                .any(|h| h.as_ref().is_ok_and(|h| !h.is_finished()))
        };
        progress_while_running(&running, plan.bs as u64, progress);
        handles
            .into_iter()
            .enumerate()
            .map(|(index, handle)| match handle {
                Ok(handle) => handle.join().unwrap_or_else(|panic| {
                    Err(ToolError::WorkerPanicked {
                        core: plan.cpus[index],
                        message: panic_message(panic),
                    })
                }),
                Err(source) => Err(crate::framework::Error::Runtime {
                    op: "spawn a worker thread",
                    source,
                }
                .into()),
            })
            .collect()
    });
    let mut cores = Vec::with_capacity(results.len());
    let mut first_error = None;
    for result in results {
        match result {
            Ok(Some(stats)) => cores.push(stats),
            Ok(None) => {}
            Err(err) => {
                first_error.get_or_insert(err);
            }
        }
    }
    if let Some(err) = first_error {
        return Err(err);
    }
    Ok(summarise(args, &plan, &ns, ctrl, backend, cores))
}

/// How `nvme_perf` brings the controller up: one I/O queue pair per core, polled (no MSI-X;
/// the workers never sleep), shadow doorbells when offered.
pub fn controller_options(cores: usize) -> ControllerOptions {
    ControllerOptions {
        io_queues: cores.clamp(1, usize::from(u16::MAX - 1)) as u16,
        interrupts: false,
        ..ControllerOptions::default()
    }
}

pub use crate::tools::run::{request_stop, stop_requested};

pub fn run(args: &PerfArgs) -> Result<PerfReport> {
    run_with_progress(args, &mut |_| {})
}

/// [`run`], calling `progress` with a line once a second while the workers run.
pub fn run_with_progress(args: &PerfArgs, progress: &mut dyn FnMut(&str)) -> Result<PerfReport> {
    let cpus = check_args(args)?;
    let options = controller_options(cpus.len());
    let opened = args.device.open()?;
    let backend = opened.backend();
    match opened {
        Opened::Sim { bus, function } => {
            let ctrl = Controller::new(function, options)?;
            let delayed = args.device.model_latency_ns.unwrap_or(0) > 0;
            let clock = Arc::clone(bus.clock());
            let start = clock.now();
            let mut report = run_on(
                args,
                &ctrl,
                cpus,
                backend,
                delayed.then(|| Arc::clone(&clock)),
                progress,
            )?;
            let virtual_time = clock.now() - start;
            report.virtual_ns = Some(virtual_time.as_nanos() as u64);
            report.virtual_iops =
                (!virtual_time.is_zero()).then(|| report.ios as f64 / virtual_time.as_secs_f64());
            Ok(report)
        }
        Opened::Vfio(function) => {
            let ctrl = Controller::new(*function, options)?;
            run_on(args, &ctrl, cpus, backend, None, progress)
        }
    }
}

/// `userpci nvme perf` (and the `nvme_perf` example): Ctrl-C stops submitting, lets the I/Os
/// in flight drain and prints the partial report.
pub fn main(args: &PerfArgs) -> std::process::ExitCode {
    crate::tools::run::tool_main("nvme perf", args.json, |progress| {
        run_with_progress(args, progress)
    })
}

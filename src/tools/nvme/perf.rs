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

use std::cell::{Cell, RefCell};
use std::fmt::Write as _;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use crate::framework::backend::sim::SimClock;
use crate::framework::device::PciFunction;
use crate::framework::dma::{DmaBuffer, DmaDirection};
use crate::framework::runtime::affinity;
use crate::framework::runtime::{
    add_poller, remove_poller, spawn_local, IdlePolicy, Reactor, ReactorConfig,
};
use crate::framework::time::Clock;
use crate::nvme::{
    Controller, ControllerOptions, Error as NvmeError, Namespace, QpairOptions, Rejected,
};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::device::{invalid, DeviceArgs, Opened, Result, ToolError};

/// Highest latency the histograms track: one minute.
const MAX_LATENCY_NS: u64 = 60_000_000_000;
/// Longest run accepted.
const MAX_SECONDS: f64 = 86_400.0;

/// What the I/Os do.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Reads at random `bs`-aligned offsets.
    Randread,
    /// Writes at random `bs`-aligned offsets.
    Randwrite,
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Write a pattern, read it back, compare (a mismatch is an error).
    Verify,
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Workload::Randread => "randread",
            Workload::Randwrite => "randwrite",
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::Verify => "verify",
        }
    }

    fn writes(self) -> bool {
        matches!(self, Workload::Randwrite | Workload::Write)
    }
}

/// Command line of `nvme_perf`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nvme_perf",
    about = "NVMe load generator in the manner of SPDK perf (the simulated model by default)"
)]
pub struct PerfArgs {
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Randread)]
    pub rw: Workload,
    /// Bytes per I/O: a multiple of the namespace's block size (larger than MDTS allows per
    /// command is split, as long as the queue holds QD of them).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub bs: u64,
    /// I/Os in flight per core.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub qd: u32,
    /// How long to submit I/O, in seconds (the I/Os in flight then drain).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub seconds: f64,
    /// Number of cores: the first N CPUs this process may run on [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "cpus")]
    pub cores: Option<usize>,
    /// The CPUs to run on, as the kernel lists them (0-3,8).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Use the async API on a reactor per core instead of the raw polled API.
    #[arg(long = "async")]
    pub use_async: bool,
    /// The namespace [default: the first usable one].
    #[arg(long, value_name = "NSID")]
    pub nsid: Option<u32>,
    /// Seed of the random offsets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// One core's results.
#[derive(Serialize, Debug, Clone)]
pub struct CoreReport {
    pub core: usize,
    pub qid: u16,
    pub ios: u64,
    pub errors: u64,
    /// Verify reads whose data differed (also counted in `errors`).
    pub mismatches: u64,
    pub seconds: f64,
    pub iops: f64,
    #[serde(rename = "mbytes_per_s")]
    pub mbps: f64,
    pub lat_mean_ns: f64,
    pub lat_min_ns: u64,
    pub lat_p50_ns: u64,
    pub lat_p99_ns: u64,
    pub lat_p999_ns: u64,
    pub lat_max_ns: u64,
}

/// The whole run.
#[derive(Serialize, Debug, Clone)]
pub struct PerfReport {
    /// [`crate::tools::run::SCHEMA_VERSION`].
    pub schema: u32,
    /// Ctrl-C ended the run early: the figures cover the part that ran.
    pub interrupted: bool,
    /// `"sim"` (the controller model) or `"vfio"`.
    pub backend: &'static str,
    pub device: String,
    pub nsid: u32,
    pub block_size: u32,
    pub rw: Workload,
    pub bs: u64,
    pub qd: u32,
    pub cores: usize,
    pub cpus: Vec<usize>,
    /// `"raw"` or `"async"`.
    pub api: &'static str,
    /// Longest core's run, submission start to last completion.
    pub seconds: f64,
    pub ios: u64,
    pub errors: u64,
    pub mismatches: u64,
    /// Sum over the cores.
    pub iops: f64,
    /// Megabytes (10^6 bytes) per second, summed over the cores.
    #[serde(rename = "mbytes_per_s")]
    pub mbps: f64,
    pub lat_mean_ns: f64,
    pub lat_min_ns: u64,
    pub lat_p50_ns: u64,
    pub lat_p99_ns: u64,
    pub lat_p999_ns: u64,
    pub lat_max_ns: u64,
    pub per_core: Vec<CoreReport>,
    /// The model's latency, when simulated.
    pub model_latency_ns: Option<u64>,
    /// Virtual time that passed on the simulated bus's clock.
    pub virtual_ns: Option<u64>,
    /// I/Os per second of virtual time, when virtual time passed (a delayed model): about
    /// `qd * cores / model_latency` when the host keeps up.
    pub virtual_iops: Option<f64>,
}

/// Everything a worker needs to know, checked.
#[derive(Clone, Debug)]
struct Plan {
    rw: Workload,
    bs: usize,
    /// `bs` in logical blocks.
    bs_blocks: u64,
    qd: usize,
    /// Queue entries: `qd` times the commands per I/O, plus one.
    entries: u16,
    /// `bs`-sized positions in the namespace.
    units: u64,
    cpus: Vec<usize>,
    duration: Duration,
    seed: u64,
    use_async: bool,
}

/// A worker's counters.
struct CoreStats {
    core: usize,
    qid: u16,
    ios: u64,
    errors: u64,
    mismatches: u64,
    elapsed: Duration,
    histogram: Histogram<u64>,
}

impl CoreStats {
    fn new(core: usize) -> Self {
        CoreStats {
            core,
            qid: 0,
            ios: 0,
            errors: 0,
            mismatches: 0,
            elapsed: Duration::ZERO,
            histogram: new_histogram(),
        }
    }

    fn record(&mut self, latency_ns: u64) {
        self.ios += 1;
        // The progress line's count, shared by the cores: one atomic add per batch of I/Os
        // keeps the cache line quiet.
        if self.ios.is_multiple_of(PROGRESS_BATCH) {
            PROGRESS_IOS.fetch_add(PROGRESS_BATCH, Ordering::Relaxed);
        }
        self.histogram.saturating_record(latency_ns);
    }
}

/// I/Os completed by all cores so far, in steps of [`PROGRESS_BATCH`], for the progress line.
static PROGRESS_IOS: AtomicU64 = AtomicU64::new(0);
const PROGRESS_BATCH: u64 = 1024;

/// Waits for the workers, printing a progress line once a second meanwhile.
fn progress_while_running(running: &dyn Fn() -> bool, bs: u64, progress: &mut dyn FnMut(&str)) {
    let start = Instant::now();
    let mut last = (start, PROGRESS_IOS.load(Ordering::Relaxed));
    while running() {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        let since = now.duration_since(last.0);
        if since >= Duration::from_secs(1) {
            let ios = PROGRESS_IOS.load(Ordering::Relaxed);
            let iops = (ios - last.1) as f64 / since.as_secs_f64();
            progress(&format!(
                "{:>6.1} s  {:>12.0} IOPS  {:>10.1} MB/s",
                now.duration_since(start).as_secs_f64(),
                iops,
                iops * bs as f64 / 1e6
            ));
            last = (now, ios);
        }
    }
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant histogram bounds are valid")
}

// ---- argument checks ----

/// Parses a CPU list as the kernel writes it (`0-3,8,10-11`).
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>> {
    let bad = || invalid("--cpus", text, "a CPU list such as 0, 0-3 or 0,2-3");
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| bad())?;
        let last: usize = last.parse().map_err(|_| bad())?;
        if first > last || last - first > 4096 {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    let before = cpus.len();
    cpus.dedup();
    if cpus.len() != before {
        return Err(invalid("--cpus", text, "each CPU at most once"));
    }
    Ok(cpus)
}

/// The CPUs to run on, each checked against this process's affinity mask.
fn resolve_cpus(args: &PerfArgs) -> Result<Vec<usize>> {
    let allowed = affinity::allowed_cpus()?;
    let allowed_text = affinity::format_cpu_list(&allowed);
    match (&args.cpus, args.cores) {
        (Some(list), _) => {
            let cpus = parse_cpu_list(list)?;
            for &cpu in &cpus {
                if !allowed.contains(&cpu) {
                    return Err(invalid(
                        "--cpus",
                        list,
                        format!(
                            "CPUs this process may run on ({allowed_text}); CPU {cpu} is not one"
                        ),
                    ));
                }
            }
            Ok(cpus)
        }
        (None, cores) => {
            let cores = cores.unwrap_or(1);
            if cores == 0 || cores > allowed.len() {
                return Err(invalid(
                    "--cores",
                    cores,
                    format!(
                        "1..={} (this process may run on CPUs {allowed_text})",
                        allowed.len()
                    ),
                ));
            }
            Ok(allowed[..cores].to_vec())
        }
    }
}

/// Checks what can be checked before the device is opened.
fn check_args(args: &PerfArgs) -> Result<Vec<usize>> {
    if !args.seconds.is_finite() || args.seconds <= 0.0 || args.seconds > MAX_SECONDS {
        return Err(invalid(
            "--seconds",
            args.seconds,
            format!("a number of seconds above 0, at most {MAX_SECONDS}"),
        ));
    }
    if args.qd == 0 {
        return Err(invalid("--qd", args.qd, "at least 1"));
    }
    if args.bs == 0 {
        return Err(invalid(
            "--bs",
            args.bs,
            "a positive multiple of the block size",
        ));
    }
    resolve_cpus(args)
}

/// Checks the arguments against the controller and namespace; returns the plan.
fn make_plan<F: PciFunction>(
    args: &PerfArgs,
    ctrl: &Controller<F>,
    ns: &Namespace,
    cpus: Vec<usize>,
) -> Result<Plan> {
    let block = u64::from(ns.block_size());
    if !args.bs.is_multiple_of(block) {
        return Err(invalid(
            "--bs",
            args.bs,
            format!(
                "a multiple of namespace {}'s block size, {block} bytes",
                ns.nsid()
            ),
        ));
    }
    if args.bs > ns.size_bytes() {
        return Err(invalid(
            "--bs",
            args.bs,
            format!("at most the namespace's size, {} bytes", ns.size_bytes()),
        ));
    }
    let bs_blocks = args.bs / block;
    let per_command = ns.max_blocks_per_command();
    let commands = bs_blocks.div_ceil(per_command);
    let max_entries = u64::from(ctrl.info().cap.max_queue_entries().min(u32::from(u16::MAX)));
    let max_commands = max_entries - 1;
    if commands > max_commands {
        return Err(invalid(
            "--bs",
            args.bs,
            format!(
                "at most {} bytes: an I/O is split into commands of at most {} bytes (MDTS), \
                 and a queue holds {max_commands} commands",
                max_commands * per_command * block,
                per_command * block
            ),
        ));
    }
    let qd = u64::from(args.qd);
    if qd * commands > max_commands {
        let split = if commands == 1 {
            String::new()
        } else {
            format!(", {commands} commands per {}-byte I/O", args.bs)
        };
        return Err(invalid(
            "--qd",
            args.qd,
            format!(
                "1..={} (a queue holds {max_commands} commands, CAP.MQES{split})",
                max_commands / commands
            ),
        ));
    }
    let granted = usize::from(ctrl.info().io_queues);
    if cpus.len() > granted {
        let (name, value) = match &args.cpus {
            Some(list) => ("--cpus", list.clone()),
            None => ("--cores", cpus.len().to_string()),
        };
        return Err(invalid(
            name,
            value,
            format!("at most {granted} cores: the controller grants {granted} I/O queue pairs"),
        ));
    }
    let units = ns.blocks() / bs_blocks;
    if args.rw == Workload::Verify {
        let slots = qd * cpus.len() as u64;
        if units < slots {
            return Err(invalid(
                "--qd",
                args.qd,
                format!(
                    "at most {} with {} core(s) for verify: each slot needs its own {}-byte \
                     stretch of the namespace, which holds {units}",
                    units / cpus.len() as u64,
                    cpus.len(),
                    args.bs
                ),
            ));
        }
    }
    Ok(Plan {
        rw: args.rw,
        bs: args.bs as usize,
        bs_blocks,
        qd: args.qd as usize,
        entries: (qd * commands + 1) as u16,
        units,
        cpus,
        duration: Duration::from_secs_f64(args.seconds),
        seed: args.seed,
        use_async: args.use_async,
    })
}

// ---- offsets and patterns ----

fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// xorshift64*: random offsets without a dependency.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64, core: usize) -> Self {
        XorShift(splitmix64(seed ^ (core as u64).wrapping_mul(0x1000_0001)) | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (multiply-shift, no division).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

/// Where the next I/O of a core goes, for the random and sequential workloads.
struct Picker {
    random: bool,
    rng: XorShift,
    units: u64,
    next: u64,
}

impl Picker {
    fn new(plan: &Plan, index: usize) -> Self {
        let core = plan.cpus[index];
        Picker {
            random: matches!(plan.rw, Workload::Randread | Workload::Randwrite),
            rng: XorShift::new(plan.seed, core),
            units: plan.units,
            next: plan.units / plan.cpus.len() as u64 * index as u64,
        }
    }

    /// The next position, in `bs` units.
    fn unit(&mut self) -> u64 {
        if self.random {
            self.rng.below(self.units)
        } else {
            let unit = self.next;
            self.next = if unit + 1 >= self.units { 0 } else { unit + 1 };
            unit
        }
    }
}

/// A verify slot's own stretch of the namespace and where it is in it.
#[derive(Clone, Copy, Debug)]
struct VerifySlot {
    base: u64,
    len: u64,
    offset: u64,
    pass: u64,
    /// The write of the current position completed; the read-back is next or in flight.
    reading: bool,
}

impl VerifySlot {
    /// Slot `slot` of worker `index`.
    fn new(plan: &Plan, index: usize, slot: usize) -> Self {
        let slots = (plan.cpus.len() * plan.qd) as u64;
        let len = plan.units / slots;
        VerifySlot {
            base: (index * plan.qd + slot) as u64 * len,
            len,
            offset: 0,
            pass: 0,
            reading: false,
        }
    }

    fn unit(&self) -> u64 {
        self.base + self.offset
    }

    fn advance(&mut self) {
        self.reading = false;
        self.offset += 1;
        if self.offset == self.len {
            self.offset = 0;
            self.pass += 1;
        }
    }
}

fn pattern_word(lba: u64, pass: u64, word: usize) -> u64 {
    splitmix64(lba.wrapping_mul(0x0100_0000_01b3) ^ pass.rotate_left(40) ^ word as u64)
}

/// Fills `bytes` with the pattern of (`lba`, `pass`), or its complement.
fn fill_pattern(bytes: &mut [u8], lba: u64, pass: u64, complement: bool) {
    let flip = if complement { u64::MAX } else { 0 };
    for (i, chunk) in bytes.chunks_exact_mut(8).enumerate() {
        chunk.copy_from_slice(&(pattern_word(lba, pass, i) ^ flip).to_le_bytes());
    }
}

/// Whether `bytes` hold the pattern of (`lba`, `pass`).
fn check_pattern(bytes: &[u8], lba: u64, pass: u64) -> bool {
    bytes
        .chunks_exact(8)
        .enumerate()
        .all(|(i, chunk)| chunk == pattern_word(lba, pass, i).to_le_bytes())
}

/// Advances the simulated clock to the model's next timer (a delayed command completing).
fn advance_virtual_time(clock: &SimClock) {
    if let Some(next) = clock.next_timer() {
        clock.advance_to(next);
    }
}

// ---- the raw API ----

/// What a raw worker keeps per slot.
struct RawSlot {
    buffer: Option<DmaBuffer>,
    unit: u64,
    submitted_ns: u64,
    verify: Option<VerifySlot>,
}

/// Submits slot `index`'s next I/O; on a refusal the buffer goes back to the slot.
fn submit_raw<F: PciFunction>(
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
struct RawWorker<F: PciFunction> {
    qp: crate::nvme::IoQueuePair<F, u32, DmaBuffer>,
    slots: Vec<RawSlot>,
    /// Slots whose I/O completed in the last poll, and whether it succeeded.
    completed: Vec<(u32, bool)>,
}

fn setup_raw<F: PciFunction>(
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

fn run_raw<F: PciFunction>(
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

// ---- the async API ----

/// What the tasks of one async worker share.
struct AsyncCore<F: PciFunction> {
    qp: crate::nvme::AsyncQueuePair<F>,
    ns: Namespace,
    plan: Plan,
    picker: RefCell<Picker>,
    /// Host time (ns since the start) when the queue pair's poller last reaped.
    now: Cell<u64>,
    stats: RefCell<CoreStats>,
}

/// One async slot: a task that runs I/O on its own buffer until the deadline.
async fn async_slot<F: PciFunction>(
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

fn run_async<F: PciFunction>(
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

// ---- orchestration ----

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

fn latency_fields(h: &Histogram<u64>) -> (f64, u64, u64, u64, u64, u64) {
    if h.is_empty() {
        return (0.0, 0, 0, 0, 0, 0);
    }
    (
        h.mean(),
        h.min(),
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max(),
    )
}

fn summarise<F: PciFunction>(
    args: &PerfArgs,
    plan: &Plan,
    ns: &Namespace,
    ctrl: &Controller<F>,
    backend: &'static str,
    cores: Vec<CoreStats>,
) -> PerfReport {
    let mut total = new_histogram();
    let mut per_core = Vec::with_capacity(cores.len());
    for c in &cores {
        total
            .add(&c.histogram)
            .expect("the histograms share their bounds");
        let seconds = c.elapsed.as_secs_f64();
        let iops = c.ios as f64 / seconds;
        let (mean, min, p50, p99, p999, max) = latency_fields(&c.histogram);
        per_core.push(CoreReport {
            core: c.core,
            qid: c.qid,
            ios: c.ios,
            errors: c.errors,
            mismatches: c.mismatches,
            seconds,
            iops,
            mbps: iops * plan.bs as f64 / 1e6,
            lat_mean_ns: mean,
            lat_min_ns: min,
            lat_p50_ns: p50,
            lat_p99_ns: p99,
            lat_p999_ns: p999,
            lat_max_ns: max,
        });
    }
    let (mean, min, p50, p99, p999, max) = latency_fields(&total);
    let iops: f64 = per_core.iter().map(|c| c.iops).sum();
    PerfReport {
        schema: crate::tools::run::SCHEMA_VERSION,
        interrupted: crate::tools::run::stop_requested(),
        backend,
        device: ctrl.device().to_string(),
        nsid: ns.nsid(),
        block_size: ns.block_size(),
        rw: plan.rw,
        bs: args.bs,
        qd: args.qd,
        cores: plan.cpus.len(),
        cpus: plan.cpus.clone(),
        api: if plan.use_async { "async" } else { "raw" },
        seconds: per_core.iter().map(|c| c.seconds).fold(0.0, f64::max),
        ios: per_core.iter().map(|c| c.ios).sum(),
        errors: per_core.iter().map(|c| c.errors).sum(),
        mismatches: per_core.iter().map(|c| c.mismatches).sum(),
        iops,
        mbps: iops * plan.bs as f64 / 1e6,
        lat_mean_ns: mean,
        lat_min_ns: min,
        lat_p50_ns: p50,
        lat_p99_ns: p99,
        lat_p999_ns: p999,
        lat_max_ns: max,
        per_core,
        model_latency_ns: (backend == "sim").then(|| args.device.model_latency_ns.unwrap_or(0)),
        virtual_ns: None,
        virtual_iops: None,
    }
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

impl PerfReport {
    /// The report as one JSON object.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("the report serialises")
    }

    /// The report as a table, one line per core and a total.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let what = match self.backend {
            "sim" => match self.model_latency_ns {
                Some(ns) if ns > 0 => {
                    format!("simulated NVMe controller model, {ns} ns per command in virtual time")
                }
                _ => "simulated NVMe controller model, instant".to_string(),
            },
            _ => "vfio-pci".to_string(),
        };
        let _ = writeln!(
            out,
            "Device {} ({what}), namespace {} ({}-byte blocks)",
            self.device, self.nsid, self.block_size
        );
        let _ = writeln!(
            out,
            "{} {} bytes, QD {}, {} core(s), {} API, {:.2} s",
            self.rw.name(),
            self.bs,
            self.qd,
            self.cores,
            self.api,
            self.seconds
        );
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>12} {:>10} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "core", "qid", "IOPS", "MB/s", "p50 ns", "p99 ns", "p99.9 ns", "I/Os", "errors"
        );
        for c in &self.per_core {
            let _ = writeln!(
                out,
                "{:<8} {:>5} {:>12.0} {:>10.1} {:>10} {:>10} {:>10} {:>12} {:>8}",
                c.core,
                c.qid,
                c.iops,
                c.mbps,
                c.lat_p50_ns,
                c.lat_p99_ns,
                c.lat_p999_ns,
                c.ios,
                c.errors
            );
        }
        let _ = writeln!(
            out,
            "{:<8} {:>5} {:>12.0} {:>10.1} {:>10} {:>10} {:>10} {:>12} {:>8}",
            "total",
            "",
            self.iops,
            self.mbps,
            self.lat_p50_ns,
            self.lat_p99_ns,
            self.lat_p999_ns,
            self.ios,
            self.errors
        );
        let _ = writeln!(
            out,
            "latency ns: min {} mean {:.0} max {}",
            self.lat_min_ns, self.lat_mean_ns, self.lat_max_ns
        );
        if self.rw == Workload::Verify {
            let _ = writeln!(out, "verify: {} mismatching read(s)", self.mismatches);
        }
        if let (Some(ns), Some(iops)) = (self.virtual_ns, self.virtual_iops) {
            let _ = writeln!(
                out,
                "virtual time on the simulated bus: {:.6} s, {iops:.0} IOPS in virtual time",
                ns as f64 / 1e9
            );
        }
        out
    }
}

impl crate::tools::run::ToolReport for PerfReport {
    fn to_text(&self) -> String {
        PerfReport::to_text(self)
    }
    fn to_json(&self) -> String {
        PerfReport::to_json(self)
    }
    fn failure(&self) -> Option<String> {
        (self.errors > 0).then(|| format!("{} I/O error(s)", self.errors))
    }
}

/// `userpci nvme perf` (and the `nvme_perf` example): Ctrl-C stops submitting, lets the I/Os
/// in flight drain and prints the partial report.
pub fn main(args: &PerfArgs) -> std::process::ExitCode {
    crate::tools::run::tool_main("nvme perf", args.json, |progress| {
        run_with_progress(args, progress)
    })
}

//! CPU cost of the NVMe driver's data path, on the controller model in instant mode (every
//! command executes inside the doorbell write that announces it, so no time is spent waiting
//! for a device and the loop is pure CPU): 4 KiB reads, side by side in one run,
//!
//! - `raw`: [`IoQueuePair`] with a preallocated `DmaBuffer` per slot: submit every free slot,
//!   `process_completions` (which rings the SQ doorbell, reaps, rings the CQ doorbell);
//! - `async`: [`AsyncQueuePair`] on a busy-polling [`Reactor`], one task per slot looping on
//!   `read(..).await`; the reactor is turned with `run_once`;
//! - `model_only`: the same commands (same LBAs, buffers, batch sizes and doorbell writes) fed
//!   to the same model through a minimal hand-built queue pair: write the entries, ring the SQ
//!   tail, read the completions by phase tag, ring the CQ head. This is the model's time (bus
//!   dispatch, IOMMU translation, command execution, the 4 KiB copy, posting) plus the least a
//!   host can do; `raw − model_only` is what the driver costs above that minimum. So that the
//!   model does the same work in both, the same blocks are written first and the IOMMU holds
//!   as many mappings as in the driver's run (its translation is a B-tree lookup).
//!
//! at QD 1 (submit and complete one I/O at a time), QD 32 and QD 128. Each iteration is 1024
//! I/Os (`Throughput::Elements`), so time per I/O is the iteration time / 1024.
//!
//! The controller runs polled (no MSI-X, so the model signals no eventfd) without shadow
//! doorbells (the model's default), 4096-byte blocks; the reads cycle over 1 MiB written at
//! setup.
//!
//! `cargo bench --bench nvme` (`-- --quick` for a short run). For instruction counts, run one
//! workload without criterion under callgrind, counting only inside the measured loop:
//!
//! ```text
//! NVME_BENCH_PROFILE=raw:32:200 valgrind --tool=callgrind --toggle-collect='*profile_region*' \
//!     target/release/deps/nvme-<hash>
//! ```
//!
//! (`raw`, `async` or `model_only`, the queue depth, and the number of 1024-I/O batches.)

use std::cell::Cell;
use std::hint::black_box;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput};
use userpci::framework::backend::sim::topology::TopologyBuilder;
use userpci::framework::backend::sim::{ModelRegistry, SimBar, SimBus, SimFunction};
use userpci::framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci::framework::dma::{DmaArray, DmaBuffer, DmaDirection};
use userpci::framework::runtime::{IdlePolicy, Reactor, ReactorConfig};
use userpci::framework::time::Clock;
use userpci::nvme::model;
use userpci::nvme::spec::queue::{IOCQES, IOSQES};
use userpci::nvme::spec::registers::{
    self as regs, cq_head_doorbell, sq_tail_doorbell, Aqa, Cap, Cc, Csts,
};
use userpci::nvme::spec::{CompletionEntry, SubmissionEntry};
use userpci::nvme::{
    AsyncQueuePair, Controller, ControllerOptions, IoQueuePair, Namespace, QpairOptions,
};

/// I/Os per measured iteration.
const BATCH: u64 = 1024;
/// Bytes per I/O and per block.
const IO: usize = 4096;
/// The reads cycle over this many blocks (1 MiB), written at setup.
const SPAN: u64 = 256;
const DEPTHS: [usize; 3] = [1, 32, 128];
const ADDRESS: &str = "01:00.0";

fn bus() -> Arc<SimBus> {
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDRESS, model::MODEL_NAME)
        .params(
            "lba_size = 4096\nblocks = 65536"
                .parse()
                .expect("model parameters"),
        )
        .build()
        .expect("topology");
    SimBus::new(topology, &registry).expect("bus")
}

fn open(bus: &Arc<SimBus>) -> SimFunction {
    bus.open(ADDRESS.parse().expect("address")).expect("open")
}

/// A controller on a fresh bus, polled, with `SPAN` blocks written.
fn controller() -> (Arc<SimBus>, Controller<SimFunction>, Namespace) {
    let bus = bus();
    let options = ControllerOptions {
        interrupts: false,
        ..ControllerOptions::default()
    };
    let ctrl = Controller::new(open(&bus), options).expect("bring-up");
    let ns = ctrl.namespaces()[0].clone();
    let mut qp: IoQueuePair<SimFunction, u64, DmaBuffer> = ctrl
        .create_io_qpair(QpairOptions::default())
        .expect("qpair");
    let space = ctrl.function().dma_space();
    let mut data = space
        .allocate_buffer(SPAN as usize * IO, DmaDirection::Bidirectional)
        .expect("buffer");
    for (i, b) in data.as_mut_slice().iter_mut().enumerate() {
        *b = (i * 7 + i / 4096) as u8;
    }
    qp.submit_write(&ns, 0, data, 0).expect("write");
    let mut done = false;
    while !done {
        qp.process_completions(0, &mut |c| {
            c.result.expect("setup write");
            done = true;
        });
    }
    drop(qp);
    (bus, ctrl, ns)
}

fn buffers(ctrl: &Controller<SimFunction>, count: usize) -> Vec<DmaBuffer> {
    (0..count)
        .map(|_| {
            ctrl.function()
                .dma_space()
                .allocate_buffer(IO, DmaDirection::Bidirectional)
                .expect("buffer")
        })
        .collect()
}

// ---- raw API ----

struct RawLoad {
    qp: IoQueuePair<SimFunction, u16, DmaBuffer>,
    ns: Namespace,
    ready: Vec<(u16, DmaBuffer)>,
    next: u64,
}

impl RawLoad {
    fn new(ctrl: &Controller<SimFunction>, ns: &Namespace, qd: usize) -> Self {
        let qp = ctrl
            .create_io_qpair(QpairOptions {
                entries: (qd + 1).max(128) as u16,
                ..QpairOptions::default()
            })
            .expect("qpair");
        RawLoad {
            qp,
            ns: ns.clone(),
            ready: buffers(ctrl, qd)
                .into_iter()
                .enumerate()
                .map(|(i, b)| (i as u16, b))
                .collect(),
            next: 0,
        }
    }

    /// Runs `count` reads, keeping every slot busy.
    fn run(&mut self, count: u64) {
        let mut done = 0;
        while done < count as usize {
            for (token, buffer) in self.ready.drain(..) {
                let lba = self.next % SPAN;
                self.next += 1;
                if self.qp.submit_read(&self.ns, lba, buffer, token).is_err() {
                    panic!("submission refused");
                }
            }
            let ready = &mut self.ready;
            done += self.qp.process_completions(0, &mut |c| {
                debug_assert!(c.result.is_ok());
                ready.push((c.token, c.buffer.expect("buffer back")));
            });
        }
    }
}

// ---- async API ----

struct AsyncLoad {
    reactor: Reactor,
    completed: Rc<Cell<u64>>,
}

impl AsyncLoad {
    fn new(ctrl: &Controller<SimFunction>, ns: &Namespace, qd: usize) -> Self {
        let reactor = Reactor::new(ReactorConfig {
            idle: IdlePolicy::BusyPoll,
            ..ReactorConfig::default()
        })
        .expect("reactor");
        let options = QpairOptions {
            entries: (qd + 1).max(128) as u16,
            ..QpairOptions::default()
        };
        let qp: Rc<AsyncQueuePair<SimFunction>> = Rc::new(
            reactor
                .block_on(async { ctrl.create_async_qpair(options) })
                .expect("reactor")
                .expect("qpair"),
        );
        let completed = Rc::new(Cell::new(0u64));
        let next = Rc::new(Cell::new(0u64));
        for mut buffer in buffers(ctrl, qd) {
            let (qp, ns, completed, next) =
                (qp.clone(), ns.clone(), completed.clone(), next.clone());
            reactor.spawn(async move {
                loop {
                    let lba = next.get() % SPAN;
                    next.set(next.get() + 1);
                    let result = qp.read(&ns, lba, &mut buffer).await;
                    debug_assert!(result.is_ok());
                    completed.set(completed.get() + 1);
                }
            });
        }
        AsyncLoad { reactor, completed }
    }

    /// Turns the reactor until `count` more reads completed.
    fn run(&mut self, count: u64) {
        let target = self.completed.get() + count;
        while self.completed.get() < target {
            self.reactor.run_once().expect("reactor");
        }
    }
}

// ---- model only: a minimal host ----

/// The least a host can do: hand-built queues, no tracking, no checks.
struct ModelOnly {
    regs: SimBar,
    sq: DmaArray<SubmissionEntry>,
    cq: DmaArray<CompletionEntry>,
    entries: u16,
    sq_tail: u16,
    cq_head: u16,
    phase: bool,
    sq_db: usize,
    cq_db: usize,
    buffers: Vec<DmaBuffer>,
    next: u64,
    _padding: Vec<userpci::framework::dma::DmaRegion>,
    _function: SimFunction,
}

/// A queue pair `qid` of `entries` on memory of `space` (admin: 0).
struct Queue {
    sq: DmaArray<SubmissionEntry>,
    cq: DmaArray<CompletionEntry>,
}

impl ModelOnly {
    /// A host with `qd` buffers, the reads' blocks written, and `mappings` IOMMU mappings.
    fn new(qd: usize, mappings: usize) -> Self {
        let bus = bus();
        let function = open(&bus);
        function.set_bus_master(true).expect("bus master");
        let regs = function.map_bar(0).expect("BAR0");
        let cap = Cap(regs.read64(regs::CAP));
        let dstrd = cap.dstrd();
        let space = function.dma_space().clone();
        let wait_ready = |ready: bool| {
            for _ in 0..100_000 {
                if Csts(regs.read32(regs::CSTS)).rdy() == ready {
                    return;
                }
                bus.clock().sleep(Duration::from_micros(10));
            }
            panic!("CSTS.RDY did not become {ready}");
        };
        // Base 2.0 section 3.5.1: disable, admin queues, enable.
        regs.write32(regs::CC, 0);
        wait_ready(false);
        let admin = Queue {
            sq: space
                .allocate_array(16, DmaDirection::ToDevice)
                .expect("ASQ"),
            cq: space
                .allocate_array(16, DmaDirection::Bidirectional)
                .expect("ACQ"),
        };
        regs.write32(regs::AQA, Aqa::new(15, 15).0);
        regs.write64(regs::ASQ, admin.sq.iova());
        regs.write64(regs::ACQ, admin.cq.iova());
        let cc = Cc::new()
            .with_css(Cc::CSS_NVM)
            .with_mps(0)
            .with_iosqes(IOSQES)
            .with_iocqes(IOCQES)
            .with_en(true);
        regs.write32(regs::CC, cc.0);
        wait_ready(true);
        // Create I/O CQ 1 (no interrupts), then SQ 1.
        let entries = (qd + 1).max(128) as u16;
        let io = Queue {
            sq: space
                .allocate_array(usize::from(entries), DmaDirection::ToDevice)
                .expect("SQ"),
            cq: space
                .allocate_array(usize::from(entries), DmaDirection::Bidirectional)
                .expect("CQ"),
        };
        let commands = [
            SubmissionEntry::create_io_cq(1, entries - 1, io.cq.iova(), 0, false),
            SubmissionEntry::create_io_sq(1, entries - 1, io.sq.iova(), 1, 0),
        ];
        for (i, sqe) in commands.into_iter().enumerate() {
            admin.sq.set(i, sqe.with_cid(i as u16 + 1));
            regs.write32(sq_tail_doorbell(0, dstrd), i as u32 + 1);
            let cqe = admin.cq.get(i);
            assert!(
                cqe.phase() && cqe.status().is_success(),
                "admin command {i}: {cqe:?}"
            );
            regs.write32(cq_head_doorbell(0, dstrd), i as u32 + 1);
        }
        let buffers = (0..qd)
            .map(|_| {
                space
                    .allocate_buffer(IO, DmaDirection::Bidirectional)
                    .expect("buffer")
            })
            .collect();
        let mut padding = Vec::new();
        while bus.iommu().mapping_count() < mappings {
            padding.push(
                space
                    .allocate(IO, DmaDirection::Bidirectional)
                    .expect("padding"),
            );
        }
        let mut host = ModelOnly {
            regs,
            sq: io.sq,
            cq: io.cq,
            entries,
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            sq_db: sq_tail_doorbell(1, dstrd),
            cq_db: cq_head_doorbell(1, dstrd),
            buffers,
            next: 0,
            _padding: padding,
            _function: function,
        };
        host.write_span();
        host
    }

    /// Writes the `SPAN` blocks the reads cycle over, one command at a time.
    fn write_span(&mut self) {
        let mut data = self
            ._function
            .dma_space()
            .allocate_buffer(IO, DmaDirection::Bidirectional)
            .expect("buffer");
        for lba in 0..SPAN {
            for (i, b) in data.as_mut_slice().iter_mut().enumerate() {
                *b = (i * 7 + lba as usize) as u8;
            }
            let sqe = SubmissionEntry::write(1, lba, 0, data.iova(), 0).with_cid(1);
            self.sq.set(usize::from(self.sq_tail), sqe);
            self.sq_tail = (self.sq_tail + 1) % self.entries;
            self.regs.write32(self.sq_db, u32::from(self.sq_tail));
            let cqe = self.cq.get(usize::from(self.cq_head));
            assert!(
                cqe.phase() == self.phase && cqe.status().is_success(),
                "write {lba}: {cqe:?}"
            );
            self.cq_head += 1;
            if self.cq_head == self.entries {
                self.cq_head = 0;
                self.phase = !self.phase;
            }
            self.regs.write32(self.cq_db, u32::from(self.cq_head));
        }
    }

    /// Runs `count` reads in batches of the queue depth.
    fn run(&mut self, count: u64) {
        let qd = self.buffers.len() as u64;
        let mut done = 0;
        while done < count {
            for (i, buffer) in self.buffers.iter().enumerate() {
                let lba = self.next % SPAN;
                self.next += 1;
                let sqe = SubmissionEntry::read(1, lba, 0, buffer.iova(), 0).with_cid(i as u16);
                self.sq.set(usize::from(self.sq_tail), sqe);
                self.sq_tail = (self.sq_tail + 1) % self.entries;
            }
            self.regs.write32(self.sq_db, u32::from(self.sq_tail));
            let mut reaped = 0;
            loop {
                let cqe = self.cq.get(usize::from(self.cq_head));
                if cqe.phase() != self.phase {
                    break;
                }
                debug_assert!(cqe.status().is_success());
                self.cq_head += 1;
                if self.cq_head == self.entries {
                    self.cq_head = 0;
                    self.phase = !self.phase;
                }
                reaped += 1;
            }
            assert_eq!(
                reaped, qd,
                "the instant model completes a batch in the doorbell write"
            );
            self.regs.write32(self.cq_db, u32::from(self.cq_head));
            done += qd;
        }
    }
}

// ---- criterion ----

fn reads_4k(c: &mut Criterion) {
    for qd in DEPTHS {
        let mut group = c.benchmark_group(format!("nvme_read_4k_qd{qd}"));
        group.throughput(Throughput::Elements(BATCH));
        let (bus, ctrl, ns) = controller();
        let mut raw = RawLoad::new(&ctrl, &ns, qd);
        let mappings = bus.iommu().mapping_count();
        group.bench_function(BenchmarkId::new("raw", qd), |b| {
            b.iter(|| raw.run(black_box(BATCH)))
        });
        drop(raw);
        let mut load = AsyncLoad::new(&ctrl, &ns, qd);
        group.bench_function(BenchmarkId::new("async", qd), |b| {
            b.iter(|| load.run(black_box(BATCH)))
        });
        drop(load);
        let mut model_only = ModelOnly::new(qd, mappings);
        model_only.run(BATCH); // first touch of the buffers
        group.bench_function(BenchmarkId::new("model_only", qd), |b| {
            b.iter(|| model_only.run(black_box(BATCH)))
        });
        group.finish();
    }
}

// ---- callgrind ----

/// Everything callgrind should count (`--toggle-collect='*profile_region*'`).
#[inline(never)]
fn profile_region(run: &mut dyn FnMut(u64), batches: u64) {
    for _ in 0..batches {
        run(BATCH);
    }
}

/// `NVME_BENCH_PROFILE=raw|async|model_only:QD:BATCHES`: one workload, warmed up, then
/// `BATCHES` × 1024 I/Os inside [`profile_region`].
fn profile(spec: &str) {
    let parts: Vec<&str> = spec.split(':').collect();
    let [api, qd, batches] = parts[..] else {
        panic!("NVME_BENCH_PROFILE={spec}: expected API:QD:BATCHES, e.g. raw:32:200");
    };
    let qd: usize = qd.parse().expect("QD");
    let batches: u64 = batches.parse().expect("BATCHES");
    let (bus, ctrl, ns) = controller();
    let mut raw = RawLoad::new(&ctrl, &ns, qd);
    let mappings = bus.iommu().mapping_count();
    let mut run: Box<dyn FnMut(u64)> = match api {
        "raw" => Box::new(move |n| raw.run(n)),
        "async" => {
            drop(raw);
            let mut load = AsyncLoad::new(&ctrl, &ns, qd);
            Box::new(move |n| load.run(n))
        }
        "model_only" => {
            drop(raw);
            let mut load = ModelOnly::new(qd, mappings);
            Box::new(move |n| load.run(n))
        }
        _ => panic!("NVME_BENCH_PROFILE={spec}: API is raw, async or model_only"),
    };
    run(4 * BATCH);
    profile_region(&mut *run, batches);
    println!("{api} qd {qd}: {} I/Os profiled", batches * BATCH);
}

fn main() {
    if let Ok(spec) = std::env::var("NVME_BENCH_PROFILE") {
        profile(&spec);
        return;
    }
    let mut criterion = Criterion::default().configure_from_args();
    reads_4k(&mut criterion);
    criterion.final_summary();
}

//! A minimal host for the controller model tests: raw register writes and hand-made queues
//! on the simulated bus, so that the model is checked against the specification and not
//! against the driver.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBar, SimBus, SimFunction};
use userpci_framework::device::{
    InterruptVector, PciFunction, PciFunctionExt, RegisterIo, ResetMethod,
};
use userpci_framework::dma::{DmaArray, DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;
use userpci_nvme::model::{self, NvmeModel, NvmeModelStats};
use userpci_nvme::spec::queue::{IOCQES, IOSQES};
use userpci_nvme::spec::registers::{
    self as regs, cq_head_doorbell, sq_tail_doorbell, Aqa, Cap, Cc, Csts,
};
use userpci_nvme::spec::{CompletionEntry, Status, SubmissionEntry};

pub const ADDR: &str = "01:00.0";
pub const PAGE: usize = 4096;

pub fn addr() -> PciAddress {
    ADDR.parse().unwrap()
}

/// A bus with one NVMe model at 01:00.0 (FLR and bus reset) with `params` (TOML).
pub fn bus(params: &str) -> Arc<SimBus> {
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDR, model::MODEL_NAME)
        .params(params.parse().unwrap())
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    SimBus::new(topology, &registry).unwrap()
}

/// A submission / completion queue pair in DMA memory, with the host's indices.
pub struct QueuePair {
    pub qid: u16,
    pub sq: DmaArray<SubmissionEntry>,
    pub cq: DmaArray<CompletionEntry>,
    pub sq_tail: u16,
    pub cq_head: u16,
    pub phase: bool,
    pub next_cid: u16,
    pub dstrd: u8,
}

impl QueuePair {
    pub fn new(ctrl: &Ctrl, qid: u16, sq_entries: usize, cq_entries: usize) -> Self {
        let space = ctrl.function.dma_space();
        QueuePair {
            qid,
            sq: space
                .allocate_array(sq_entries, DmaDirection::ToDevice)
                .unwrap(),
            cq: space
                .allocate_array(cq_entries, DmaDirection::Bidirectional)
                .unwrap(),
            sq_tail: 0,
            cq_head: 0,
            phase: true,
            next_cid: 1,
            dstrd: ctrl.cap().dstrd(),
        }
    }

    /// Places `sqe` at the tail with a fresh CID, without ringing.
    pub fn place(&mut self, mut sqe: SubmissionEntry) -> u16 {
        let cid = self.next_cid;
        self.next_cid = self.next_cid.wrapping_add(1).max(1);
        sqe.set_cid(cid);
        self.sq.set(usize::from(self.sq_tail), sqe);
        self.sq_tail = ((usize::from(self.sq_tail) + 1) % self.sq.len()) as u16;
        cid
    }

    pub fn ring_sq(&self, regs: &SimBar) {
        regs.write32(
            sq_tail_doorbell(self.qid, self.dstrd),
            u32::from(self.sq_tail),
        );
    }

    pub fn ring_cq(&self, regs: &SimBar) {
        regs.write32(
            cq_head_doorbell(self.qid, self.dstrd),
            u32::from(self.cq_head),
        );
    }

    /// Places and rings; returns the CID.
    pub fn submit(&mut self, regs: &SimBar, sqe: SubmissionEntry) -> u16 {
        let cid = self.place(sqe);
        self.ring_sq(regs);
        cid
    }

    /// The next new completion, consumed (head advanced, doorbell not rung).
    pub fn poll(&mut self) -> Option<CompletionEntry> {
        let cqe = self.cq.get(usize::from(self.cq_head));
        if cqe.phase() != self.phase {
            return None;
        }
        self.cq_head += 1;
        if usize::from(self.cq_head) == self.cq.len() {
            self.cq_head = 0;
            self.phase = !self.phase;
        }
        Some(cqe)
    }

    /// Every new completion, then the head doorbell.
    pub fn drain(&mut self, regs: &SimBar) -> Vec<CompletionEntry> {
        let mut out = Vec::new();
        while let Some(cqe) = self.poll() {
            out.push(cqe);
        }
        if !out.is_empty() {
            self.ring_cq(regs);
        }
        out
    }

    /// Submits `sqe` and returns its completion, which must be there at once.
    pub fn run(&mut self, regs: &SimBar, sqe: SubmissionEntry) -> CompletionEntry {
        let cid = self.submit(regs, sqe);
        let cqe = self.poll().expect("no completion posted");
        self.ring_cq(regs);
        assert_eq!(cqe.cid(), cid, "completion for another command: {cqe:?}");
        assert_eq!(cqe.sq_id(), self.qid);
        cqe
    }
}

/// An opened controller function with its admin queue once enabled.
pub struct Ctrl {
    pub bus: Arc<SimBus>,
    pub function: SimFunction,
    pub regs: SimBar,
    pub vectors: Vec<InterruptVector>,
    pub admin: Option<QueuePair>,
}

impl Ctrl {
    /// Opens 01:00.0 with memory decoding, bus mastering and every MSI-X vector on.
    pub fn open(bus: &Arc<SimBus>) -> Self {
        let function = bus.open(addr()).unwrap();
        function.set_bus_master(true).unwrap();
        let count = function.msix_vector_count().unwrap();
        let vectors = function.enable_msix(count).unwrap();
        let regs = function.map_bar(0).unwrap();
        Ctrl {
            bus: bus.clone(),
            function,
            regs,
            vectors,
            admin: None,
        }
    }

    /// A bus with `params` and the controller enabled with a 16-entry admin queue pair.
    pub fn enabled(params: &str) -> Self {
        let mut ctrl = Ctrl::open(&bus(params));
        ctrl.enable(16);
        ctrl
    }

    pub fn cap(&self) -> Cap {
        Cap(self.regs.read64(regs::CAP))
    }

    pub fn csts(&self) -> Csts {
        Csts(self.regs.read32(regs::CSTS))
    }

    pub fn cc(&self) -> Cc {
        Cc(self.regs.read32(regs::CC))
    }

    pub fn now(&self) -> Duration {
        self.bus.clock().now()
    }

    /// Polls `CSTS.RDY` for `ready` every 10 µs of virtual time up to `CAP.TO`; returns how
    /// long it took, or `None` on timeout.
    pub fn wait_ready(&self, ready: bool) -> Option<Duration> {
        let start = self.now();
        let limit = Duration::from_millis(self.cap().timeout_ms());
        loop {
            if self.csts().rdy() == ready {
                return Some(self.now() - start);
            }
            if self.now() - start >= limit {
                return None;
            }
            self.bus.clock().sleep(Duration::from_micros(10));
        }
    }

    /// The `CC` value used to enable: NVM command set, 4 KiB pages, 64/16-byte entries.
    pub fn enable_value() -> Cc {
        Cc::new()
            .with_css(Cc::CSS_NVM)
            .with_mps(0)
            .with_iosqes(IOSQES)
            .with_iocqes(IOCQES)
            .with_en(true)
    }

    /// The bring-up sequence (Base "Controller Initialization") with an admin queue pair of
    /// `entries`.
    pub fn enable(&mut self, entries: usize) {
        self.regs.write32(regs::CC, 0);
        self.wait_ready(false).expect("RDY did not clear");
        let admin = QueuePair::new(self, 0, entries, entries);
        let size = (entries - 1) as u16;
        self.regs.write32(regs::AQA, Aqa::new(size, size).0);
        self.regs.write64(regs::ASQ, admin.sq.iova());
        self.regs.write64(regs::ACQ, admin.cq.iova());
        self.regs.write32(regs::CC, Self::enable_value().0);
        self.wait_ready(true).expect("RDY did not follow CC.EN");
        self.admin = Some(admin);
    }

    /// Disables (controller reset) and waits for `RDY` 0.
    pub fn disable(&mut self) {
        self.regs
            .write32(regs::CC, Self::enable_value().with_en(false).0);
        self.wait_ready(false).expect("RDY did not clear");
        self.admin = None;
    }

    pub fn admin_queue(&mut self) -> &mut QueuePair {
        self.admin.as_mut().expect("controller not enabled")
    }

    /// Runs an admin command to completion.
    pub fn admin(&mut self, sqe: SubmissionEntry) -> CompletionEntry {
        let regs = self.regs.clone();
        self.admin_queue().run(&regs, sqe)
    }

    /// Runs an admin command and checks that it succeeded; returns DW0.
    pub fn admin_ok(&mut self, sqe: SubmissionEntry) -> u32 {
        let cqe = self.admin(sqe);
        assert_eq!(cqe.status(), Status::SUCCESS, "{sqe:?}");
        cqe.dw0
    }

    /// Creates I/O queue pair `qid` with `entries` entries, interrupts on vector `qid`.
    pub fn create_io(&mut self, qid: u16, entries: usize) -> QueuePair {
        let pair = QueuePair::new(self, qid, entries, entries);
        let qsize = (entries - 1) as u16;
        self.admin_ok(SubmissionEntry::create_io_cq(
            qid,
            qsize,
            pair.cq.iova(),
            qid,
            true,
        ));
        self.admin_ok(SubmissionEntry::create_io_sq(
            qid,
            qsize,
            pair.sq.iova(),
            qid,
            0,
        ));
        pair
    }

    /// Runs `f` on the model.
    pub fn model<R>(&self, f: impl FnOnce(&mut NvmeModel) -> R) -> R {
        self.bus.with_model::<NvmeModel, R>(addr(), f).unwrap()
    }

    pub fn stats(&self) -> NvmeModelStats {
        self.model(|m| m.stats())
    }

    /// A DMA buffer of `len` bytes filled by `fill`.
    pub fn buffer(
        &self,
        len: usize,
        direction: DmaDirection,
        fill: impl Fn(usize) -> u8,
    ) -> DmaBuffer {
        let mut buffer = self
            .function
            .dma_space()
            .allocate_buffer(len, direction)
            .unwrap();
        for (i, b) in buffer.as_mut_slice().iter_mut().enumerate() {
            *b = fill(i);
        }
        buffer
    }

    /// Namespace bytes as stored, read behind the controller's back.
    pub fn stored(&self, nsid: u32, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.model(|m| m.read_namespace(nsid, offset, &mut out))
            .unwrap();
        out
    }
}

/// A test pattern that differs per byte and per `seed`.
pub fn pattern(seed: u8) -> impl Fn(usize) -> u8 {
    move |i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8)
}

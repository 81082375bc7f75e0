//! A write-verify workload on one NVMe controller: one queue pair, a ledger of every write
//! (acknowledged, failed), and a read-back that counts the lost and the doubled ones. Shared by
//! the coordinated-reset tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::VfioFunction;
use userpci_framework::device::PciFunction;
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_nvme::{Controller, Error as NvmeError, IoQueuePair, Namespace, QpairOptions};

use super::support;
use crate::fail;
use crate::harness::{Failure, TestResult};

type Function = Arc<VfioFunction>;

/// Blocks per write (32 KiB).
pub(super) const WRITE_BLOCKS: u64 = 64;
/// Where the ledger's writes start; each write has its own LBA range.
pub(super) const LEDGER_BASE: u64 = 100_000;
/// Write buffers per controller, so at most this many writes in flight.
pub(super) const BUFFERS: usize = 32;

/// What the caller of one write learned.
#[derive(Debug)]
pub(super) struct WriteRecord {
    pub(super) lba: u64,
    pub(super) acknowledged: u32,
    pub(super) failed: Option<String>,
}

/// One controller with one queue pair and a ledger of its writes.
pub(super) struct Workload {
    pub(super) address: PciAddress,
    pub(super) tag: u64,
    pub(super) ctrl: Controller<Function>,
    pub(super) qp: IoQueuePair<Function, u64, DmaBuffer>,
    pub(super) ns: Namespace,
    pub(super) free: Vec<DmaBuffer>,
    pub(super) ledger: BTreeMap<u64, WriteRecord>,
    pub(super) next: u64,
}

/// What the verification found.
#[derive(Debug, Default)]
pub(super) struct Verdict {
    pub(super) acknowledged: usize,
    pub(super) failed: usize,
    pub(super) duplicated: usize,
    pub(super) lost: usize,
}

impl Workload {
    pub(super) fn new(ctrl: Controller<Function>, tag: u64) -> Result<Self, Failure> {
        let qp = ctrl.create_io_qpair(QpairOptions {
            entries: (BUFFERS + 1) as u16,
            ..QpairOptions::default()
        })?;
        let ns = ctrl.namespaces()[0].clone();
        let len = WRITE_BLOCKS as usize * ns.block_size() as usize;
        let space = ctrl.function().dma_space();
        let free = (0..BUFFERS)
            .map(|_| space.allocate_buffer(len, DmaDirection::Bidirectional))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Workload {
            address: ctrl.device(),
            tag,
            ctrl,
            qp,
            ns,
            free,
            ledger: BTreeMap::new(),
            next: 0,
        })
    }

    /// Submits up to `count` new writes (fewer when buffers or queue slots run out, or the
    /// queue is stopped for a reset); rings the doorbell. Returns how many went in.
    pub(super) fn write(&mut self, count: usize) -> Result<usize, Failure> {
        let bs = self.ns.block_size() as usize;
        let mut submitted = 0;
        while submitted < count {
            let Some(mut buf) = self.free.pop() else {
                break;
            };
            let token = self.next;
            let lba = LEDGER_BASE + token * WRITE_BLOCKS;
            support::fill_blocks(buf.as_mut_slice(), bs, lba, self.tag, 1);
            match self.qp.submit_write(&self.ns, lba, buf, token) {
                Ok(()) => {
                    self.ledger.insert(
                        token,
                        WriteRecord {
                            lba,
                            acknowledged: 0,
                            failed: None,
                        },
                    );
                    self.next += 1;
                    submitted += 1;
                }
                Err(rejected) => {
                    if let Some(buf) = rejected.buffer {
                        self.free.push(buf);
                    }
                    match rejected.error {
                        // Backpressure, or the queue is stopped for a reset: try again later.
                        NvmeError::QueueFull { .. } | NvmeError::Resetting { .. } => break,
                        other => fail!("{}: write refused: {other}", self.address),
                    }
                }
            }
        }
        match self.qp.commit() {
            Ok(()) | Err(NvmeError::Resetting { .. }) => Ok(submitted),
            Err(other) => Err(Failure(format!("{}: commit: {other}", self.address))),
        }
    }

    /// Reaps completions into the ledger.
    pub(super) fn poll(&mut self) -> usize {
        let (ledger, free) = (&mut self.ledger, &mut self.free);
        self.qp.process_completions(0, &mut |c| {
            if let Some(record) = ledger.get_mut(&c.token) {
                match c.result {
                    Ok(()) => record.acknowledged += 1,
                    Err(err) => record.failed = Some(err.to_string()),
                }
            }
            if let Some(buf) = c.buffer {
                free.push(buf);
            }
        })
    }

    pub(super) fn settled(&self) -> bool {
        self.ledger
            .values()
            .all(|w| w.acknowledged > 0 || w.failed.is_some())
    }

    pub(super) fn open_writes(&self) -> usize {
        self.ledger
            .values()
            .filter(|w| w.acknowledged == 0 && w.failed.is_none())
            .count()
    }

    /// Reads back every acknowledged write and counts the lost and doubled ones.
    pub(super) fn verify(&mut self) -> Result<Verdict, Failure> {
        let bs = self.ns.block_size() as usize;
        let mut verdict = Verdict::default();
        let acked: Vec<(u64, u64)> = self
            .ledger
            .iter()
            .filter(|(_, w)| w.acknowledged > 0)
            .map(|(t, w)| (*t, w.lba))
            .collect();
        for w in self.ledger.values() {
            if w.acknowledged > 1 || (w.acknowledged == 1 && w.failed.is_some()) {
                verdict.duplicated += 1;
            }
            if w.failed.is_some() {
                verdict.failed += 1;
            }
        }
        verdict.acknowledged = acked.len();
        let mut pending = acked.into_iter();
        let mut in_flight = 0usize;
        let start = Instant::now();
        loop {
            while let Some(mut buf) = self.free.pop() {
                let Some((token, lba)) = pending.next() else {
                    self.free.push(buf);
                    break;
                };
                buf.as_mut_slice().fill(0);
                self.qp
                    .submit_read(&self.ns, lba, buf, token)
                    .map_err(|r| Failure(format!("{}: read-back refused: {r}", self.address)))?;
                in_flight += 1;
            }
            self.qp.commit()?;
            if in_flight == 0 {
                return Ok(verdict);
            }
            let (tag, free, lost) = (self.tag, &mut self.free, &mut verdict.lost);
            let mut errors = Vec::new();
            let n = self.qp.process_completions(0, &mut |c| {
                let buf = c.buffer.expect("reads return their buffer");
                let lba = LEDGER_BASE + c.token * WRITE_BLOCKS;
                match c.result {
                    Ok(()) => {
                        if support::check_blocks(buf.as_slice(), bs, lba, tag, 1).is_some() {
                            *lost += 1;
                        }
                    }
                    Err(err) => errors.push(err.to_string()),
                }
                free.push(buf);
            });
            in_flight -= n;
            if let Some(err) = errors.first() {
                fail!("{}: read-back failed: {err}", self.address);
            }
            if start.elapsed() > Duration::from_secs(60) {
                fail!("{}: read-back still running after 60 s", self.address);
            }
        }
    }
}

/// Polls every workload until all writes settled.
pub(super) fn settle(loads: &mut [Workload], limit: Duration) -> TestResult {
    let start = Instant::now();
    while !loads.iter().all(Workload::settled) {
        for w in loads.iter_mut() {
            w.poll();
        }
        if start.elapsed() > limit {
            let open: Vec<String> = loads
                .iter()
                .map(|w| format!("{}: {} open", w.address, w.open_writes()))
                .collect();
            fail!("writes still open after {limit:?}: {}", open.join(", "));
        }
    }
    Ok(())
}

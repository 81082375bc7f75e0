//! The write-verify workload of one controller: a queue pair kept `depth` writes deep over a
//! fixed set of slots, every answer entered in the [`Ledger`], failed writes retried with new
//! data; after a controller is lost, the same workload (and ledger) goes on with the next
//! controller brought up on the function. At the end every slot is read back and checked.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::device::PciFunction;
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_nvme::{Controller, Error, IoQueuePair, Namespace, QpairOptions};

use super::config::timing;
use super::error::{Result, SoakError};
use super::ledger::{fill, Ledger, Verdict};

/// Blocks per write (4 KiB with 512-byte blocks).
pub const WRITE_BLOCKS: u64 = 8;
/// Slots per namespace: LBA ranges of `WRITE_BLOCKS` written over and over.
pub const SLOTS: u64 = 1024;
/// Read-back tokens: apart from every write token.
const READ_TOKEN: u64 = 1 << 63;

type Qpair = IoQueuePair<Arc<SimFunction>, u64, PoolBuffer>;

/// The errors callers were told, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FailureCounts {
    /// Taken back by a reset and not re-issued (or the controller lost): retry.
    pub retriable: u64,
    /// The device is gone.
    pub device_gone: u64,
    /// The controller failed.
    pub controller_failed: u64,
    /// The command timed out and was aborted.
    pub timeout: u64,
    /// The controller answered with an error status.
    pub command_status: u64,
    /// Anything else.
    pub other: u64,
}

impl FailureCounts {
    fn add(&mut self, error: &Error) {
        let counter = match error {
            Error::Retriable { .. } => &mut self.retriable,
            Error::DeviceGone { .. } => &mut self.device_gone,
            Error::ControllerFailed { .. } => &mut self.controller_failed,
            Error::Timeout { .. } => &mut self.timeout,
            Error::Command { .. } => &mut self.command_status,
            _ => &mut self.other,
        };
        *counter += 1;
    }

    /// Every failure.
    pub fn total(&self) -> u64 {
        self.retriable
            + self.device_gone
            + self.controller_failed
            + self.timeout
            + self.command_status
            + self.other
    }
}

/// What the driver's queue pairs counted, summed over the controller's lifetimes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DriverCounts {
    pub bogus_cid_out_of_range: u64,
    pub bogus_cid_not_in_flight: u64,
    pub bogus_sq_head_invalid: u64,
    pub timeouts: u64,
    pub aborts: u64,
    pub reissued: u64,
    pub reconnects: u64,
}

impl DriverCounts {
    fn add(&mut self, qp: &Qpair) {
        let s = qp.stats();
        self.bogus_cid_out_of_range += s.bogus.cid_out_of_range;
        self.bogus_cid_not_in_flight += s.bogus.cid_not_in_flight;
        self.bogus_sq_head_invalid += s.bogus.sq_head_invalid;
        self.timeouts += s.timeouts;
        self.aborts += s.aborts;
        self.reissued += s.reissued;
        self.reconnects += s.reconnects;
    }
}

/// What reading back found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VerifyCounts {
    /// Slots holding their last acknowledged write.
    pub slots_verified: u64,
    /// Slots holding a failed write's data (it landed before the caller was told it failed).
    pub in_doubt_landed: u64,
    /// Slots whose acknowledged write is gone.
    pub lost: u64,
}

struct Attached {
    qp: Qpair,
    pool: Arc<BufferPool>,
    ns: Namespace,
}

/// One controller's workload.
pub struct Workload {
    pub name: String,
    pub ledger: Ledger,
    pub failures: FailureCounts,
    pub driver: DriverCounts,
    /// Submissions the driver refused (queue full, a reset running): not writes, retried.
    pub refused: u64,
    attached: Option<Attached>,
    depth: usize,
    seed: u64,
    next_token: u64,
    next_slot: u64,
    retry: VecDeque<u64>,
    in_flight_slots: BTreeSet<u64>,
}

impl Workload {
    /// A workload named `name` (no controller yet: see [`Workload::attach`]).
    pub fn new(name: String, depth: usize, seed: u64) -> Self {
        Workload {
            name,
            ledger: Ledger::new(),
            failures: FailureCounts::default(),
            driver: DriverCounts::default(),
            refused: 0,
            attached: None,
            depth,
            seed,
            next_token: 0,
            next_slot: 0,
            retry: VecDeque::new(),
            in_flight_slots: BTreeSet::new(),
        }
    }

    /// Starts using `ctrl`: a queue pair and a buffer pool of its own (buffers that a lost
    /// controller may still use are never handed out again), with the soak's short command
    /// timeouts.
    pub fn attach(&mut self, ctrl: &Controller<Arc<SimFunction>>) -> Result<()> {
        self.attach_with(
            ctrl,
            QpairOptions {
                timeout: timing::COMMAND_TIMEOUT,
                abort_timeout: timing::COMMAND_TIMEOUT,
                timeout_check_interval: timing::TIMEOUT_CHECK,
                ..QpairOptions::default()
            },
        )
    }

    /// [`Workload::attach`] with the queue pair's options (its size is the workload's:
    /// `entries` is ignored).
    pub fn attach_with(
        &mut self,
        ctrl: &Controller<Arc<SimFunction>>,
        options: QpairOptions,
    ) -> Result<()> {
        let ns = ctrl.namespaces()[0].clone();
        let len = WRITE_BLOCKS as usize * ns.block_size() as usize;
        let pool = BufferPool::new(
            ctrl.function().dma_space(),
            &format!("{} buffers", self.name),
            len,
            self.depth + 2,
            0,
        )?;
        let qp = ctrl.create_io_qpair(QpairOptions {
            entries: (self.depth as u16 + 1).max(2),
            ..options
        })?;
        self.attached = Some(Attached { qp, pool, ns });
        Ok(())
    }

    /// Stops using the controller: collects what its queue pair still owes (a failed
    /// controller fails it all) and drops the queue pair.
    pub fn detach(&mut self) {
        for _ in 0..4 {
            if self.ledger.unanswered() == 0 {
                break;
            }
            self.poll();
        }
        if let Some(attached) = self.attached.take() {
            self.driver.add(&attached.qp);
        }
    }

    /// The driver's counters, including the queue pair in use.
    pub fn driver_counts(&self) -> DriverCounts {
        let mut counts = self.driver;
        if let Some(a) = &self.attached {
            counts.add(&a.qp);
        }
        counts
    }

    /// Acknowledged writes so far.
    pub fn acknowledged(&self) -> u64 {
        self.ledger.counts().acknowledged
    }

    /// True when every write submitted has had its answer.
    pub fn settled(&self) -> bool {
        self.ledger.unanswered() == 0
    }

    fn next_write_slot(&mut self) -> Option<u64> {
        if let Some(slot) = self.retry.pop_front() {
            return Some(slot);
        }
        for _ in 0..SLOTS {
            let slot = self.next_slot;
            self.next_slot = (self.next_slot + 1) % SLOTS;
            if !self.in_flight_slots.contains(&slot) && !self.retry.contains(&slot) {
                return Some(slot);
            }
        }
        None
    }

    /// Tops the queue up to its depth with new writes. Returns how many were accepted.
    pub fn top_up(&mut self) -> usize {
        let mut accepted = 0;
        while (self.ledger.unanswered() as usize) < self.depth {
            let Some(attached) = self.attached.as_ref() else {
                return accepted;
            };
            let Some(mut buf) = attached.pool.get() else {
                break;
            };
            let Some(slot) = self.next_write_slot() else {
                break;
            };
            let token = self.next_token;
            let seed = self.seed ^ token.wrapping_mul(0x2545_f491_4f6c_dd1d);
            fill(seed, buf.as_mut_slice());
            let attached = self.attached.as_mut().expect("checked above");
            match attached
                .qp
                .submit_write(&attached.ns, slot * WRITE_BLOCKS, buf, token)
            {
                Ok(()) => {
                    self.ledger.submit(token, slot, seed);
                    self.in_flight_slots.insert(slot);
                    self.next_token += 1;
                    accepted += 1;
                }
                Err(_) => {
                    // Backpressure or a reset in progress: this slot goes first next round.
                    self.refused += 1;
                    self.retry.push_front(slot);
                    break;
                }
            }
        }
        if let Some(attached) = self.attached.as_mut() {
            // A commit refused during a reset is retried by the next round.
            let _ = attached.qp.commit();
        }
        accepted
    }

    /// Collects completions into the ledger; returns how many arrived.
    pub fn poll(&mut self) -> usize {
        let Some(attached) = self.attached.as_mut() else {
            return 0;
        };
        let Workload {
            ledger,
            failures,
            retry,
            in_flight_slots,
            ..
        } = self;
        attached.qp.process_completions(0, &mut |c| {
            let ok = c.result.is_ok();
            let slot = ledger.slot_of(c.token);
            if ledger.answer(c.token, ok) != super::ledger::Answer::First {
                return;
            }
            let Some(slot) = slot else { return };
            in_flight_slots.remove(&slot);
            if let Err(err) = &c.result {
                failures.add(err);
                // The caller's answer to a failed write: write the slot again, new data.
                retry.push_back(slot);
            }
        })
    }

    /// Reads every slot with an answered write back and checks it against the ledger.
    pub fn verify(&mut self, device: PciAddress, mut idle: impl FnMut()) -> Result<VerifyCounts> {
        let mut counts = VerifyCounts::default();
        let slots: Vec<u64> = self.ledger.slots().map(|(s, _)| s).collect();
        for slot in slots {
            let data = self.read_slot(device, slot, &mut idle)?;
            match self.ledger.check(slot, &data) {
                Verdict::Acknowledged => counts.slots_verified += 1,
                Verdict::InDoubt => counts.in_doubt_landed += 1,
                Verdict::Lost => counts.lost += 1,
                Verdict::Unacknowledged => {}
            }
        }
        Ok(counts)
    }

    fn read_slot(
        &mut self,
        device: PciAddress,
        slot: u64,
        idle: &mut impl FnMut(),
    ) -> Result<Vec<u8>> {
        let error = |reason: String| SoakError::Verify {
            device,
            slot,
            reason,
        };
        let attached = self
            .attached
            .as_mut()
            .ok_or_else(|| error("no controller attached".into()))?;
        let buf = attached
            .pool
            .get()
            .ok_or_else(|| error("buffer pool empty".into()))?;
        attached
            .qp
            .submit_read(&attached.ns, slot * WRITE_BLOCKS, buf, READ_TOKEN | slot)
            .map_err(|r| error(r.error.to_string()))?;
        attached.qp.commit()?;
        for _ in 0..100_000 {
            let mut read = None;
            attached.qp.process_completions(0, &mut |c| read = Some(c));
            if let Some(c) = read {
                c.result.map_err(|e| error(e.to_string()))?;
                let data = c.buffer.ok_or_else(|| error("no buffer back".into()))?;
                return Ok(data.as_slice().to_vec());
            }
            idle();
        }
        Err(error("the read never completed".into()))
    }

    /// Test support: writes `seed`'s data to `slot` behind the ledger's back, as a driver
    /// that acknowledged the wrong data (or lost a write) would leave it.
    #[cfg(test)]
    pub(super) fn write_behind_the_ledger(
        &mut self,
        slot: u64,
        seed: u64,
        mut idle: impl FnMut(),
    ) -> Result<()> {
        let attached = self.attached.as_mut().expect("attached");
        let mut buf = attached.pool.get().expect("a buffer");
        fill(seed, buf.as_mut_slice());
        attached
            .qp
            .submit_write(&attached.ns, slot * WRITE_BLOCKS, buf, READ_TOKEN)
            .map_err(|r| r.error)?;
        attached.qp.commit()?;
        let mut done = false;
        while !done {
            attached.qp.process_completions(0, &mut |_| done = true);
            idle();
        }
        Ok(())
    }
}

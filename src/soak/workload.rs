//! The write-verify workload of one controller: a queue pair kept `depth` writes deep over a
//! fixed set of slots, every answer entered in the [`Ledger`], failed writes retried with new
//! data; after a controller is lost, the same workload (and ledger) goes on with the next
//! controller brought up on the function. At the end every slot is read back and checked.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use userpci_framework::backend::sim::SimFunction;
use userpci_framework::device::PciFunction;
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_nvme::{Controller, IoCompletion, IoQueuePair, Namespace, QpairOptions};

use super::config::timing;
use super::counts::{DriverCounts, FailureCounts, VerifyCounts};
use super::error::{Result, SoakError};
use super::ledger::{fill, Answer, Ledger, Verdict};

/// Blocks per write (4 KiB with 512-byte blocks).
pub const WRITE_BLOCKS: u64 = 8;
/// Slots per namespace: LBA ranges of `WRITE_BLOCKS` written over and over.
pub const SLOTS: u64 = 1024;
/// Read-back tokens: apart from every write token.
const READ_TOKEN: u64 = 1 << 63;
/// What a buffer holds once its write is answered; no data pattern is constant.
const POISON: u8 = 0x5a;

type Qpair = IoQueuePair<Arc<SimFunction>, u64, PoolBuffer>;

/// Where a write's answer goes: the ledger, the failure counters, the retry queue, the
/// slots to check after a reset.
struct Answers<'a> {
    ledger: &'a mut Ledger,
    failures: &'a mut FailureCounts,
    retry: &'a mut VecDeque<u64>,
    in_flight_slots: &'a mut BTreeSet<u64>,
    submitted_in: &'a mut BTreeMap<u64, u64>,
    to_check: &'a mut BTreeSet<u64>,
    /// The reset epoch now.
    epoch: u64,
}

impl Answers<'_> {
    fn record(&mut self, c: IoCompletion<u64, PoolBuffer>) {
        let ok = c.result.is_ok();
        if let Some(mut buffer) = c.buffer {
            // The caller reuses a buffer once its write is acknowledged: poison it, so that a
            // device still reading it (an acknowledgement that came early) writes the poison.
            buffer.as_mut_slice().fill(POISON);
        }
        let slot = self.ledger.slot_of(c.token);
        if self.ledger.answer(c.token, ok) != Answer::First {
            return;
        }
        let Some(slot) = slot else { return };
        self.in_flight_slots.remove(&slot);
        let submitted_in = self.submitted_in.remove(&c.token);
        if ok && submitted_in.is_some_and(|e| e != self.epoch) {
            self.to_check.insert(slot);
        }
        if let Err(err) = &c.result {
            self.failures.add(err);
            // The caller's answer to a failed write: write the slot again, new data.
            self.retry.push_back(slot);
        }
    }
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
    /// Resets so far, counted by whoever asks for them (see [`Workload::with_reset_epoch`]).
    reset_epoch: Arc<AtomicU64>,
    /// Unanswered writes: the reset epoch at their submission.
    submitted_in: BTreeMap<u64, u64>,
    /// Slots whose write crossed a reset and was acknowledged: read back at the next check.
    to_check: BTreeSet<u64>,
    /// Losses found, as (slot, data seed expected), so that a loss is counted once.
    lost_seen: BTreeSet<(u64, u64)>,
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
            reset_epoch: Arc::default(),
            submitted_in: BTreeMap::new(),
            to_check: BTreeSet::new(),
            lost_seen: BTreeSet::new(),
        }
    }

    /// Counts resets in `epoch` (its owner adds 1 before each reset starts): a write submitted
    /// before a reset and acknowledged after it has its slot read back by
    /// [`Workload::check_crossed`], while the slot still holds that write.
    pub fn with_reset_epoch(mut self, epoch: Arc<AtomicU64>) -> Self {
        self.reset_epoch = epoch;
        self
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
            self.driver.add(&attached.qp.stats());
        }
    }

    /// The driver's counters, including the queue pair in use.
    pub fn driver_counts(&self) -> DriverCounts {
        let mut counts = self.driver;
        if let Some(a) = &self.attached {
            counts.add(&a.qp.stats());
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
                    self.submitted_in
                        .insert(token, self.reset_epoch.load(Ordering::Acquire));
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

    /// The queue pair in use and the bookkeeping its write answers go to.
    fn split(&mut self) -> Option<(&mut Attached, Answers<'_>)> {
        let epoch = self.reset_epoch.load(Ordering::Acquire);
        let attached = self.attached.as_mut()?;
        Some((
            attached,
            Answers {
                ledger: &mut self.ledger,
                failures: &mut self.failures,
                retry: &mut self.retry,
                in_flight_slots: &mut self.in_flight_slots,
                submitted_in: &mut self.submitted_in,
                to_check: &mut self.to_check,
                epoch,
            },
        ))
    }

    /// Collects completions into the ledger; returns how many arrived.
    pub fn poll(&mut self) -> usize {
        let Some((attached, mut answers)) = self.split() else {
            return 0;
        };
        attached
            .qp
            .process_completions(0, &mut |c| answers.record(c))
    }

    /// Reads every slot with an answered write back and checks it against the ledger.
    pub fn verify(&mut self, device: PciAddress, mut idle: impl FnMut()) -> Result<VerifyCounts> {
        let slots: Vec<u64> = self.ledger.slots().map(|(s, _)| s).collect();
        self.check_slots(device, slots, &mut idle)
    }

    /// Reads back the slots of writes acknowledged after a reset they were submitted before
    /// (taken back and re-issued, or completed around it): the writes a reset endangers,
    /// checked before later writes cover them. Slots with a write in flight wait.
    pub fn check_crossed(
        &mut self,
        device: PciAddress,
        mut idle: impl FnMut(),
    ) -> Result<VerifyCounts> {
        let (busy, ready): (Vec<u64>, Vec<u64>) = std::mem::take(&mut self.to_check)
            .into_iter()
            .partition(|s| self.in_flight_slots.contains(s) || self.retry.contains(s));
        self.to_check.extend(busy);
        self.check_slots(device, ready, &mut idle)
    }

    fn check_slots(
        &mut self,
        device: PciAddress,
        slots: Vec<u64>,
        idle: &mut impl FnMut(),
    ) -> Result<VerifyCounts> {
        let mut counts = VerifyCounts::default();
        for slot in slots {
            let data = self.read_slot(device, slot, idle)?;
            match self.ledger.check(slot, &data) {
                Verdict::Acknowledged => counts.slots_verified += 1,
                Verdict::InDoubt => counts.in_doubt_landed += 1,
                Verdict::Lost => {
                    let expected = self.ledger.expected(slot).unwrap_or_default();
                    if self.lost_seen.insert((slot, expected)) {
                        counts.lost += 1;
                    }
                }
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
        let (attached, mut answers) = self.split().expect("attached above");
        for _ in 0..100_000 {
            let mut read = None;
            // Writes may be in flight: their answers go to the ledger as always.
            attached.qp.process_completions(0, &mut |c| {
                if c.token & READ_TOKEN != 0 {
                    read = Some(c);
                } else {
                    answers.record(c);
                }
            });
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
        let (attached, mut answers) = self.split().expect("attached above");
        let mut done = false;
        while !done {
            attached.qp.process_completions(0, &mut |c| {
                if c.token & READ_TOKEN != 0 {
                    done = true;
                } else {
                    answers.record(c);
                }
            });
            idle();
        }
        Ok(())
    }
}

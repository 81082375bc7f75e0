//! The demo's write-verify workload: one queue pair per controller, a fixed queue depth of
//! writes to distinct LBAs, and a ledger of what every caller was told.

use std::collections::BTreeMap;
use std::sync::Arc;

use userpci::framework::backend::sim::SimFunction;
use userpci::framework::device::PciFunction;
use userpci::framework::dma::{BufferPool, PoolBuffer};
use userpci::nvme::{Controller, IoQueuePair, Namespace, QpairOptions};

use crate::error::CliResult;

/// Blocks per write.
pub const WRITE_BLOCKS: u64 = 8;
/// Distinct write slots per namespace: LBAs are reused only this many writes later, so two
/// writes to one LBA are never in flight together.
const SLOTS: u64 = 2048;

/// What the callers learned about one write.
#[derive(Debug, Clone, Copy)]
struct Write {
    slot: u64,
    seed: u64,
    acknowledged: u32,
    failed: bool,
}

/// A controller, its queue pair and its ledger.
pub struct Workload {
    pub name: String,
    pub qp: IoQueuePair<Arc<SimFunction>, u64, PoolBuffer>,
    pool: Arc<BufferPool>,
    ns: Namespace,
    depth: usize,
    writes: BTreeMap<u64, Write>,
    /// Per slot: the seed of the last acknowledged write.
    durable: BTreeMap<u64, u64>,
    next: u64,
    in_flight: usize,
    acknowledged: u64,
    duplicated: u64,
    failed: u64,
    pub stopped: bool,
    pub errors: Vec<String>,
}

/// A data pattern derived from the seed, so any block can be checked on its own.
fn pattern(seed: u64, index: usize) -> u8 {
    (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(17) >> 32) as u8
        ^ (index as u8).wrapping_mul(13)
}

impl Workload {
    pub fn new(
        name: String,
        ctrl: &Controller<Arc<SimFunction>>,
        depth: usize,
    ) -> userpci::nvme::Result<Self> {
        let ns = ctrl.namespaces()[0].clone();
        let len = WRITE_BLOCKS as usize * ns.block_size() as usize;
        let pool = BufferPool::new(
            ctrl.function().dma_space(),
            &format!("{name} buffers"),
            len,
            depth + 2,
            0,
        )?;
        let qp = ctrl.create_io_qpair(QpairOptions {
            entries: (depth as u16 + 1).max(2),
            ..QpairOptions::default()
        })?;
        Ok(Workload {
            name,
            qp,
            pool,
            ns,
            depth,
            writes: BTreeMap::new(),
            durable: BTreeMap::new(),
            next: 0,
            in_flight: 0,
            acknowledged: 0,
            duplicated: 0,
            failed: 0,
            stopped: false,
            errors: Vec::new(),
        })
    }

    /// Tops the queue up to its depth with new writes.
    pub fn top_up(&mut self, seed_base: u64) -> CliResult {
        if self.stopped {
            return Ok(());
        }
        while self.in_flight < self.depth {
            let token = self.next;
            let slot = token % SLOTS;
            let seed = seed_base ^ token.wrapping_mul(0x2545_f491_4f6c_dd1d);
            let Some(mut buf) = self.pool.get() else {
                break;
            };
            for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
                *b = pattern(seed, i);
            }
            match self
                .qp
                .submit_write(&self.ns, slot * WRITE_BLOCKS, buf, token)
            {
                Ok(()) => {
                    self.writes.insert(
                        token,
                        Write {
                            slot,
                            seed,
                            acknowledged: 0,
                            failed: false,
                        },
                    );
                    self.next += 1;
                    self.in_flight += 1;
                }
                // Backpressure (queue full, a reset in progress): try again next round.
                Err(_) => break,
            }
        }
        // A commit refused during a reset is retried by the next round.
        let _ = self.qp.commit();
        Ok(())
    }

    /// Collects completions into the ledger; returns how many arrived.
    pub fn poll(&mut self) -> usize {
        let Workload {
            qp,
            writes,
            durable,
            errors,
            in_flight,
            acknowledged,
            duplicated,
            failed,
            ..
        } = self;
        qp.process_completions(0, &mut |c| {
            let Some(write) = writes.get_mut(&c.token) else {
                errors.push(format!("completion for unknown token {}", c.token));
                return;
            };
            let first_answer = write.acknowledged == 0 && !write.failed;
            if first_answer {
                *in_flight -= 1;
            } else {
                *duplicated += 1;
            }
            match c.result {
                Ok(()) => {
                    write.acknowledged += 1;
                    if write.acknowledged == 1 {
                        *acknowledged += 1;
                    }
                    durable.insert(write.slot, write.seed);
                }
                Err(err) => {
                    write.failed = true;
                    *failed += 1;
                    if errors.len() < 8 {
                        errors.push(err.to_string());
                    }
                }
            }
        })
    }

    /// Writes the caller was told succeeded.
    pub fn acknowledged(&self) -> u64 {
        self.acknowledged
    }

    /// Writes answered more than once (acknowledged twice, or acknowledged and failed).
    pub fn duplicated(&self) -> u64 {
        self.duplicated
    }

    /// Writes the caller was told failed.
    pub fn failed(&self) -> u64 {
        self.failed
    }

    /// True when every write has had its answer.
    pub fn settled(&self) -> bool {
        self.in_flight == 0
    }

    /// Reads back every slot with an acknowledged write through the driver and compares it
    /// with the last acknowledged data. Returns (blocks verified, acknowledged writes lost).
    pub fn verify(&mut self, mut idle: impl FnMut()) -> CliResult<(u64, u64)> {
        let mut verified = 0;
        let mut lost = 0;
        let slots: Vec<(u64, u64)> = self.durable.iter().map(|(&s, &d)| (s, d)).collect();
        for (slot, seed) in slots {
            let buf = self.pool.get().ok_or_else(|| {
                crate::error::CliError::DemoFailed(format!("{}: buffer pool empty", self.name))
            })?;
            self.qp
                .submit_read(&self.ns, slot * WRITE_BLOCKS, buf, u64::MAX)
                .map_err(|r| r.error)?;
            self.qp.commit()?;
            let mut read = None;
            for _ in 0..100_000 {
                self.qp.process_completions(0, &mut |c| read = Some(c));
                if read.is_some() {
                    break;
                }
                idle();
            }
            let completion = read.ok_or_else(|| {
                crate::error::CliError::DemoFailed(format!(
                    "{}: read of slot {slot} never completed",
                    self.name
                ))
            })?;
            completion.result?;
            let data = completion.buffer.expect("reads return their buffer");
            if data
                .as_slice()
                .iter()
                .enumerate()
                .all(|(i, &b)| b == pattern(seed, i))
            {
                verified += WRITE_BLOCKS;
            } else {
                lost += 1;
            }
        }
        Ok((verified, lost))
    }
}

//! The copy engine's device model for the simulated bus.
//!
//! Register writes take effect at once and in order. A doorbell makes the engine walk the ring
//! from `HEAD` to the new tail: read the descriptor, copy through a fixed scratch buffer in
//! chunks, write the completion, raise vector 0. With `latency_ns` set, each descriptor instead
//! completes `latency_ns` after the previous one, on a virtual-clock timer.
//!
//! Every value the driver writes is checked: invalid programming sets `STATUS.ERR` (see
//! [`spec`]) and is otherwise ignored. A copy whose source or destination faults stops at the
//! failing chunk and reports it in the completion: the IOMMU blocks the whole chunk, so a
//! buffer that is wholly unmapped or read-only is never written.

#![deny(unsafe_code)]

use std::any::Any;
use std::time::Duration;

use super::spec::{self, CompletionEntry, CompletionStatus, Descriptor};
use crate::backend::sim::{BarInfo, DeviceModel, ModelContext, ModelInfo, ResetKind};
use crate::error::{Error, Result};

/// Bytes the engine moves per DMA burst.
const CHUNK: usize = 16 * 1024;

/// What the engine has done since it was built (not cleared by resets).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyEngineStats {
    /// Descriptors completed with status OK.
    pub copies: u64,
    /// Bytes copied (including partial copies).
    pub bytes: u64,
    /// DMA accesses that faulted (data or ring).
    pub faults: u64,
    /// Descriptors rejected as bad.
    pub bad_descriptors: u64,
    /// Resets: `CTRL.RST`, FLR and bus resets.
    pub resets: u64,
    /// Interrupts raised.
    pub interrupts: u64,
}

/// The simulated copy engine.
#[derive(Debug)]
pub struct CopyEngine {
    latency: Option<Duration>,
    ctrl: u32,
    status: u32,
    cause: u32,
    irq_mask: u32,
    ring_base: u64,
    ring_size: u32,
    completion_base: u64,
    tail: u32,
    head: u32,
    phase: bool,
    /// Bumped on every reset and disable, so that timers set before it are ignored.
    generation: u64,
    timer_pending: bool,
    scratch: Box<[u8]>,
    stats: CopyEngineStats,
}

/// Builds a copy engine from topology parameters: `latency_ns` (integer, optional).
pub fn factory(params: &toml::Table) -> Result<Box<dyn DeviceModel>> {
    let mut latency = None;
    for (key, value) in params {
        match (key.as_str(), value) {
            ("latency_ns", toml::Value::Integer(ns)) if *ns >= 0 => {
                latency = Some(Duration::from_nanos(*ns as u64)).filter(|d| !d.is_zero());
            }
            ("latency_ns", other) => {
                return Err(Error::Topology(format!(
                    "copy-engine: latency_ns must be a non-negative integer of nanoseconds, got {other}"
                )))
            }
            (_, other) => {
                return Err(Error::Topology(format!(
                    "copy-engine: unknown parameter {key} = {other} (known: latency_ns)"
                )))
            }
        }
    }
    Ok(Box::new(CopyEngine::new(latency)))
}

impl CopyEngine {
    /// An engine in its power-on state; `latency` delays each completion.
    pub fn new(latency: Option<Duration>) -> Self {
        CopyEngine {
            latency,
            ctrl: 0,
            status: 0,
            cause: spec::CAUSE_NONE,
            irq_mask: 0,
            ring_base: 0,
            ring_size: 0,
            completion_base: 0,
            tail: 0,
            head: 0,
            phase: true,
            generation: 0,
            timer_pending: false,
            scratch: vec![0; CHUNK].into_boxed_slice(),
            stats: CopyEngineStats::default(),
        }
    }

    /// Counters since construction.
    pub fn stats(&self) -> CopyEngineStats {
        self.stats
    }

    /// The `STATUS` register.
    pub fn status(&self) -> u32 {
        self.status
    }

    /// The `ERROR_CAUSE` register.
    pub fn error_cause(&self) -> u32 {
        self.cause
    }

    /// The latency per descriptor, if any.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
    }

    /// Returns every register to its power-on value and forgets pending timers.
    fn power_on(&mut self) {
        let (latency, generation) = (self.latency, self.generation);
        let scratch = std::mem::take(&mut self.scratch);
        let stats = self.stats;
        *self = CopyEngine {
            generation: generation + 1,
            scratch,
            stats,
            ..CopyEngine::new(latency)
        };
        self.stats.resets += 1;
    }

    fn halt(&mut self, cause: u32) {
        tracing::debug!(cause = spec::cause_name(cause), "copy engine halted");
        self.status = (self.status & !spec::STATUS_RDY) | spec::STATUS_ERR;
        self.cause = cause;
    }

    fn running(&self) -> bool {
        self.status == spec::STATUS_RDY
    }

    fn read32(&self, offset: usize) -> u32 {
        match offset {
            spec::ID => spec::ID_VALUE,
            spec::CTRL => self.ctrl,
            spec::STATUS => self.status,
            spec::IRQ_MASK => self.irq_mask,
            spec::RING_BASE => self.ring_base as u32,
            o if o == spec::RING_BASE + 4 => (self.ring_base >> 32) as u32,
            spec::RING_SIZE => self.ring_size,
            spec::COMPLETION_BASE => self.completion_base as u32,
            o if o == spec::COMPLETION_BASE + 4 => (self.completion_base >> 32) as u32,
            spec::HEAD => self.head,
            spec::ERROR_CAUSE => self.cause,
            _ => 0,
        }
    }

    /// Writes a ring register, refusing it while the engine is enabled.
    fn write_config(&mut self, apply: impl FnOnce(&mut Self)) {
        if self.ctrl & spec::CTRL_EN != 0 {
            self.halt(spec::CAUSE_CONFIG_WHILE_ENABLED);
        } else {
            apply(self);
        }
    }

    fn write32(&mut self, ctx: &mut ModelContext<'_>, offset: usize, value: u32) {
        let lo = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let hi = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            spec::CTRL => self.write_ctrl(value),
            spec::IRQ_MASK => self.irq_mask = value & spec::IRQ_MASK_COMPLETION,
            spec::RING_BASE => self.write_config(|s| s.ring_base = lo(s.ring_base)),
            o if o == spec::RING_BASE + 4 => self.write_config(|s| s.ring_base = hi(s.ring_base)),
            spec::COMPLETION_BASE => {
                self.write_config(|s| s.completion_base = lo(s.completion_base))
            }
            o if o == spec::COMPLETION_BASE + 4 => {
                self.write_config(|s| s.completion_base = hi(s.completion_base))
            }
            spec::RING_SIZE if !spec::valid_ring_size(value) => {
                self.halt(spec::CAUSE_BAD_RING_SIZE)
            }
            spec::RING_SIZE => self.write_config(|s| s.ring_size = value),
            spec::DOORBELL if !self.running() => {}
            spec::DOORBELL if value >= self.ring_size => self.halt(spec::CAUSE_BAD_DOORBELL),
            spec::DOORBELL => {
                self.tail = value;
                self.kick(ctx);
            }
            _ => {}
        }
    }

    fn write_ctrl(&mut self, value: u32) {
        if value & spec::CTRL_RST != 0 {
            self.power_on();
            return;
        }
        let was_enabled = self.ctrl & spec::CTRL_EN != 0;
        self.ctrl = value & spec::CTRL_EN;
        match (was_enabled, self.ctrl != 0) {
            (false, true) if self.status & spec::STATUS_ERR == 0 => {
                // Set, aligned to an entry, and the whole ring below 2^64, so that
                // `base + slot * entry` never overflows.
                let size = u64::from(self.ring_size);
                let ring_ok = |base: u64, entry: usize| {
                    let entry = entry as u64;
                    base != 0
                        && base.is_multiple_of(entry)
                        && base.checked_add(size * entry).is_some()
                };
                if spec::valid_ring_size(self.ring_size)
                    && ring_ok(self.ring_base, size_of::<Descriptor>())
                    && ring_ok(self.completion_base, size_of::<CompletionEntry>())
                {
                    (self.head, self.tail, self.phase) = (0, 0, true);
                    self.status = spec::STATUS_RDY;
                } else {
                    self.halt(spec::CAUSE_BAD_CONFIG);
                }
            }
            (true, false) => {
                self.status &= !spec::STATUS_RDY;
                (self.head, self.tail, self.phase) = (0, 0, true);
                self.generation += 1;
                self.timer_pending = false;
            }
            _ => {}
        }
    }

    /// Starts work on new descriptors: at once, or on a timer when there is a latency.
    fn kick(&mut self, ctx: &mut ModelContext<'_>) {
        match self.latency {
            Some(latency) => {
                if !self.timer_pending && self.head != self.tail {
                    self.timer_pending = true;
                    ctx.schedule(latency, self.generation);
                }
            }
            None => {
                while self.running() && self.head != self.tail {
                    self.process_one(ctx);
                }
            }
        }
    }

    /// Consumes the descriptor at `HEAD` and writes its completion.
    fn process_one(&mut self, ctx: &mut ModelContext<'_>) {
        let slot = u64::from(self.head);
        let desc_iova = self.ring_base + slot * size_of::<Descriptor>() as u64;
        let Ok(desc) = ctx.dma_read_pod::<Descriptor>(desc_iova) else {
            self.stats.faults += 1;
            return self.halt(spec::CAUSE_RING_FAULT);
        };
        let (status, bytes) = self.copy(ctx, &desc);
        let entry = CompletionEntry {
            tag: desc.tag,
            status: status.0,
            bytes,
            phase: u32::from(self.phase),
        };
        let entry_iova = self.completion_base + slot * size_of::<CompletionEntry>() as u64;
        if ctx.dma_write_pod(entry_iova, &entry).is_err() {
            self.stats.faults += 1;
            return self.halt(spec::CAUSE_RING_FAULT);
        }
        self.head = (self.head + 1) & (self.ring_size - 1);
        if self.head == 0 {
            self.phase = !self.phase;
        }
        if self.irq_mask & spec::IRQ_MASK_COMPLETION == 0
            && desc.flags & spec::DESC_FLAG_NO_IRQ == 0
        {
            self.stats.interrupts += 1;
            ctx.raise_interrupt(spec::COMPLETION_VECTOR);
        }
    }

    /// Copies one descriptor's data, returning the status and the bytes written.
    fn copy(&mut self, ctx: &mut ModelContext<'_>, desc: &Descriptor) -> (CompletionStatus, u32) {
        let len = u64::from(desc.len);
        let wraps = |iova: u64| iova.checked_add(len).is_none();
        if desc.len == 0
            || desc.len > spec::MAX_COPY_LEN
            || desc.flags & !spec::DESC_FLAGS_KNOWN != 0
            || desc.reserved != 0
            || wraps(desc.src)
            || wraps(desc.dst)
        {
            self.stats.bad_descriptors += 1;
            return (CompletionStatus::BAD_DESCRIPTOR, 0);
        }
        let mut done = 0u32;
        while done < desc.len {
            let n = (desc.len - done).min(CHUNK as u32);
            let chunk = &mut self.scratch[..n as usize];
            let at = u64::from(done);
            let status = if ctx.dma_read(desc.src + at, chunk).is_err() {
                CompletionStatus::READ_FAULT
            } else if ctx.dma_write(desc.dst + at, chunk).is_err() {
                CompletionStatus::WRITE_FAULT
            } else {
                done += n;
                self.stats.bytes += u64::from(n);
                continue;
            };
            self.stats.faults += 1;
            return (status, done);
        }
        self.stats.copies += 1;
        (CompletionStatus::OK, done)
    }
}

impl DeviceModel for CopyEngine {
    fn info(&self) -> ModelInfo {
        ModelInfo {
            vendor_id: spec::VENDOR_ID,
            device_id: spec::DEVICE_ID,
            class_code: spec::CLASS_CODE,
            revision: 1,
            bars: vec![BarInfo {
                index: spec::BAR,
                size: spec::BAR_SIZE,
            }],
            msix_vectors: spec::MSIX_VECTORS,
        }
    }

    fn mmio_read(&mut self, _ctx: &mut ModelContext<'_>, bar: u8, offset: u64, width: u8) -> u64 {
        let Ok(offset) = usize::try_from(offset) else {
            return 0;
        };
        match (bar, width) {
            (spec::BAR, 8) => {
                u64::from(self.read32(offset)) | (u64::from(self.read32(offset + 4)) << 32)
            }
            (spec::BAR, _) => u64::from(self.read32(offset)),
            _ => 0,
        }
    }

    fn mmio_write(
        &mut self,
        ctx: &mut ModelContext<'_>,
        bar: u8,
        offset: u64,
        width: u8,
        value: u64,
    ) {
        let Ok(offset) = usize::try_from(offset) else {
            return;
        };
        if bar != spec::BAR {
            return;
        }
        self.write32(ctx, offset, value as u32);
        if width == 8 {
            self.write32(ctx, offset + 4, (value >> 32) as u32);
        }
    }

    fn on_timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        if token != self.generation || !self.timer_pending {
            return;
        }
        self.timer_pending = false;
        if self.running() && self.head != self.tail {
            self.process_one(ctx);
            self.kick(ctx);
        }
    }

    fn reset(&mut self, kind: ResetKind) {
        tracing::debug!(?kind, "copy engine reset");
        self.power_on();
    }

    fn as_any(&self) -> &dyn Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(text: &str) -> toml::Table {
        text.parse().unwrap()
    }

    fn factory_error(text: &str) -> String {
        match factory(&params(text)) {
            Ok(_) => panic!("{text} accepted"),
            Err(err) => err.to_string(),
        }
    }

    #[test]
    fn factory_reads_latency_and_rejects_unknown_or_mistyped_params() {
        let model = factory(&params("latency_ns = 2500")).unwrap();
        let engine = model.as_any().downcast_ref::<CopyEngine>().unwrap();
        assert_eq!(engine.latency(), Some(Duration::from_nanos(2500)));
        assert_eq!(model.info().msix_vectors, 1);

        let err = factory_error("latency_ns = \"fast\"");
        assert!(
            err.contains("latency_ns") && err.contains("\"fast\""),
            "{err}"
        );
        let err = factory_error("latency_ns = -1");
        assert!(err.contains("-1"), "{err}");
        let err = factory_error("speed = 3");
        assert!(err.contains("unknown parameter speed = 3"), "{err}");
    }

    #[test]
    fn power_on_keeps_counters_and_the_scratch_buffer() {
        let mut engine = CopyEngine::new(None);
        engine.ring_size = 8;
        engine.status = spec::STATUS_ERR;
        engine.reset(ResetKind::FunctionLevel);
        assert_eq!((engine.ring_size, engine.status), (0, 0));
        assert_eq!(engine.stats().resets, 1);
        assert_eq!(engine.scratch.len(), CHUNK);
        assert_eq!(engine.generation, 1);
    }
}

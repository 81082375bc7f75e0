//! The controller: registers (Base 2.0 "Controller Properties"), enabling and resetting
//! ("Controller Initialization", "Controller Reset"), timers and doorbells. The work a
//! doorbell or timer starts is in `processing`.

use std::time::Duration;

use userpci_framework::backend::sim::ModelContext;
use userpci_framework::Result;

use super::config::NvmeModelConfig;
use super::events::{ErrorLog, Events, SmartCounters};
use super::events::{TEMPERATURE, TEMPERATURE_WARNING};
use super::faults::{Faults, NvmeModelStats, Recovery};
use super::hostile::Hostile;
use super::namespace::Namespace;
use super::queues::{CompQueue, ShadowDoorbells, SubQueue};
use super::shared::{AERL, TIMER_COALESCE, TIMER_COMMAND, TIMER_SHUTDOWN};
use super::storage::CHUNK;
use crate::spec::log::AsyncEvent;
use crate::spec::queue::{IOCQES, IOSQES};
use crate::spec::registers::{self as regs, Aqa, Cap, Cc, Csts, Vs};

/// `CAP.MPSMAX`: 64 KiB pages, as QEMU.
pub(super) const MPSMAX: u8 = 4;

const TIMER_READY_ON: u64 = 1;
const TIMER_READY_OFF: u64 = 2;
const GENERATION_BITS: u32 = 40;

/// The settable features (reset to defaults by every reset).
#[derive(Clone, Copy, Debug)]
pub(super) struct Features {
    /// Number of Queues granted (zero-based NSQA, NCQA); `None` until Set Features.
    pub(super) queues: Option<(u16, u16)>,
    /// An I/O queue has been created since the last reset: Number of Queues is fixed.
    pub(super) queues_created: bool,
    /// Interrupt Coalescing, as set.
    pub(super) coalescing: u32,
    /// Asynchronous Event Configuration, as set.
    pub(super) async_config: u32,
    /// Composite Temperature over threshold, kelvins.
    pub(super) temperature_over: u16,
    /// Composite Temperature under threshold, kelvins.
    pub(super) temperature_under: u16,
}

impl Default for Features {
    fn default() -> Self {
        Features {
            queues: None,
            queues_created: false,
            coalescing: 0,
            async_config: 0,
            temperature_over: TEMPERATURE_WARNING,
            temperature_under: 0,
        }
    }
}

impl Features {
    /// The Composite Temperature is at or past a threshold (SMART Critical Warning bit 1).
    pub(super) fn temperature_warning(&self) -> bool {
        TEMPERATURE >= self.temperature_over || TEMPERATURE <= self.temperature_under
    }
}

/// A simulated NVMe controller; see the module documentation of [`super`].
#[derive(Debug)]
pub struct NvmeModel {
    pub(super) config: NvmeModelConfig,
    pub(super) cap: Cap,
    pub(super) cc: Cc,
    pub(super) rdy: bool,
    /// Fatal status the controller reached by itself (a failed enable, a queue it could not
    /// access); injected fatal states are in `faults`.
    pub(super) cfs: bool,
    pub(super) shst: u8,
    pub(super) aqa: Aqa,
    pub(super) asq: u64,
    pub(super) acq: u64,
    pub(super) intms: u32,
    /// Memory page size from `CC.MPS` at enable.
    pub(super) page: u64,
    /// Bumped by every reset and enable, so older timers are ignored.
    pub(super) generation: u64,
    pub(super) sqs: Vec<Option<SubQueue>>,
    pub(super) cqs: Vec<Option<CompQueue>>,
    pub(super) features: Features,
    pub(super) events: Events,
    pub(super) shadow: Option<ShadowDoorbells>,
    pub(super) namespaces: Vec<Namespace>,
    pub(super) faults: Faults,
    /// The hostile-write hook (tests).
    pub(super) hostile: Hostile,
    pub(super) stats: NvmeModelStats,
    pub(super) error_log: ErrorLog,
    pub(super) smart: SmartCounters,
    /// Fetch order of latency-mode commands.
    pub(super) sequence: u64,
    /// One memory page of bounce space (file backing, write verification).
    pub(super) scratch: Box<[u8]>,
}

impl NvmeModel {
    /// A controller in its power-on state (disabled), with fresh namespaces.
    pub fn new(config: NvmeModelConfig) -> Result<Self> {
        config.validate()?;
        let cap = Cap::new()
            .with_mqes(config.mqes)
            .with_cqr(true)
            .with_to(config.timeout_500ms)
            .with_dstrd(config.dstrd)
            .with_css(Cap::CSS_NVM)
            .with_mpsmin(0)
            .with_mpsmax(MPSMAX);
        let namespaces = Namespace::create_all(&config)?;
        let queues = usize::from(config.max_queues) + 1;
        Ok(NvmeModel {
            cap,
            cc: Cc::new(),
            rdy: false,
            cfs: false,
            shst: Csts::SHST_NORMAL,
            aqa: Aqa(0),
            asq: 0,
            acq: 0,
            intms: 0,
            page: 4096,
            generation: 0,
            sqs: (0..queues).map(|_| None).collect(),
            cqs: (0..queues).map(|_| None).collect(),
            features: Features::default(),
            events: Events::new(),
            shadow: None,
            namespaces,
            faults: Faults::default(),
            hostile: Hostile::default(),
            stats: NvmeModelStats::default(),
            error_log: ErrorLog::default(),
            smart: SmartCounters::default(),
            sequence: 0,
            scratch: vec![0; CHUNK.max(4096 << MPSMAX)].into_boxed_slice(),
            config,
        })
    }

    /// The configuration the model was built with.
    pub fn config(&self) -> &NvmeModelConfig {
        &self.config
    }

    /// `CSTS` as the host reads it.
    pub fn csts(&self) -> Csts {
        Csts::new()
            .with_rdy(self.rdy)
            .with_cfs(self.cfs || self.faults.fatal.is_some())
            .with_shst(self.shst)
    }

    /// Doorbells are legal: enabled and ready.
    fn accepting(&self) -> bool {
        self.cc.en() && self.rdy
    }

    /// Commands are fetched, executed and completed.
    pub(super) fn processing(&self) -> bool {
        self.accepting() && !self.cfs && self.faults.fatal.is_none() && self.faults.hang.is_none()
    }

    fn token(&self, kind: u64, qid: u16) -> u64 {
        let generation = self.generation & ((1 << GENERATION_BITS) - 1);
        (generation << 24) | (u64::from(qid) << 8) | kind
    }

    pub(super) fn schedule(
        &self,
        ctx: &mut ModelContext<'_>,
        after: Duration,
        kind: u64,
        qid: u16,
    ) {
        ctx.schedule(after, self.token(kind, qid));
    }

    // ---- registers ----

    pub(super) fn read32(&self, offset: usize) -> u32 {
        match offset {
            regs::CAP => self.cap.0 as u32,
            o if o == regs::CAP + 4 => (self.cap.0 >> 32) as u32,
            regs::VS => Vs::new(1, 4, 0).0,
            regs::INTMS | regs::INTMC => self.intms,
            regs::CC => self.cc.0,
            regs::CSTS => self.csts().0,
            regs::AQA => self.aqa.0,
            regs::ASQ => self.asq as u32,
            o if o == regs::ASQ + 4 => (self.asq >> 32) as u32,
            regs::ACQ => self.acq as u32,
            o if o == regs::ACQ + 4 => (self.acq >> 32) as u32,
            // CMBLOC, CMBSZ and everything reserved read as zero; doorbells are write-only.
            _ => 0,
        }
    }

    pub(super) fn write32(&mut self, ctx: &mut ModelContext<'_>, offset: usize, value: u32) {
        let lo = |old: u64| (old & !0xffff_ffff) | u64::from(value);
        let hi = |old: u64| (old & 0xffff_ffff) | (u64::from(value) << 32);
        match offset {
            regs::INTMS => self.intms |= value,
            regs::INTMC => self.intms &= !value,
            regs::CC => self.write_cc(ctx, Cc(value)),
            regs::AQA => self.aqa = Aqa(value),
            regs::ASQ => self.asq = lo(self.asq),
            o if o == regs::ASQ + 4 => self.asq = hi(self.asq),
            regs::ACQ => self.acq = lo(self.acq),
            o if o == regs::ACQ + 4 => self.acq = hi(self.acq),
            o if o >= regs::DOORBELLS => self.doorbell(ctx, o, value),
            // CAP, VS, CSTS (NSSRO is not supported), NSSR (CAP.NSSRS is 0), CMB: read only.
            _ => {}
        }
    }

    fn write_cc(&mut self, ctx: &mut ModelContext<'_>, new: Cc) {
        let old = self.cc;
        self.cc = new;
        if self.faults.hang == Some(Recovery::FunctionReset) {
            // A controller this stuck does not react to CC at all.
            return;
        }
        match (old.en(), new.en()) {
            (false, true) => self.enable(ctx),
            (true, false) => self.controller_reset(ctx),
            _ => {}
        }
        if new.shn() != Cc::SHN_NONE && old.shn() == Cc::SHN_NONE {
            self.stats.shutdowns += 1;
            if self.config.shutdown_delay.is_zero() {
                // Nothing is volatile: shutdown processing completes at once.
                self.shst = Csts::SHST_COMPLETE;
            } else {
                self.shst = Csts::SHST_OCCURRING;
                self.schedule(ctx, self.config.shutdown_delay, TIMER_SHUTDOWN, 0);
            }
        } else if new.shn() == Cc::SHN_NONE {
            self.shst = Csts::SHST_NORMAL;
        }
    }

    /// The checks `CC.EN` 0 to 1 makes (QEMU's `nvme_start_ctrl` plus the entry sizes).
    fn configuration_valid(&self) -> bool {
        let cc = self.cc;
        let page = 4096u64 << cc.mps().min(15);
        let asqs = u64::from(self.aqa.asqs()) + 1;
        let acqs = u64::from(self.aqa.acqs()) + 1;
        self.aqa.asqs() != 0
            && self.aqa.acqs() != 0
            && self.asq.is_multiple_of(page)
            && self.acq.is_multiple_of(page)
            && self.asq.checked_add(asqs * 64).is_some()
            && self.acq.checked_add(acqs * 16).is_some()
            && cc.css() == Cc::CSS_NVM
            && cc.ams() == Cc::AMS_ROUND_ROBIN
            && (self.cap.mpsmin()..=self.cap.mpsmax()).contains(&cc.mps())
            && (cc.iosqes() == 0 || cc.iosqes() == IOSQES)
            && (cc.iocqes() == 0 || cc.iocqes() == IOCQES)
    }

    fn enable(&mut self, ctx: &mut ModelContext<'_>) {
        if self.rdy {
            self.stats.violations.enable_before_not_ready += 1;
        }
        self.generation += 1;
        self.rdy = false;
        if self.faults.hang.is_some() || self.faults.fatal == Some(Recovery::FunctionReset) {
            return;
        }
        if !self.configuration_valid() {
            self.cfs = true;
            return;
        }
        self.page = 4096 << self.cc.mps();
        let asqs = u32::from(self.aqa.asqs()) + 1;
        let acqs = u32::from(self.aqa.acqs()) + 1;
        self.sqs[0] = Some(SubQueue::new(self.asq, asqs, 0, false));
        let room = asqs as usize + usize::from(AERL) + 1;
        let mut admin_cq = CompQueue::new(self.acq, acqs, 0, true, room);
        admin_cq.sq_count = 1;
        self.cqs[0] = Some(admin_cq);
        if self.config.ready_delay.is_zero() {
            self.rdy = true;
        } else {
            self.schedule(ctx, self.config.ready_delay, TIMER_READY_ON, 0);
        }
    }

    /// Back to the state after power-on, minus the registers the host programs: every queue
    /// deleted, commands in flight dropped without completions, features at their defaults.
    pub(super) fn drop_state(&mut self) {
        self.generation += 1;
        self.sqs.iter_mut().for_each(|q| *q = None);
        self.cqs.iter_mut().for_each(|q| *q = None);
        self.features = Features::default();
        self.events.clear();
        self.shadow = None;
        self.shst = Csts::SHST_NORMAL;
    }

    fn controller_reset(&mut self, ctx: &mut ModelContext<'_>) {
        self.stats.controller_resets += 1;
        self.drop_state();
        self.faults.on_reset(false);
        self.cfs = false;
        if self.rdy && !self.config.ready_delay.is_zero() {
            self.schedule(ctx, self.config.ready_delay, TIMER_READY_OFF, 0);
        } else {
            self.rdy = false;
        }
    }

    /// A function-level or bus reset: power-on state; namespace data is kept.
    pub(super) fn function_reset(&mut self) {
        self.stats.function_resets += 1;
        self.drop_state();
        self.faults.on_reset(true);
        self.cc = Cc::new();
        self.rdy = false;
        self.cfs = false;
        self.aqa = Aqa(0);
        self.asq = 0;
        self.acq = 0;
        self.intms = 0;
        self.page = 4096;
    }

    pub(super) fn timer(&mut self, ctx: &mut ModelContext<'_>, token: u64) {
        let generation = self.generation & ((1 << GENERATION_BITS) - 1);
        if token >> 24 != generation {
            return;
        }
        let qid = ((token >> 8) & 0xffff) as u16;
        match token & 0xff {
            TIMER_READY_ON if self.faults.hang.is_none() => {
                self.rdy = self.cc.en();
                self.run(ctx);
            }
            TIMER_READY_OFF => self.rdy = false,
            TIMER_SHUTDOWN if self.shst == Csts::SHST_OCCURRING => {
                self.shst = Csts::SHST_COMPLETE;
            }
            TIMER_COMMAND => self.run(ctx),
            TIMER_COALESCE => {
                let Some(cq) = self.cqs.get_mut(usize::from(qid)).and_then(Option::as_mut) else {
                    return;
                };
                cq.coalescing.timer_armed = false;
                if cq.coalescing.unsignalled > 0 && self.faults.hang.is_none() {
                    cq.coalescing.unsignalled = 0;
                    let vector = cq.vector;
                    self.raise(ctx, vector);
                }
            }
            _ => {}
        }
    }

    // ---- doorbells ----

    fn doorbell(&mut self, ctx: &mut ModelContext<'_>, offset: usize, value: u32) {
        let stride = self.cap.doorbell_stride();
        let relative = offset - regs::DOORBELLS;
        if !relative.is_multiple_of(stride) {
            self.stats.violations.doorbell_invalid_register += 1;
            return;
        }
        let index = relative / stride;
        let completion = index % 2 == 1;
        if completion {
            self.stats.cq_doorbell_writes += 1;
        } else {
            self.stats.sq_doorbell_writes += 1;
        }
        if !self.accepting() {
            self.stats.violations.doorbell_while_disabled += 1;
            return;
        }
        let qid = index / 2;
        let exists = if completion {
            self.cqs.get(qid).is_some_and(Option::is_some)
        } else {
            self.sqs.get(qid).is_some_and(Option::is_some)
        };
        if !exists {
            self.stats.violations.doorbell_invalid_register += 1;
            self.doorbell_error(ctx, AsyncEvent::INFO_ERROR_INVALID_DOORBELL_REGISTER);
            return;
        }
        let qid = qid as u16;
        let valid = if completion {
            self.cq_head_doorbell(ctx, qid, value)
        } else {
            self.sq_tail_doorbell(ctx, qid, value)
        };
        if !valid {
            self.stats.violations.doorbell_invalid_value += 1;
            self.doorbell_error(ctx, AsyncEvent::INFO_ERROR_INVALID_DOORBELL_VALUE);
            return;
        }
        self.run(ctx);
    }

    fn sq_tail_doorbell(&mut self, ctx: &mut ModelContext<'_>, qid: u16, value: u32) -> bool {
        let shadow = self.shadow;
        let Some(sq) = self.sqs[usize::from(qid)].as_mut() else {
            return false;
        };
        if !sq.valid_tail(value) {
            return false;
        }
        sq.tail = value as u16;
        if let Some((shadow, slot)) = shadow.and_then(|s| Some((s, s.sq_slot(qid)?))) {
            if qid == 0 {
                // QEMU: hosts do not keep the admin queue's shadow; mirror the MMIO value.
                shadow.write_shadow(ctx, slot, value);
            } else if let Some(tail) = shadow.read(ctx, slot).filter(|&t| sq.valid_tail(t)) {
                sq.tail = tail as u16;
            }
        }
        true
    }

    fn cq_head_doorbell(&mut self, ctx: &mut ModelContext<'_>, qid: u16, value: u32) -> bool {
        let shadow = self.shadow;
        let Some(cq) = self.cqs[usize::from(qid)].as_mut() else {
            return false;
        };
        if !cq.valid_head(value) {
            return false;
        }
        cq.head = value as u16;
        if qid == 0 {
            if let Some((shadow, slot)) = shadow.and_then(|s| Some((s, s.cq_slot(0)?))) {
                shadow.write_shadow(ctx, slot, value);
            }
        }
        true
    }
}

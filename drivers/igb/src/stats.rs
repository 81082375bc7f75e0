//! Statistics: the device's clear-on-read counters (datasheet 8.19) read and accumulated in
//! software ([`crate::counters`] holds the totals), cleared at bring-up as 4.5.8 asks.

use userpci_framework::device::PciFunction;

use crate::counters::{DeviceStats, RawCounters};
use crate::shared::Shared;
use crate::spec::{queue, stats as reg};

/// A 64-bit octet counter: the low register first, then the high one (whose read completes
/// the pair; QEMU clears both on that read).
fn octet_pair<F: PciFunction>(s: &Shared<F>, low: usize, high: usize) -> (u32, u32) {
    let lo = s.read(low);
    (lo, s.read(high))
}

/// Reads every counter once: what the device counted since the last read.
fn read_raw<F: PciFunction>(s: &Shared<F>) -> RawCounters {
    let mut raw = RawCounters {
        gprc: s.read(reg::GPRC),
        gorc: octet_pair(s, reg::GORCL, reg::GORCH),
        bprc: s.read(reg::BPRC),
        mprc: s.read(reg::MPRC),
        gptc: s.read(reg::GPTC),
        gotc: octet_pair(s, reg::GOTCL, reg::GOTCH),
        mpc: s.read(reg::MPC),
        rnbc: s.read(reg::RNBC),
        crcerrs: s.read(reg::CRCERRS),
        rlec: s.read(reg::RLEC),
        ruc: s.read(reg::RUC),
        roc: s.read(reg::ROC),
        tpr: s.read(reg::TPR),
        tpt: s.read(reg::TPT),
        ..RawCounters::default()
    };
    for (q, d) in raw.rqdpc.iter_mut().enumerate() {
        *d = s.read(queue::RQDPC(q));
    }
    raw
}

/// 4.5.8: reads every counter (clearing it) and zeroes the totals.
pub(crate) fn clear<F: PciFunction>(s: &Shared<F>) {
    let _ = read_raw(s);
    *s.counters() = DeviceStats::default();
}

/// Reads the counters, adds them to the totals and returns the totals. A device that reads
/// all ones (gone) adds nothing.
pub(crate) fn update<F: PciFunction>(s: &Shared<F>) -> DeviceStats {
    let mut totals = s.counters();
    if s.read(crate::spec::regs::STATUS) != u32::MAX {
        totals.add_raw(&read_raw(s));
    }
    *totals
}

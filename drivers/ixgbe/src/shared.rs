//! What the device handle and its queues share: the function, its registers, the
//! accumulated hardware counters and the reset gate. Below every other piece of the driver
//! (link, interrupts, rings, bring-up, the device handle, the reset participant).

use std::sync::atomic::{AtomicU32, AtomicU64};
use std::sync::{Mutex, MutexGuard};

use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;

use crate::gate::ResetGate;
use crate::options::ResetHandler;
use crate::stats::{read_delta, DeviceStats, HwCounters};

/// What the device handle and its queues share.
pub(crate) struct Shared<F: PciFunction> {
    pub(crate) function: F,
    pub(crate) regs: F::Registers,
    pub(crate) device: PciAddress,
    /// Hardware counters accumulated in software (they clear on read).
    pub(crate) counters: Mutex<HwCounters>,
    /// Coordinated resets: whether the data path may touch the device, and the filter
    /// settings to restore (see [`crate::IxgbeParticipant`]).
    pub(crate) gate: ResetGate,
    /// Where a hung TX queue asks for a reset.
    pub(crate) reset_handler: Option<ResetHandler>,
    /// `LINKS` as the driver last learned it, and the link changes learned (`link.rs`).
    pub(crate) link_seen: AtomicU32,
    pub(crate) link_changes: AtomicU64,
}

impl<F: PciFunction> Shared<F> {
    pub(crate) fn clock(&self) -> &dyn Clock {
        self.function.clock().as_ref()
    }

    pub(crate) fn read(&self, offset: usize) -> u32 {
        self.regs.read32(offset)
    }

    pub(crate) fn write(&self, offset: usize, value: u32) {
        self.regs.write32(offset, value)
    }

    /// Read-modify-write: sets `set`, then clears `clear`.
    pub(crate) fn modify(&self, offset: usize, set: u32, clear: u32) {
        let value = self.read(offset);
        self.write(offset, (value | set) & !clear);
    }

    pub(crate) fn counters(&self) -> MutexGuard<'_, HwCounters> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// 4.6.5: reads every counter (clearing it) and zeroes the totals.
    pub(crate) fn clear_stats(&self) {
        let _ = read_delta(|offset| self.read(offset));
        *self.counters() = DeviceStats::default();
    }

    /// Reads the counters, adds them to the totals and returns the totals.
    pub(crate) fn update_stats(&self) -> DeviceStats {
        let mut totals = self.counters();
        let delta = read_delta(|offset| self.read(offset));
        totals.add(&delta);
        *totals
    }
}

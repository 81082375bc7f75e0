//! What the device handle, its queues and the reset participant share: the function, its
//! registers, the accumulated counters and the reset gate. Everything above it in the crate
//! reaches the device through here.

use std::sync::{Mutex, MutexGuard};

use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::{poll_until, Clock};

use crate::counters::DeviceStats;
use crate::error::{Error, Result};
use crate::gate::ResetGate;

/// The shared state of one 82576 function.
pub(crate) struct Shared<F: PciFunction> {
    pub(crate) function: F,
    pub(crate) regs: F::Registers,
    pub(crate) device: PciAddress,
    /// Hardware counters accumulated in software (they clear on read).
    pub(crate) counters: Mutex<DeviceStats>,
    /// Coordinated resets: whether the data path may touch the device, and the filter
    /// settings to restore.
    pub(crate) gate: ResetGate,
}

impl<F: PciFunction> Shared<F> {
    pub(crate) fn new(function: F, regs: F::Registers, filter_bits: u32) -> Self {
        let device = function.address();
        Shared {
            function,
            regs,
            device,
            counters: Mutex::default(),
            gate: ResetGate::new(filter_bits),
        }
    }

    pub(crate) fn clock(&self) -> &dyn Clock {
        self.function.clock().as_ref()
    }

    #[inline(always)]
    pub(crate) fn read(&self, offset: usize) -> u32 {
        self.regs.read32(offset)
    }

    #[inline(always)]
    pub(crate) fn write(&self, offset: usize, value: u32) {
        self.regs.write32(offset, value)
    }

    /// Read-modify-write: sets `set`, then clears `clear`.
    pub(crate) fn modify(&self, offset: usize, set: u32, clear: u32) {
        let value = self.read(offset);
        self.write(offset, (value | set) & !clear);
    }

    pub(crate) fn counters(&self) -> MutexGuard<'_, DeviceStats> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.counters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Polls `reg` until `done(value)`, at most `timeout` on the function's clock. A register
    /// reading all ones is a gone device. Fails with [`Error::Init`] naming `step`.
    pub(crate) fn wait(
        &self,
        reg: usize,
        timeout: std::time::Duration,
        step: &'static str,
        done: impl Fn(u32) -> bool,
    ) -> Result<u32> {
        poll_until(self.clock(), self.device, step, timeout, || {
            let v = self.read(reg);
            if v == u32::MAX {
                return Err(userpci_framework::Error::DeviceGone {
                    device: self.device,
                });
            }
            Ok(done(v).then_some(v))
        })
        .map_err(|source| Error::Init {
            device: self.device,
            step,
            source,
        })
    }
}

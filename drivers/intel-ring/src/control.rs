//! Stopping a queue before its buffers are freed, device-neutral: the registers are
//! parameters ([`QueueControl`]). A ring does this when it is dropped, so a buffer never goes
//! back to the pool while the device may still read or write it.

use std::time::Duration;

use userpci_framework::device::RegisterIo;
use userpci_framework::pci::PciAddress;
use userpci_framework::time::{poll_until, Clock};

/// A queue's enable register and how long the device may take to stop it.
///
/// On the 82599 and the 82576: `RXDCTL(n)` / `TXDCTL(n)` with `ENABLE` (bit 25).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueControl {
    /// Byte offset of the queue's control register (`RXDCTL(n)` / `TXDCTL(n)`).
    pub control_reg: usize,
    /// The enable bit in it.
    pub enable: u32,
    /// Deadline for the queue to read back disabled (and for a TX queue to drain first).
    pub stop_timeout: Duration,
}

/// The register access a ring needs to stop its queue.
pub(crate) struct Stopper<'a, R: RegisterIo> {
    pub(crate) regs: &'a R,
    pub(crate) clock: &'a dyn Clock,
    pub(crate) device: PciAddress,
    pub(crate) control: QueueControl,
}

impl<R: RegisterIo> Stopper<'_, R> {
    /// Clears the enable bit and waits until it reads 0. A register reading all ones (the
    /// device is gone) counts as stopped.
    pub(crate) fn disable(&self) -> userpci_framework::Result<()> {
        let QueueControl {
            control_reg,
            enable,
            stop_timeout,
        } = self.control;
        let value = self.regs.read32(control_reg);
        self.regs.write32(control_reg, value & !enable);
        poll_until(
            self.clock,
            self.device,
            "queue ENABLE=0 (queue stop)",
            stop_timeout,
            || {
                let v = self.regs.read32(control_reg);
                Ok((v == u32::MAX || v & enable == 0).then_some(()))
            },
        )
    }

    /// Waits until the head register equals the tail register (a TX queue has sent what it
    /// was given); all ones counts as drained.
    pub(crate) fn drain(&self, head_reg: usize, tail_reg: usize) -> userpci_framework::Result<()> {
        poll_until(
            self.clock,
            self.device,
            "head = tail (TX queue drain)",
            self.control.stop_timeout,
            || {
                let head = self.regs.read32(head_reg);
                Ok((head == u32::MAX || head == self.regs.read32(tail_reg)).then_some(()))
            },
        )
    }
}

//! Hostile replies: a test hook that sees, and may replace, what the fake kernel answers to
//! the device ioctls whose replies the backend decodes, for fuzzing that decoding.
//!
//! Set with [`FakeVfio::set_hostile`]; called with a [`FakeReply`] after the fake computed
//! its answer and before it is returned, with the fake's lock held (the hook must not call
//! the fake). The hook may change the answer in place, errors included.

use std::io;

use vfio_bindings::bindings::vfio;

use crate::pci::PciAddress;

/// One answer about to be returned, for the hostile hook to change.
#[derive(Debug)]
pub enum FakeReply<'a> {
    /// `VFIO_DEVICE_GET_INFO`.
    DeviceInfo {
        /// The function asked about.
        device: PciAddress,
        /// The answer.
        reply: &'a mut io::Result<vfio::vfio_device_info>,
    },
    /// `VFIO_DEVICE_GET_REGION_INFO` of region `index`.
    RegionInfo {
        /// The function asked about.
        device: PciAddress,
        /// The region.
        index: u32,
        /// The answer.
        reply: &'a mut io::Result<vfio::vfio_region_info>,
    },
    /// `VFIO_DEVICE_GET_IRQ_INFO` of IRQ index `index`.
    IrqInfo {
        /// The function asked about.
        device: PciAddress,
        /// The IRQ index.
        index: u32,
        /// The answer.
        reply: &'a mut io::Result<vfio::vfio_irq_info>,
    },
    /// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: the caller's buffer as the fake filled it, and
    /// the result (`ENOSPC` asks for a larger buffer, the count in the header).
    HotResetInfo {
        /// The function asked about.
        device: PciAddress,
        /// The caller's buffer.
        buf: &'a mut [u8],
        /// The result.
        result: &'a mut io::Result<()>,
    },
}

/// The hostile hook.
pub type FakeHostileHook = Box<dyn FnMut(FakeReply<'_>) + Send>;

/// Where the fake keeps the hook.
#[derive(Default)]
pub(super) struct HostileSlot(Option<FakeHostileHook>);

impl std::fmt::Debug for HostileSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "HostileSlot({})",
            if self.0.is_some() { "set" } else { "none" }
        )
    }
}

impl HostileSlot {
    /// A slot holding `hook`.
    pub(super) fn new(hook: Option<FakeHostileHook>) -> Self {
        HostileSlot(hook)
    }

    /// Offers an answer to the hook, if there is one.
    pub(super) fn offer(&mut self, reply: FakeReply<'_>) {
        if let Some(hook) = self.0.as_mut() {
            hook(reply);
        }
    }
}

//! Hostile writes: a test hook that sees, and may replace, what the 82599 model is about to
//! write into host memory or answer on a head-register read, for fuzzing the driver with
//! device data no correct device would produce.
//!
//! The hook is a closure set with [`super::IxgbeModel::set_hostile`]. It is called with a
//! [`DeviceWrite`] just before each write it covers and may change the value in place; the
//! model then writes (or returns) what the hook left. Only the content changes: the address
//! is the one the model would write, so a hostile device still writes only into its rings
//! (the simulated IOMMU checks that as always), and the model's own state (its head, its
//! ring ownership) is unchanged: it believes it wrote the true value.
//!
//! Covered: RX descriptor write-backs (advanced: 16 bytes, with `PKT_LEN` and
//! `STATUS_ERROR`), TX `DD` status write-backs, the TX head write-back value, and reads of
//! `TDH`/`RDH`. Deterministic: the model calls the hook in its processing order.

use std::cell::{Cell, RefCell};

/// One value the device is about to write or return, for the hostile hook to change.
#[derive(Debug)]
pub enum DeviceWrite<'a> {
    /// An advanced RX write-back of descriptor `slot` of queue `queue`: `pkt_info` (0..4),
    /// `rss_hash` (4..8), `status_error` (8..12), `length` (12..14), `vlan` (14..16).
    RxWriteback {
        /// The queue.
        queue: u16,
        /// The descriptor.
        slot: u32,
        /// The write-back as the device built it.
        desc: &'a mut [u8; 16],
    },
    /// The status dword (`STA.DD`) written into TX descriptor `slot` of `queue`.
    TxStatus {
        /// The queue.
        queue: u16,
        /// The descriptor.
        slot: u32,
        /// The dword.
        status: &'a mut u32,
    },
    /// The head written to the head write-back address of TX queue `queue`.
    TxHead {
        /// The queue.
        queue: u16,
        /// The head.
        head: &'a mut u32,
    },
    /// A read of `TDH(queue)` (`tx`) or `RDH(queue)`.
    HeadRead {
        /// The queue.
        queue: u16,
        /// True for `TDH`.
        tx: bool,
        /// The value read.
        value: &'a mut u32,
    },
}

/// The hostile hook: called before each covered write.
pub type HostileHook = Box<dyn FnMut(DeviceWrite<'_>) + Send>;

/// The hook (in a cell: the write paths borrow the model shared) and its use count.
#[derive(Default)]
pub(crate) struct Hostile {
    hook: RefCell<Option<HostileHook>>,
    offered: Cell<u64>,
}

impl std::fmt::Debug for Hostile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hostile")
            .field("hook", &self.hook.borrow().is_some())
            .field("offered", &self.offered.get())
            .finish()
    }
}

impl Hostile {
    /// Offers a write to the hook, if there is one.
    pub(crate) fn offer(&self, write: DeviceWrite<'_>) {
        if let Some(hook) = self.hook.borrow_mut().as_mut() {
            self.offered.set(self.offered.get() + 1);
            hook(write);
        }
    }

    /// Sets (or with `None` removes) the hook.
    pub(crate) fn set_hook(&mut self, hook: Option<HostileHook>) {
        *self.hook.get_mut() = hook;
    }

    /// How many writes and reads the hook was offered.
    pub(crate) fn offered(&self) -> u64 {
        self.offered.get()
    }

    /// True when a hook is set (callers copy data only then).
    pub(crate) fn active(&self) -> bool {
        self.hook.borrow().is_some()
    }

    /// `value` after the hook had its say on a 32-bit write or read made with `make`.
    pub(crate) fn u32(
        &self,
        mut value: u32,
        make: impl FnOnce(&mut u32) -> DeviceWrite<'_>,
    ) -> u32 {
        if self.hook.borrow().is_some() {
            self.offer(make(&mut value));
        }
        value
    }
}

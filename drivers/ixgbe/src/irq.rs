//! MSI-X interrupts (datasheet 7.3 "Interrupts", registers 8.2.3.5): one vector per RX queue
//! and one for link changes.
//!
//! - RX queue `i` → vector `i`: `IVAR` maps it (8.2.3.5.13), `EITR(i)` throttles it.
//!   `GPIE.EIAME` with `EIAM_EX(0)` makes a vector mask itself when its message is sent, and
//!   `EIAC` clears its cause at the same time, so an interrupt fires once per arming. A queue
//!   arms its vector (`EIMS`, write-1-to-set) only when it has found its ring empty and
//!   wants to sleep, and looks at the ring once more after arming
//!   ([`crate::RxQueue::rx_batch_or_arm`]): packets that arrived in between are delivered
//!   instead of waiting for an interrupt that will not come (ixy issue #21).
//! - The "other" causes → vector `rx_queues`, when the function has one more vector
//!   (`IVAR_MISC` bits 15:8, 8.2.3.5.14; Linux `ixgbe_set_ivar(adapter, -1, 1, v)`): only
//!   `EICR.LSC` is unmasked (with `EIMS.OTHER`, as Linux's `ixgbe_irq_enable` does). It is
//!   neither auto-cleared nor auto-masked (Linux leaves `OTHER` and `LSC` out of `EIAC`
//!   too): the driver reads the cause through `EICS` (which returns `EICR` without clearing
//!   it) and clears `LSC` by writing it to `EICR` ([`crate::IxgbeDevice::poll_link_change`]).
//!
//! The driver takes no interrupt for TX: it cleans the TX ring when it sends.
//!
//! After a function or bus reset (which clears all of it, and the coordinator masks MSI-X)
//! [`restore`] enables the same vectors again (they keep their eventfds) and programs the
//! same layout; then [`wake_all`] fires every vector once, so a core asleep on its vector
//! wakes and restarts its ring, and the link vector reports the link as it came back.

use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt};

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::regs;

/// The vectors of a device brought up with interrupts.
pub(crate) struct Msix {
    /// Vector `i` for RX queue `i`.
    pub(crate) rx: Vec<InterruptVector>,
    /// The link-change vector (`rx_queues`), when the function has it.
    pub(crate) link: Option<InterruptVector>,
    /// Throttle of the RX vectors.
    pub(crate) itr_us: u32,
}

impl Msix {
    /// Vectors enabled.
    fn count(&self) -> u16 {
        (self.rx.len() + usize::from(self.link.is_some())) as u16
    }

    /// The `EIMS` / `EICS` bits of the RX vectors.
    pub(crate) fn rx_mask(&self) -> u32 {
        ((1u64 << self.rx.len()) - 1) as u32
    }
}

/// Enables MSI-X (one vector per RX queue, one more for link changes when the function has
/// it) and programs the layout (see the module documentation). No RX cause is unmasked here:
/// a queue arms its vector when it wants to sleep.
pub(crate) fn init_msix<F: PciFunction>(
    s: &Shared<F>,
    rx_queues: u16,
    itr_us: u32,
) -> Result<Msix> {
    let available = s.function.msix_vector_count()?;
    if available < rx_queues {
        return Err(Error::InvalidOption {
            device: s.device,
            what: "RX queue count with interrupts",
            value: rx_queues.into(),
            expected: "at most the function's MSI-X vectors",
        });
    }
    let with_link = available > rx_queues;
    if !with_link {
        tracing::warn!(device = %s.device, available,
            "no MSI-X vector left for link changes: the link is polled");
    }
    let mut rx = s.function.enable_msix(rx_queues + u16::from(with_link))?;
    let link = with_link.then(|| rx.remove(usize::from(rx_queues)));
    let msix = Msix { rx, link, itr_us };
    program(s, &msix);
    Ok(msix)
}

/// After a reset: MSI-X enabled again with the same vectors (the backend keeps their
/// eventfds, so the handles the queues and the application hold still fire) and the same
/// layout programmed.
pub(crate) fn restore<F: PciFunction>(s: &Shared<F>, msix: &Msix) -> Result<()> {
    let vectors = s.function.enable_msix(msix.count())?;
    let same = vectors
        .iter()
        .zip(msix.rx.iter().chain(&msix.link))
        .all(|(now, before)| now.vector() == before.vector());
    if !same || vectors.len() != usize::from(msix.count()) {
        return Err(Error::InvalidOption {
            device: s.device,
            what: "MSI-X vectors after the reset",
            value: vectors.len() as u64,
            expected: "the vectors enabled at bring-up",
        });
    }
    program(s, msix);
    Ok(())
}

/// `GPIE`, `IVAR`, `EITR`, `EIAC`, `EIAM_EX(0)`, `IVAR_MISC` and the link cause's `EIMS`
/// bits, as the module documentation describes.
fn program<F: PciFunction>(s: &Shared<F>, msix: &Msix) {
    s.write(
        regs::GPIE,
        regs::GPIE_MSIX_MODE | regs::GPIE_PBA_SUPPORT | regs::GPIE_EIAME | regs::GPIE_OCD,
    );
    for q in 0..msix.rx.len() {
        let (ivar, shift) = regs::ivar_entry(q, false);
        let entry = (q as u32 & regs::IVAR_INT_ALLOC_MASK) | regs::IVAR_ALLOC_VAL;
        s.modify(ivar, entry << shift, (0xFF << shift) & !(entry << shift));
        s.write(regs::EITR(q), regs::eitr_interval(msix.itr_us));
    }
    let mask = msix.rx_mask();
    s.write(regs::EIAC, mask);
    s.write(regs::EIAM_EX(0), mask);
    if let Some(link) = &msix.link {
        let v = usize::from(link.vector());
        let entry = (v as u32 & regs::IVAR_INT_ALLOC_MASK) | regs::IVAR_ALLOC_VAL;
        s.modify(regs::IVAR_MISC, entry << 8, (0xFF << 8) & !(entry << 8));
        // Not throttled: link changes are rare.
        s.write(regs::EITR(v), 0);
    }
    // Any cause left over from before is stale.
    let _ = s.read(regs::EICR);
    if msix.link.is_some() {
        s.write(regs::EIMS, LINK_CAUSES);
    }
}

/// `EIMS` bits of the link vector: `LSC`, and `OTHER` as Linux sets it.
pub(crate) const LINK_CAUSES: u32 = regs::EICR_LSC | regs::EICR_OTHER;

/// Fires every vector once (after a recovery): each RX vector is armed (`EIMS`) and its
/// cause set (`EICS`), so it fires and masks itself again (auto-mask); the link cause is set
/// too. A core asleep on its vector, armed before the reset or gone to sleep during it,
/// wakes up, restarts its ring and arms again when it wants to sleep.
pub(crate) fn wake_all<F: PciFunction>(s: &Shared<F>, msix: &Msix) {
    let rx = msix.rx_mask();
    s.write(regs::EIMS, rx);
    let link = if msix.link.is_some() {
        regs::EICR_LSC
    } else {
        0
    };
    s.write(regs::EICS, rx | link);
}

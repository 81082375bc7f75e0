//! MSI-X interrupts for the RX queues (datasheet 7.3 "Interrupts", registers 8.2.3.5).
//!
//! One vector per RX queue: `IVAR` maps RX queue `i` to vector `i`, `EITR(i)` throttles it.
//! `GPIE.EIAME` with `EIAM_EX(0)` makes a vector mask itself when its message is sent, and
//! `EIAC` clears its cause at the same time, so an interrupt fires once per arming. A queue
//! arms its vector (`EIMS`, write-1-to-set) only when it has found its ring empty and wants
//! to sleep, and looks at the ring once more after arming ([`crate::RxQueue::rx_batch_or_arm`]):
//! packets that arrived in between are delivered instead of waiting for an interrupt that
//! will not come (ixy issue #21). The driver takes no interrupt for TX: it cleans the TX ring
//! when it sends.

use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt};

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::regs;

/// MSI-X with one vector per RX queue (7.3.1, 8.2.3.5): `GPIE` in MSI-X mode with
/// auto-mask, `IVAR` maps RX queue `i` to vector `i`, `EITR(i)` throttles it, `EIAC` and
/// `EIAM_EX(0)` make the cause clear and the vector mask itself when the message is sent.
/// No cause is unmasked here: a queue arms its vector when it wants to sleep.
pub(crate) fn init_msix<F: PciFunction>(
    s: &Shared<F>,
    rx_queues: u16,
    itr_us: u32,
) -> Result<Vec<InterruptVector>> {
    let available = s.function.msix_vector_count()?;
    if available < rx_queues {
        return Err(Error::InvalidOption {
            device: s.device,
            what: "RX queue count with interrupts",
            value: rx_queues.into(),
            expected: "at most the function's MSI-X vectors",
        });
    }
    let vectors = s.function.enable_msix(rx_queues)?;
    s.write(
        regs::GPIE,
        regs::GPIE_MSIX_MODE | regs::GPIE_PBA_SUPPORT | regs::GPIE_EIAME | regs::GPIE_OCD,
    );
    let mut mask = 0u32;
    for q in 0..usize::from(rx_queues) {
        let (ivar, shift) = regs::ivar_entry(q, false);
        let entry = (q as u32 & regs::IVAR_INT_ALLOC_MASK) | regs::IVAR_ALLOC_VAL;
        s.modify(ivar, entry << shift, (0xFF << shift) & !(entry << shift));
        s.write(regs::EITR(q), regs::eitr_interval(itr_us));
        mask |= 1 << q;
    }
    s.write(regs::EIAC, mask);
    s.write(regs::EIAM_EX(0), mask);
    // Any cause left over from before is stale.
    let _ = s.read(regs::EICR);
    Ok(vectors)
}

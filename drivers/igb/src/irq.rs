//! MSI-X interrupts for the RX queues (datasheet 7.3 interrupts, registers 8.8).
//!
//! One vector per RX queue: `IVAR` maps RX queue `i` to vector `i` (the 82576's layout: RX
//! queue `i < 8` in byte 0 of `IVAR(i)`), `EITR(i)` throttles it. `GPIE` selects MSI-X mode
//! with auto-mask (`EIAME`); `EIAC` clears a vector's cause and `EIAM` masks the vector when
//! its message is sent, so an interrupt fires once per arming. A queue arms its vector
//! (`EIMS`, write-1-to-set) only when it found its ring empty and wants to sleep, looks at the
//! ring once more after arming, and masks it again (`EIMC`) when it wakes: QEMU's model does
//! not implement `EIAM` (see [`crate::spec`]), and on hardware that write is a no-op because
//! the vector masked itself. The driver takes no interrupt for TX (it cleans when it sends)
//! and none for link changes (the "other" cause stays unmapped).

use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt};

use crate::error::{Error, Result};
use crate::shared::Shared;
use crate::spec::regs;

/// `GPIE` in MSI-X mode: one vector per cause group, PBA, auto-mask, and `ICR` cleared by
/// any read (no legacy interrupt is used).
pub(crate) const GPIE_MSIX: u32 =
    regs::GPIE_MSIX_MODE | regs::GPIE_PBA | regs::GPIE_EIAME | regs::GPIE_NSICR;

/// The `EIMS` / `EIMC` / `EIAC` / `EIAM` bit of MSI-X vector `vector`.
pub(crate) const fn vector_bit(vector: u16) -> u32 {
    1 << (vector as u32 & 0x1F)
}

/// `IVAR` value after mapping RX queue `queue` (`< 16`) to `vector` in `current`: the
/// queue's 8-bit entry replaced by `vector | VALID`, the other three entries kept.
pub(crate) const fn ivar_with_rx_vector(current: u32, queue: usize, vector: u16) -> u32 {
    let (_, shift) = regs::ivar_entry(queue, false);
    let entry = (vector as u32 & regs::IVAR_VECTOR_MASK) | regs::IVAR_VALID;
    (current & !(0xFF << shift)) | (entry << shift)
}

/// Enables MSI-X with one vector per RX queue and programs the device for it (7.3.2): no
/// cause is unmasked here.
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
    program(s, rx_queues, itr_us);
    Ok(vectors)
}

/// The device side of [`init_msix`], also used after a reset (the vectors stay as they
/// are).
pub(crate) fn program<F: PciFunction>(s: &Shared<F>, rx_queues: u16, itr_us: u32) {
    s.write(regs::EIMC, regs::EIMC_ALL);
    s.write(regs::GPIE, GPIE_MSIX);
    let mut mask = 0u32;
    for q in 0..rx_queues {
        let i = usize::from(q);
        let (ivar, _) = regs::ivar_entry(i, false);
        s.write(ivar, ivar_with_rx_vector(s.read(ivar), i, q));
        s.write(regs::EITR(i), regs::eitr_interval(itr_us));
        mask |= vector_bit(q);
    }
    s.write(regs::EIAC, mask);
    s.write(regs::EIAM, mask);
    // Any cause left over from before is stale.
    let _ = s.read(regs::EICR);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ivar_entries_follow_the_82576_layout() {
        // RX queue 0 -> vector 0: byte 0 of IVAR(0).
        assert_eq!(ivar_with_rx_vector(0, 0, 0), 0x80);
        // RX queue 3 -> vector 3 keeps what IVAR(3) held for TX queue 3 and queues 11.
        assert_eq!(ivar_with_rx_vector(0xAABB_CC00, 3, 3), 0xAABB_CC83);
        // RX queue 9 lives in byte 2 of IVAR(1).
        assert_eq!(regs::ivar_entry(9, false), (regs::IVAR(1), 16));
        assert_eq!(ivar_with_rx_vector(0, 9, 5), 0x0085_0000);
        // TX entries: byte 1 (queue < 8) and byte 3.
        assert_eq!(regs::ivar_entry(2, true), (regs::IVAR(2), 8));
        assert_eq!(regs::ivar_entry(10, true), (regs::IVAR(2), 24));
    }

    #[test]
    fn gpie_and_vector_bits() {
        assert_eq!(GPIE_MSIX, 0xC000_0011);
        assert_eq!(vector_bit(0), 1);
        assert_eq!(vector_bit(7), 0x80);
    }
}

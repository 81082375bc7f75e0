//! The checks of an RX write-back, apart from the ring so they can be tested on bytes.
//!
//! A write-back is what the device wrote: untrusted. [`check_writeback`] is total (any 16
//! bytes give a verdict, never a panic) and `Deliver(len)` always has `0 < len <= capacity`,
//! so no slice past the buffer is ever made.

use crate::desc::AdvRxWriteback;

/// Why a written-back descriptor is not delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// First descriptor of a packet spread over several (`EOP` clear).
    MultiDescriptorStart,
    /// A later descriptor of such a packet, up to and including its `EOP`.
    MultiDescriptorRest,
    /// `PKT_LEN` zero or larger than the buffer.
    BadLength,
    /// One of the MAC error bits set.
    MacError,
}

/// What to do with a written-back descriptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// A whole packet of this many bytes, within the buffer.
    Deliver(usize),
    /// Drop it (and give the buffer back to the device).
    Drop(DropReason),
}

/// Checks a write-back whose `DD` is set, for a buffer of `capacity` bytes. `discarding` is
/// true while inside a multi-descriptor packet; returns the verdict and the new `discarding`.
/// `mac_error_mask` holds the `status_error` bits that mean "MAC error" on this chip (82599:
/// `RXE`, bit 29; 82576: `RXE`, bit 31).
#[inline]
pub fn check_writeback(
    wb: &AdvRxWriteback,
    capacity: usize,
    discarding: bool,
    mac_error_mask: u32,
) -> (Verdict, bool) {
    if discarding {
        return (Verdict::Drop(DropReason::MultiDescriptorRest), !wb.eop());
    }
    if !wb.eop() {
        return (Verdict::Drop(DropReason::MultiDescriptorStart), true);
    }
    let len = usize::from(wb.length);
    if len == 0 || len > capacity {
        return (Verdict::Drop(DropReason::BadLength), false);
    }
    if wb.status_error & mac_error_mask != 0 {
        return (Verdict::Drop(DropReason::MacError), false);
    }
    (Verdict::Deliver(len), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The 82599's `RXE` (the datasheet's name; Linux `IXGBE_RXDADV_ERR_USE`).
    const RXE_82599: u32 = 1 << 29;
    /// The 82576's `RXE` (Linux `E1000_RXDEXT_STATERR_RXE`).
    const RXE_82576: u32 = 1 << 31;

    fn wb(bytes: [u8; 16]) -> AdvRxWriteback {
        bytemuck::cast(bytes)
    }

    /// A write-back with `status_error` and `length`, everything else zero.
    fn fixture(status_error: u32, length: u16) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[8..12].copy_from_slice(&status_error.to_le_bytes());
        b[12..14].copy_from_slice(&length.to_le_bytes());
        b
    }

    const DD_EOP: u32 = 0x3;

    fn check(status_error: u32, length: u16, capacity: usize) -> (Verdict, bool) {
        check_writeback(
            &wb(fixture(status_error, length)),
            capacity,
            false,
            RXE_82599,
        )
    }

    #[test]
    fn good_packet_is_delivered_with_its_length() {
        assert_eq!(check(DD_EOP, 60, 2048), (Verdict::Deliver(60), false));
        let (v, _) = check(DD_EOP, 2048, 2048);
        assert_eq!(v, Verdict::Deliver(2048), "exactly the buffer");
    }

    #[test]
    fn lengths_outside_the_buffer_are_dropped() {
        for len in [0u16, 2049, 9000, u16::MAX] {
            let (v, d) = check(DD_EOP, len, 2048);
            assert_eq!(v, Verdict::Drop(DropReason::BadLength), "length {len}");
            assert!(!d);
        }
        // A slot without a buffer (capacity 0) never delivers.
        let (v, _) = check(DD_EOP, 1, 0);
        assert_eq!(v, Verdict::Drop(DropReason::BadLength));
    }

    #[test]
    fn mac_errors_are_dropped() {
        let (v, _) = check(DD_EOP | RXE_82599, 60, 2048);
        assert_eq!(v, Verdict::Drop(DropReason::MacError));
        // The 82599's checksum error bits (30, 31) alone are not MAC errors.
        let (v, _) = check(DD_EOP | 0xC000_0000, 60, 2048);
        assert_eq!(v, Verdict::Deliver(60));
    }

    #[test]
    fn the_mac_error_bits_are_the_chips_own() {
        // Bit 29 is the 82576's TCPE (a checksum error, delivered) and bit 31 its RXE.
        let on_82576 = |status_error| {
            check_writeback(&wb(fixture(status_error, 60)), 2048, false, RXE_82576).0
        };
        assert_eq!(on_82576(DD_EOP | RXE_82599), Verdict::Deliver(60));
        assert_eq!(
            on_82576(DD_EOP | RXE_82576),
            Verdict::Drop(DropReason::MacError)
        );
        // And the other way round on the 82599: bit 31 is its IPE.
        assert_eq!(check(DD_EOP | RXE_82576, 60, 2048).0, Verdict::Deliver(60));
    }

    #[test]
    fn multi_descriptor_packets_are_dropped_up_to_their_eop() {
        // First part (EOP clear), middle part, last part (EOP): three drops, one counted.
        let c = |se, len, d| check_writeback(&wb(fixture(se, len)), 2048, d, RXE_82599);
        let (v, d) = c(0x1, 2048, false);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorStart), true)
        );
        let (v, d) = c(0x1, 2048, d);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorRest), true)
        );
        let (v, d) = c(DD_EOP, 100, d);
        assert_eq!(
            (v, d),
            (Verdict::Drop(DropReason::MultiDescriptorRest), false)
        );
        // The next packet is whole again.
        let (v, d) = c(DD_EOP, 100, d);
        assert_eq!((v, d), (Verdict::Deliver(100), false));
    }

    #[test]
    fn any_sixteen_bytes_give_a_verdict_within_bounds() {
        // A cheap deterministic sweep over patterns: no panic, and Deliver stays in bounds.
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&x.to_le_bytes());
            bytes[8..].copy_from_slice(&x.rotate_left(29).to_le_bytes());
            let capacity = (x >> 52) as usize; // 0..4096
            for discarding in [false, true] {
                for mask in [RXE_82599, RXE_82576] {
                    if let (Verdict::Deliver(len), _) =
                        check_writeback(&wb(bytes), capacity, discarding, mask)
                    {
                        assert!(len > 0 && len <= capacity);
                    }
                }
            }
        }
    }
}

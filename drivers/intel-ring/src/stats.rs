//! Per-ring software counters, kept by the ring itself (plain integers: one core owns a ring).

/// Software counters of one RX ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxRingStats {
    /// Packets handed to the caller.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Write-backs with a length of zero or larger than the buffer: dropped.
    pub bad_length: u64,
    /// Packets spread over several descriptors (`EOP` clear; unsupported): dropped.
    pub multi_descriptor: u64,
    /// Write-backs with one of the ring's MAC error bits set: dropped.
    pub mac_errors: u64,
    /// Descriptors the device skipped (`DD` clear while the next one has `DD` set): dropped.
    pub not_written: u64,
    /// Times the pool had no buffer to refill a descriptor; the packet waits in the ring.
    pub alloc_failures: u64,
}

impl RxRingStats {
    /// Every descriptor dropped because of a bad write-back.
    pub fn dropped(&self) -> u64 {
        self.bad_length + self.multi_descriptor + self.mac_errors + self.not_written
    }
}

/// Software counters of one TX ring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxRingStats {
    /// Packets placed in the ring.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets of length zero or above the ring's `max_len`: dropped (freed) unsent.
    pub invalid_length: u64,
    /// Descriptors whose buffers were freed after the device reported them done.
    pub cleaned: u64,
    /// Held-back write-backs asked for by the idle poll ([`crate::TxRing::clean_idle`]).
    pub idle_flushes: u64,
    /// Hangs found by [`crate::TxRing::check_stall`].
    pub hangs: u64,
}

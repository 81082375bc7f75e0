//! The statistics as data: the totals of the device's clear-on-read counters and how a read
//! is folded into them. A leaf; reading the registers is [`crate::stats`]'s job.

use crate::spec::queue::MAX_QUEUES;

/// Hardware counters of one RX queue.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueHwStats {
    /// `RQDPC`: frames dropped for want of a descriptor (`SRRCTL.DROP_EN`).
    pub rx_dropped: u64,
}

/// Totals of the device's counters since initialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// `GPRC`: good packets received.
    pub rx_packets: u64,
    /// `GORC`: good octets received (CRC included, as the datasheet counts them).
    pub rx_bytes: u64,
    /// `BPRC`: broadcast packets received.
    pub rx_broadcast: u64,
    /// `MPRC`: multicast packets received.
    pub rx_multicast: u64,
    /// `GPTC`: good packets transmitted.
    pub tx_packets: u64,
    /// `GOTC`: good octets transmitted.
    pub tx_bytes: u64,
    /// `MPC`: frames missed for want of packet buffer space.
    pub rx_missed: u64,
    /// `RNBC`: frames that found no free descriptor.
    pub rx_no_buffer: u64,
    /// `CRCERRS`.
    pub crc_errors: u64,
    /// `RLEC`: receive length errors.
    pub length_errors: u64,
    /// `RUC`: undersize frames received.
    pub rx_undersize: u64,
    /// `ROC`: oversize frames received.
    pub rx_oversize: u64,
    /// `TPR`: total packets received (good or bad).
    pub rx_total: u64,
    /// `TPT`: total packets transmitted.
    pub tx_total: u64,
    /// Per RX queue.
    pub queues: [QueueHwStats; MAX_QUEUES],
}

/// One read of every counter: what the device counted since the last read. The octet
/// counters come as their (low, high) register pair.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RawCounters {
    pub(crate) gprc: u32,
    pub(crate) gorc: (u32, u32),
    pub(crate) bprc: u32,
    pub(crate) mprc: u32,
    pub(crate) gptc: u32,
    pub(crate) gotc: (u32, u32),
    pub(crate) mpc: u32,
    pub(crate) rnbc: u32,
    pub(crate) crcerrs: u32,
    pub(crate) rlec: u32,
    pub(crate) ruc: u32,
    pub(crate) roc: u32,
    pub(crate) tpr: u32,
    pub(crate) tpt: u32,
    pub(crate) rqdpc: [u32; MAX_QUEUES],
}

/// A 64-bit octet counter from its (low, high) registers.
pub(crate) const fn octets((low, high): (u32, u32)) -> u64 {
    ((high as u64) << 32) | low as u64
}

impl DeviceStats {
    /// Adds one read of the counters to the totals. Wrapping: the totals of a long-running
    /// device never panic.
    pub(crate) fn add_raw(&mut self, raw: &RawCounters) {
        let add = |total: &mut u64, delta: u64| *total = total.wrapping_add(delta);
        add(&mut self.rx_packets, raw.gprc.into());
        add(&mut self.rx_bytes, octets(raw.gorc));
        add(&mut self.rx_broadcast, raw.bprc.into());
        add(&mut self.rx_multicast, raw.mprc.into());
        add(&mut self.tx_packets, raw.gptc.into());
        add(&mut self.tx_bytes, octets(raw.gotc));
        add(&mut self.rx_missed, raw.mpc.into());
        add(&mut self.rx_no_buffer, raw.rnbc.into());
        add(&mut self.crc_errors, raw.crcerrs.into());
        add(&mut self.length_errors, raw.rlec.into());
        add(&mut self.rx_undersize, raw.ruc.into());
        add(&mut self.rx_oversize, raw.roc.into());
        add(&mut self.rx_total, raw.tpr.into());
        add(&mut self.tx_total, raw.tpt.into());
        for (q, &d) in self.queues.iter_mut().zip(raw.rqdpc.iter()) {
            add(&mut q.rx_dropped, d.into());
        }
    }
}

/// Software counters of one RX queue handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RxQueueStats {
    /// Packets handed to the application.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Write-backs with a length of zero or larger than the buffer: dropped.
    pub bad_length: u64,
    /// Packets spread over several descriptors (`EOP` clear; unsupported): dropped.
    pub multi_descriptor: u64,
    /// Write-backs with a frame error bit set (`CE`, `SE`, `SEQ`, `CXE`, `RXE`): dropped.
    pub mac_errors: u64,
    /// Descriptors the device skipped (`DD` clear while a later one has `DD` set): dropped.
    pub not_written: u64,
    /// Times the pool had no buffer to refill a descriptor; the packet waits in the ring.
    pub alloc_failures: u64,
    /// Times the queue's interrupt was armed (interrupt mode).
    pub interrupts_armed: u64,
}

impl RxQueueStats {
    /// Every descriptor dropped because of a bad write-back.
    pub fn dropped(&self) -> u64 {
        self.bad_length + self.multi_descriptor + self.mac_errors + self.not_written
    }
}

/// Software counters of one TX queue handle.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TxQueueStats {
    /// Packets placed in the ring.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Packets of length zero or above [`crate::TX_MAX_LEN`]: dropped (freed) unsent.
    pub invalid_length: u64,
    /// Descriptors whose buffers were freed after the device reported them done.
    pub cleaned: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn octet_pairs_join_low_and_high() {
        assert_eq!(octets((0x8000_0000, 0)), 0x8000_0000);
        assert_eq!(octets((1, 2)), 0x2_0000_0001);
        assert_eq!(octets((u32::MAX, u32::MAX)), u64::MAX);
    }

    #[test]
    fn reads_accumulate_and_clear_on_read_is_respected() {
        // Two reads of clear-on-read counters: the totals are their sum.
        let first = RawCounters {
            gprc: 10,
            gorc: (640, 0),
            gptc: 7,
            gotc: (u32::MAX, 0),
            tpr: 11,
            rqdpc: {
                let mut d = [0; MAX_QUEUES];
                d[3] = 2;
                d
            },
            ..RawCounters::default()
        };
        let second = RawCounters {
            gprc: 5,
            gorc: (320, 0),
            gptc: 1,
            gotc: (2, 0),
            ..RawCounters::default()
        };
        let mut totals = DeviceStats::default();
        totals.add_raw(&first);
        totals.add_raw(&second);
        assert_eq!(totals.rx_packets, 15);
        assert_eq!(totals.rx_bytes, 960);
        assert_eq!(totals.tx_packets, 8);
        assert_eq!(totals.tx_bytes, u64::from(u32::MAX) + 2, "no 32-bit wrap");
        assert_eq!(totals.rx_total, 11);
        assert_eq!(totals.queues[3].rx_dropped, 2);
        assert_eq!(totals.queues[0].rx_dropped, 0);
    }

    #[test]
    fn totals_wrap_instead_of_panicking() {
        let mut totals = DeviceStats {
            rx_packets: u64::MAX,
            ..DeviceStats::default()
        };
        totals.add_raw(&RawCounters {
            gprc: 2,
            ..RawCounters::default()
        });
        assert_eq!(totals.rx_packets, 1);
    }
}

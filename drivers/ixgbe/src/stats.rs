//! Statistics: the device's clear-on-read counters accumulated in software (datasheet
//! 8.2.3.23, cleared as 4.6.5 asks by reading them), and the per-queue software counters of
//! the RX and TX queue handles (kept by the ring engine, `userpci_intel_ring`).
//!
//! A leaf apart from [`crate::spec`]: the counters are read through a register-read function
//! (`read_delta`); the shared device state accumulates them.

use userpci_intel_ring::{RxRingStats, TxRingStats};

use crate::spec::stats as reg;

/// Hardware counters of one statistics set (queue `i` is mapped to set `i` for `i < 16`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct QueueHwStats {
    /// `QPRC`: packets received.
    pub rx_packets: u64,
    /// `QBRC`: bytes received.
    pub rx_bytes: u64,
    /// `QPRDC`: packets dropped for want of a descriptor (with `SRRCTL.DROP_EN`).
    pub rx_dropped: u64,
    /// `QPTC`: packets transmitted.
    pub tx_packets: u64,
    /// `QBTC`: bytes transmitted.
    pub tx_bytes: u64,
}

/// Totals of the device's counters since initialisation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeviceStats {
    /// `GPRC`: good packets received.
    pub rx_packets: u64,
    /// `GORC`: good octets received.
    pub rx_bytes: u64,
    /// `GPTC`: good packets transmitted.
    pub tx_packets: u64,
    /// `GOTC`: good octets transmitted.
    pub tx_bytes: u64,
    /// Sum of `MPC(0..8)`: packets missed for want of packet buffer space.
    pub rx_missed: u64,
    /// `CRCERRS`.
    pub crc_errors: u64,
    /// `RLEC`: receive length errors.
    pub length_errors: u64,
    /// `RUC`: undersize frames received.
    pub rx_undersize: u64,
    /// `ROC`: oversize frames received.
    pub rx_oversize: u64,
    /// Per statistics set (= per queue for queues `0..16`).
    pub queues: [QueueHwStats; reg::QUEUE_STAT_SETS],
}

/// The accumulated totals, behind the device's lock.
pub(crate) type HwCounters = DeviceStats;

/// A 36-bit octet counter: the low register first (it latches the high one).
fn octets(read: &impl Fn(usize) -> u32, low: usize, high: usize) -> u64 {
    let lo = u64::from(read(low));
    let hi = u64::from(read(high) & reg::OCTETS_HIGH_MASK);
    (hi << 32) | lo
}

/// Reads every counter once with `read` (a register read): what the device counted since
/// the last read.
pub(crate) fn read_delta(read: impl Fn(usize) -> u32) -> DeviceStats {
    let mut d = DeviceStats {
        rx_packets: u64::from(read(reg::GPRC)),
        rx_bytes: octets(&read, reg::GORCL, reg::GORCH),
        tx_packets: u64::from(read(reg::GPTC)),
        tx_bytes: octets(&read, reg::GOTCL, reg::GOTCH),
        rx_missed: (0..8).map(|i| u64::from(read(reg::MPC(i)))).sum(),
        crc_errors: u64::from(read(reg::CRCERRS)),
        length_errors: u64::from(read(reg::RLEC)),
        rx_undersize: u64::from(read(reg::RUC)),
        rx_oversize: u64::from(read(reg::ROC)),
        queues: [QueueHwStats::default(); reg::QUEUE_STAT_SETS],
    };
    for (i, q) in d.queues.iter_mut().enumerate() {
        q.rx_packets = u64::from(read(reg::QPRC(i)));
        q.rx_bytes = octets(&read, reg::QBRC_L(i), reg::QBRC_H(i));
        q.rx_dropped = u64::from(read(reg::QPRDC(i)));
        q.tx_packets = u64::from(read(reg::QPTC(i)));
        q.tx_bytes = octets(&read, reg::QBTC_L(i), reg::QBTC_H(i));
    }
    d
}

impl DeviceStats {
    /// Adds `delta` to the totals (wrapping: totals of a long-running device never panic).
    pub fn add(&mut self, delta: &DeviceStats) {
        self.rx_packets = self.rx_packets.wrapping_add(delta.rx_packets);
        self.rx_bytes = self.rx_bytes.wrapping_add(delta.rx_bytes);
        self.tx_packets = self.tx_packets.wrapping_add(delta.tx_packets);
        self.tx_bytes = self.tx_bytes.wrapping_add(delta.tx_bytes);
        self.rx_missed = self.rx_missed.wrapping_add(delta.rx_missed);
        self.crc_errors = self.crc_errors.wrapping_add(delta.crc_errors);
        self.length_errors = self.length_errors.wrapping_add(delta.length_errors);
        self.rx_undersize = self.rx_undersize.wrapping_add(delta.rx_undersize);
        self.rx_oversize = self.rx_oversize.wrapping_add(delta.rx_oversize);
        for (t, d) in self.queues.iter_mut().zip(delta.queues.iter()) {
            t.rx_packets = t.rx_packets.wrapping_add(d.rx_packets);
            t.rx_bytes = t.rx_bytes.wrapping_add(d.rx_bytes);
            t.rx_dropped = t.rx_dropped.wrapping_add(d.rx_dropped);
            t.tx_packets = t.tx_packets.wrapping_add(d.tx_packets);
            t.tx_bytes = t.tx_bytes.wrapping_add(d.tx_bytes);
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
    /// Write-backs with `RXE` (a MAC error: CRC, length) set: dropped.
    pub mac_errors: u64,
    /// Descriptors the device skipped (`DD` clear while a later one has `DD` set): dropped.
    pub not_written: u64,
    /// Times the pool had no buffer to refill a descriptor; the packet waits in the ring.
    pub alloc_failures: u64,
    /// Times the queue's interrupt was armed (interrupt mode).
    pub interrupts_armed: u64,
}

impl RxQueueStats {
    /// The ring engine's counters plus the driver's own.
    pub(crate) fn new(ring: RxRingStats, interrupts_armed: u64) -> Self {
        RxQueueStats {
            packets: ring.packets,
            bytes: ring.bytes,
            bad_length: ring.bad_length,
            multi_descriptor: ring.multi_descriptor,
            mac_errors: ring.mac_errors,
            not_written: ring.not_written,
            alloc_failures: ring.alloc_failures,
            interrupts_armed,
        }
    }

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
    /// Packets of length zero or above [`crate::tx::TX_MAX_LEN`]: dropped (freed) unsent.
    pub invalid_length: u64,
    /// Descriptors whose buffers were freed after the device reported them done.
    pub cleaned: u64,
    /// Held-back write-backs the idle poll asked for (`TXDCTL.SWFLSH`).
    pub idle_flushes: u64,
    /// Hangs seen (`TDH` not moving with descriptors pending).
    pub hangs: u64,
}

impl From<TxRingStats> for TxQueueStats {
    fn from(ring: TxRingStats) -> Self {
        TxQueueStats {
            packets: ring.packets,
            bytes: ring.bytes,
            invalid_length: ring.invalid_length,
            cleaned: ring.cleaned,
            idle_flushes: ring.idle_flushes,
            hangs: ring.hangs,
        }
    }
}

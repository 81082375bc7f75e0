//! How to bring the device up, and the checks of those options. A leaf.

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::dma::BufferPool;
use userpci_framework::pci::PciAddress;

use crate::error::{Error, Result};
use crate::spec::regs::MSIX_VECTORS;

/// Queues of each direction this driver configures at most: the 82576 spreads RSS over eight
/// RX queues (Linux `IGB_MAX_RX_QUEUES`); it has sixteen, the upper eight for VMDq.
pub const MAX_QUEUES: u16 = 8;

/// Smallest and largest ring: `RDLEN` must be a multiple of 128 bytes (8 descriptors); 4096
/// is Linux's `IGB_MAX_RXD`.
pub const MIN_RING_SIZE: usize = 8;
/// See [`MIN_RING_SIZE`].
pub const MAX_RING_SIZE: usize = 4096;

/// MSI-X interrupts for the RX queues (one vector per RX queue, vector `i` for queue `i`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InterruptOptions {
    /// Minimum interval between two interrupts of a vector (`EITR.INTERVAL`, 1 µs units, at
    /// most 8191 µs); 0 disables throttling.
    pub itr_us: u32,
}

impl Default for InterruptOptions {
    /// 40 µs (25,000 interrupts per second per queue at most), a common moderation value.
    fn default() -> Self {
        InterruptOptions { itr_us: 40 }
    }
}

/// How to bring the device up.
#[derive(Clone, Debug)]
pub struct IgbOptions {
    /// RX queues (1..=8). With more than one, RSS spreads flows over them.
    pub rx_queues: u16,
    /// TX queues (1..=8).
    pub tx_queues: u16,
    /// Descriptors per RX ring: a power of two, 8..=4096.
    pub rx_ring_size: usize,
    /// Descriptors per TX ring: as `rx_ring_size`.
    pub tx_ring_size: usize,
    /// Pool the RX rings are filled from. `None`: the driver creates one of
    /// [`IgbOptions::buffer_size`]-byte buffers, sized for every ring plus the same again
    /// for buffers in the application's hands.
    pub pool: Option<Arc<BufferPool>>,
    /// Buffer size of the pool the driver creates (at least 2048, so that a 1518-byte frame
    /// fits in one descriptor: `SRRCTL.BSIZEPACKET` is whole KiB).
    pub buffer_size: usize,
    /// Per-thread cache of the pool the driver creates.
    pub pool_cache: usize,
    /// Unicast and multicast promiscuous mode (`RCTL.UPE | RCTL.MPE`).
    pub promiscuous: bool,
    /// Program RSS (`MRQC`, `RETA`, `RSSRK`, `RXCSUM.PCSD`) when there is more than one RX
    /// queue.
    pub rss: bool,
    /// How long to wait for the link at the end of initialisation. Auto-negotiation takes
    /// about 0.5 s in QEMU's model and up to a few seconds on a real copper link.
    pub link_timeout: Duration,
    /// Fail with [`Error::LinkDown`] when the link is not up by then (otherwise warn and go
    /// on: the link may come up later).
    pub require_link: bool,
    /// MSI-X interrupts for the RX queues; `None`: polling only.
    pub interrupts: Option<InterruptOptions>,
}

impl Default for IgbOptions {
    fn default() -> Self {
        IgbOptions {
            rx_queues: 1,
            tx_queues: 1,
            rx_ring_size: 256,
            tx_ring_size: 256,
            pool: None,
            buffer_size: 2048,
            pool_cache: 64,
            promiscuous: true,
            rss: true,
            link_timeout: Duration::from_secs(5),
            require_link: false,
            interrupts: None,
        }
    }
}

impl IgbOptions {
    /// The buffer size the RX rings will use.
    pub fn effective_buffer_size(&self) -> usize {
        self.pool
            .as_ref()
            .map_or(self.buffer_size, |p| p.buffer_size())
    }
}

/// Checks `o` against what the driver and the 82576 accept.
pub(crate) fn validate(device: PciAddress, o: &IgbOptions) -> Result<()> {
    let invalid = |what, value: u64, expected| Error::InvalidOption {
        device,
        what,
        value,
        expected,
    };
    for (what, n) in [
        ("RX queue count", o.rx_queues),
        ("TX queue count", o.tx_queues),
    ] {
        if n == 0 || n > MAX_QUEUES {
            return Err(invalid(what, n.into(), "1..=8"));
        }
    }
    for (what, n) in [
        ("RX ring size", o.rx_ring_size),
        ("TX ring size", o.tx_ring_size),
    ] {
        if !n.is_power_of_two() || !(MIN_RING_SIZE..=MAX_RING_SIZE).contains(&n) {
            return Err(invalid(what, n as u64, "a power of two in 8..=4096"));
        }
    }
    let buffer_size = o.effective_buffer_size();
    if buffer_size < 2048 {
        return Err(invalid(
            "buffer size",
            buffer_size as u64,
            "at least 2048 (one 1518-byte frame per descriptor)",
        ));
    }
    if let Some(irq) = o.interrupts {
        if o.rx_queues > MSIX_VECTORS {
            return Err(invalid(
                "RX queue count with interrupts",
                o.rx_queues.into(),
                "at most the 82576's 10 MSI-X vectors",
            ));
        }
        if irq.itr_us > 0x1FFF {
            return Err(invalid(
                "interrupt interval (µs)",
                irq.itr_us.into(),
                "0..=8191",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> PciAddress {
        "0000:04:00.0".parse().unwrap()
    }

    #[test]
    fn the_defaults_are_valid() {
        validate(addr(), &IgbOptions::default()).unwrap();
    }

    #[test]
    fn out_of_range_options_are_refused_with_the_value() {
        let cases = [
            IgbOptions {
                rx_queues: 9,
                ..IgbOptions::default()
            },
            IgbOptions {
                tx_queues: 0,
                ..IgbOptions::default()
            },
            IgbOptions {
                rx_ring_size: 100,
                ..IgbOptions::default()
            },
            IgbOptions {
                tx_ring_size: 8192,
                ..IgbOptions::default()
            },
            IgbOptions {
                buffer_size: 1024,
                ..IgbOptions::default()
            },
            IgbOptions {
                interrupts: Some(InterruptOptions { itr_us: 10_000 }),
                ..IgbOptions::default()
            },
        ];
        for o in cases {
            let err = validate(addr(), &o).unwrap_err();
            assert!(
                matches!(err, Error::InvalidOption { .. }),
                "{o:?} gave {err}"
            );
            assert!(
                err.to_string().starts_with("0000:04:00.0: invalid "),
                "{err}"
            );
        }
    }
}

//! The driver-neutral port view ([`userpci_framework::net`]) over [`IgbDevice`] and its
//! queues, so that tools written against [`NetPort`] (pktgen, fwd) run on an 82576
//! unchanged. Every method forwards to the driver's own.

use std::sync::Arc;

use userpci_framework::device::PciFunction;
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::net::{NetPort, NetRx, NetTx, PortCounters, RxCounters, TxCounters};
use userpci_framework::pci::PciAddress;

use crate::device::IgbDevice;
use crate::error::Error;
use crate::rx::RxQueue;
use crate::tx::TxQueue;

impl<F: PciFunction> NetRx for RxQueue<F> {
    #[inline(always)]
    fn rx_batch(&mut self, out: &mut Vec<PoolBuffer>, max: usize) -> usize {
        RxQueue::rx_batch(self, out, max)
    }

    fn counters(&self) -> RxCounters {
        let s = self.stats();
        RxCounters {
            packets: s.packets,
            bytes: s.bytes,
            dropped: s.dropped(),
            alloc_failures: s.alloc_failures,
        }
    }
}

impl<F: PciFunction> NetTx for TxQueue<F> {
    #[inline(always)]
    fn tx_batch(&mut self, packets: &mut Vec<PoolBuffer>) -> usize {
        TxQueue::tx_batch(self, packets)
    }

    fn reclaim(&mut self) -> usize {
        TxQueue::reclaim(self)
    }

    fn in_flight(&self) -> usize {
        TxQueue::in_flight(self)
    }

    fn counters(&self) -> TxCounters {
        let s = self.stats();
        TxCounters {
            packets: s.packets,
            bytes: s.bytes,
            invalid_length: s.invalid_length,
            cleaned: s.cleaned,
        }
    }
}

impl<F: PciFunction> NetPort for IgbDevice<F> {
    type Rx = RxQueue<F>;
    type Tx = TxQueue<F>;
    type Error = Error;

    fn driver_name(&self) -> &'static str {
        "igb"
    }

    fn address(&self) -> PciAddress {
        IgbDevice::address(self)
    }

    fn mac_address(&self) -> [u8; 6] {
        IgbDevice::mac_address(self)
    }

    fn link_speed_mbps(&self) -> Option<u32> {
        let link = self.link();
        link.up.then(|| link.mbps())
    }

    fn pool(&self) -> &Arc<BufferPool> {
        IgbDevice::pool(self)
    }

    fn counters(&self) -> PortCounters {
        let s = self.stats();
        PortCounters {
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            rx_missed: s.rx_missed + s.queues.iter().map(|q| q.rx_dropped).sum::<u64>(),
        }
    }

    fn take_rx_queue(&self, queue: u16) -> Result<Self::Rx, Error> {
        IgbDevice::take_rx_queue(self, queue)
    }

    fn take_tx_queue(&self, queue: u16) -> Result<Self::Tx, Error> {
        IgbDevice::take_tx_queue(self, queue)
    }
}

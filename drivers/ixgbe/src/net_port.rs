//! The driver-neutral port view ([`userpci_framework::net`]) over [`IxgbeDevice`] and its
//! queues, so that tools written against [`NetPort`] run on an 82599 unchanged. Every method
//! forwards to the driver's own; nothing here is on a path of its own.

use std::sync::Arc;

use userpci_framework::device::PciFunction;
use userpci_framework::dma::{BufferPool, PoolBuffer};
use userpci_framework::net::{NetPort, NetRx, NetTx, PortCounters, RxCounters, TxCounters};
use userpci_framework::pci::PciAddress;

use crate::{Error, IxgbeDevice, RxQueue, TxQueue};

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

impl<F: PciFunction> NetPort for IxgbeDevice<F> {
    type Rx = RxQueue<F>;
    type Tx = TxQueue<F>;
    type Error = Error;

    fn driver_name(&self) -> &'static str {
        "ixgbe"
    }

    fn address(&self) -> PciAddress {
        IxgbeDevice::address(self)
    }

    fn mac_address(&self) -> [u8; 6] {
        IxgbeDevice::mac_address(self)
    }

    fn link_speed_mbps(&self) -> Option<u32> {
        let link = self.link();
        link.up.then(|| link.speed.map_or(0, |s| s.mbps()))
    }

    fn pool(&self) -> &Arc<BufferPool> {
        IxgbeDevice::pool(self)
    }

    fn counters(&self) -> PortCounters {
        let s = self.stats();
        PortCounters {
            rx_packets: s.rx_packets,
            rx_bytes: s.rx_bytes,
            tx_packets: s.tx_packets,
            tx_bytes: s.tx_bytes,
            rx_missed: s.rx_missed,
        }
    }

    fn take_rx_queue(&self, queue: u16) -> Result<Self::Rx, Error> {
        IxgbeDevice::take_rx_queue(self, queue)
    }

    fn take_tx_queue(&self, queue: u16) -> Result<Self::Tx, Error> {
        IxgbeDevice::take_tx_queue(self, queue)
    }
}

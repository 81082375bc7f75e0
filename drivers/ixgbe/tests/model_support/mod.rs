//! A minimal host for the 82599 model tests: raw register writes and hand-built descriptor
//! rings on the simulated bus, so that the model is checked against the datasheet and not
//! against the driver.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::Topology;
use userpci_framework::backend::sim::{ModelContext, ModelRegistry, SimBar, SimBus, SimFunction};
use userpci_framework::device::{InterruptVector, PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::{DmaArray, DmaDirection, DmaRegion};
use userpci_framework::pci::PciAddress;
use userpci_framework::time::Clock;
use userpci_ixgbe::model::{self, IxgbeModel, IxgbeModelStats};
use userpci_ixgbe::spec::desc::{AdvRxDesc, AdvRxWriteback, AdvTxDesc, AdvTxRead};
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;

/// Port A (and the only port of single-port buses).
pub const A: &str = "01:00.0";
/// Port B.
pub const B: &str = "01:00.1";

pub fn addr(a: &str) -> PciAddress {
    a.parse().unwrap()
}

/// The TOML of a bus with one root port and an 82599 port per `(address, params)`, where
/// `params` is the body of a TOML table (`"link_delay_us = 5\nmac = \"..\""`).
pub fn topology_toml(ports: &[(&str, &str)]) -> String {
    let mut text = String::from("[[root_ports]]\naddress = \"00:02.0\"\nsecondary_bus = 1\n");
    for (address, params) in ports {
        text.push_str(&format!(
            "\n[[functions]]\naddress = \"{address}\"\nmodel = \"ixgbe\"\n\
             reset_methods = [\"flr\", \"bus\"]\n[functions.params]\n{params}\n"
        ));
    }
    text
}

/// Builds the bus, or the error the factory gave.
pub fn try_bus(ports: &[(&str, &str)]) -> userpci_framework::Result<Arc<SimBus>> {
    let topology = Topology::from_toml_str(&topology_toml(ports))?;
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    SimBus::new(topology, &registry)
}

/// A bus with one port at [`A`] with `params`.
pub fn bus(params: &str) -> Arc<SimBus> {
    try_bus(&[(A, params)]).unwrap()
}

/// A bus with ports [`A`] and [`B`].
pub fn pair_bus(a: &str, b: &str) -> Arc<SimBus> {
    try_bus(&[(A, a), (B, b)]).unwrap()
}

/// An opened port.
pub struct Port {
    pub bus: Arc<SimBus>,
    pub address: PciAddress,
    pub function: SimFunction,
    pub regs: SimBar,
    pub vectors: Vec<InterruptVector>,
}

impl Port {
    /// Opens `address` with memory decoding, bus mastering and every MSI-X vector on.
    pub fn open(bus: &Arc<SimBus>, address: &str) -> Port {
        let address = addr(address);
        let function = bus.open(address).unwrap();
        function.set_bus_master(true).unwrap();
        let count = function.msix_vector_count().unwrap();
        let vectors = function.enable_msix(count).unwrap();
        let regs = function.map_bar(0).unwrap();
        Port {
            bus: bus.clone(),
            address,
            function,
            regs,
            vectors,
        }
    }

    pub fn r(&self, offset: usize) -> u32 {
        self.regs.read32(offset)
    }

    pub fn w(&self, offset: usize, value: u32) {
        self.regs.write32(offset, value);
    }

    pub fn set(&self, offset: usize, bits: u32) {
        self.w(offset, self.r(offset) | bits);
    }

    pub fn clear(&self, offset: usize, bits: u32) {
        self.w(offset, self.r(offset) & !bits);
    }

    pub fn now(&self) -> Duration {
        self.bus.clock().now()
    }

    pub fn sleep(&self, d: Duration) {
        self.bus.clock().sleep(d);
    }

    /// Polls `offset` every microsecond until `reg & mask == want`; the time it took, or
    /// `None` after `limit`.
    pub fn wait_for(
        &self,
        offset: usize,
        mask: u32,
        want: u32,
        limit: Duration,
    ) -> Option<Duration> {
        let start = self.now();
        loop {
            if self.r(offset) & mask == want {
                return Some(self.now() - start);
            }
            if self.now() - start >= limit {
                return None;
            }
            self.sleep(Duration::from_micros(1));
        }
    }

    /// Datasheet 4.6.3: mask interrupts, global reset, wait for it, mask again, wait for the
    /// EEPROM auto-read and the DMA initialisation.
    pub fn reset(&self) {
        self.w(EIMC, EIMC_ALL);
        self.w(CTRL, CTRL_RST_MASK);
        self.wait_for(CTRL, CTRL_RST_MASK, 0, Duration::from_millis(10))
            .expect("CTRL.RST did not clear");
        self.w(EIMC, EIMC_ALL);
        self.wait_for(EEC, EEC_ARD, EEC_ARD, Duration::from_millis(50))
            .expect("EEC.ARD");
        self.wait_for(
            RDRXCTL,
            RDRXCTL_DMAIDONE,
            RDRXCTL_DMAIDONE,
            Duration::from_millis(50),
        )
        .expect("RDRXCTL.DMAIDONE");
    }

    /// Datasheet 4.6.4: 10 Gb/s serial link, restart auto-negotiation, wait for the link.
    pub fn link_up(&self) {
        let autoc = self.r(AUTOC) & !AUTOC_LMS_MASK;
        self.w(AUTOC, autoc | AUTOC_LMS_10G_SERIAL | AUTOC_AN_RESTART);
        self.wait_for(LINKS, LINKS_UP, LINKS_UP, Duration::from_secs(1))
            .expect("link did not come up");
    }

    /// Reset, link up, receiver (broadcast accepted, CRC stripped) and transmitter enabled.
    pub fn bring_up(&self) {
        self.reset();
        self.link_up();
        self.set(FCTRL, FCTRL_BAM);
        self.set(HLREG0, HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN);
        self.set(RDRXCTL, RDRXCTL_CRCSTRIP);
        self.set(RXCTRL, RXCTRL_RXEN);
        self.set(DMATXCTL, DMATXCTL_TE);
    }

    /// Runs `f` on the model.
    pub fn model<R>(&self, f: impl FnOnce(&mut IxgbeModel) -> R) -> R {
        self.bus
            .with_model::<IxgbeModel, R>(self.address, f)
            .unwrap()
    }

    /// Runs `f` on the model with its context (traffic, link flaps).
    pub fn model_ctx<R>(&self, f: impl FnOnce(&mut IxgbeModel, &mut ModelContext<'_>) -> R) -> R {
        self.bus
            .with_model_ctx::<IxgbeModel, R>(self.address, f)
            .unwrap()
    }

    pub fn stats(&self) -> IxgbeModelStats {
        self.model(|m| m.stats())
    }

    /// Interrupts signalled on `vector` since the last call.
    pub fn interrupts(&self, vector: usize) -> u64 {
        self.vectors[vector].take().unwrap()
    }

    /// Routes RX queue `q` (`tx == false`) or TX queue `q` to MSI-X `vector` in `IVAR`.
    pub fn map_queue(&self, q: usize, tx: bool, vector: u32) {
        let (reg, shift) = ivar_entry(q, tx);
        let entry = (vector | IVAR_ALLOC_VAL) << shift;
        self.w(reg, (self.r(reg) & !(0xFF << shift)) | entry);
    }
}

/// An RX ring with one buffer per descriptor.
pub struct RxRing {
    pub q: usize,
    pub descs: DmaArray<AdvRxDesc>,
    pub bufs: DmaRegion,
    pub buf_size: usize,
    /// The next descriptor software looks at.
    pub next: usize,
    /// The value last written to `RDT`.
    pub tail: usize,
}

impl RxRing {
    /// Sets up queue `q` with `n` descriptors of `buf_kib` KiB buffers (advanced one-buffer
    /// descriptors, `DROP_EN` as given) and enables it; no descriptor is given yet.
    pub fn new(port: &Port, q: usize, n: usize, buf_kib: usize, drop_en: bool) -> RxRing {
        let space = port.function.dma_space();
        let descs: DmaArray<AdvRxDesc> = space
            .allocate_array(n, DmaDirection::Bidirectional)
            .unwrap();
        let buf_size = buf_kib * 1024;
        let bufs = space
            .allocate(n * buf_size, DmaDirection::FromDevice)
            .unwrap();
        for i in 0..n {
            descs.set(i, AdvRxDesc::new_read(bufs.iova_at(i * buf_size)));
        }
        port.w(RDBAL(q), descs.iova() as u32);
        port.w(RDBAH(q), (descs.iova() >> 32) as u32);
        port.w(RDLEN(q), (n * 16) as u32);
        let drop = if drop_en { SRRCTL_DROP_EN } else { 0 };
        port.w(
            SRRCTL(q),
            SRRCTL_DESCTYPE_ADV_ONEBUF | srrctl_bsizepacket(buf_size) | drop,
        );
        port.w(RDH(q), 0);
        port.w(RDT(q), 0);
        port.set(RXDCTL(q), RXDCTL_ENABLE);
        assert_ne!(
            port.r(RXDCTL(q)) & RXDCTL_ENABLE,
            0,
            "queue {q} did not enable"
        );
        RxRing {
            q,
            descs,
            bufs,
            buf_size,
            next: 0,
            tail: 0,
        }
    }

    /// Gives `count` more descriptors to the device (`RDT += count`).
    pub fn give(&mut self, port: &Port, count: usize) {
        self.tail = (self.tail + count) % self.descs.len();
        port.w(RDT(self.q), self.tail as u32);
    }

    /// The write-back of descriptor `i` (whatever is there).
    pub fn wb(&self, i: usize) -> AdvRxWriteback {
        self.descs.get(i).writeback()
    }

    /// `len` bytes of buffer `i`.
    pub fn data(&self, i: usize, len: usize) -> Vec<u8> {
        let mut out = vec![0; len];
        self.bufs.read_bytes(i * self.buf_size, &mut out);
        out
    }

    /// The next written-back descriptor and its data, re-armed for reuse (not given back).
    pub fn poll(&mut self) -> Option<(AdvRxWriteback, Vec<u8>)> {
        let i = self.next;
        let wb = self.wb(i);
        if !wb.dd() {
            return None;
        }
        let data = self.data(i, usize::from(wb.length).min(self.buf_size));
        self.descs
            .set(i, AdvRxDesc::new_read(self.bufs.iova_at(i * self.buf_size)));
        self.next = (i + 1) % self.descs.len();
        Some((wb, data))
    }
}

/// A TX ring with a 16 KiB buffer per descriptor.
pub struct TxRing {
    pub q: usize,
    pub descs: DmaArray<AdvTxDesc>,
    pub bufs: DmaRegion,
    pub tail: usize,
}

pub const TX_BUF: usize = 16 * 1024;

impl TxRing {
    /// Sets up queue `q` with `n` descriptors, `TXDCTL` thresholds `wthresh`, and enables it.
    pub fn new(port: &Port, q: usize, n: usize, wthresh: u32) -> TxRing {
        let space = port.function.dma_space();
        let descs: DmaArray<AdvTxDesc> = space
            .allocate_array(n, DmaDirection::Bidirectional)
            .unwrap();
        let bufs = space.allocate(n * TX_BUF, DmaDirection::ToDevice).unwrap();
        port.w(TDBAL(q), descs.iova() as u32);
        port.w(TDBAH(q), (descs.iova() >> 32) as u32);
        port.w(TDLEN(q), (n * 16) as u32);
        port.w(TDH(q), 0);
        port.w(TDT(q), 0);
        port.w(TXDCTL(q), txdctl_thresholds(32, 1, wthresh) | TXDCTL_ENABLE);
        TxRing {
            q,
            descs,
            bufs,
            tail: 0,
        }
    }

    /// Places `desc` at the tail (not yet given).
    pub fn place_desc(&mut self, desc: AdvTxRead) -> usize {
        let slot = self.tail;
        self.descs.set(slot, desc.into());
        self.tail = (slot + 1) % self.descs.len();
        slot
    }

    /// Copies `frame` into the tail slot's buffer and places a one-buffer packet descriptor
    /// (`EOP | IFCS | RS`).
    pub fn place(&mut self, frame: &[u8]) -> usize {
        let slot = self.tail;
        self.bufs.write_bytes(slot * TX_BUF, frame);
        let iova = self.bufs.iova_at(slot * TX_BUF);
        self.place_desc(AdvTxRead::packet(iova, frame.len() as u16))
    }

    /// The IOVA of slot `slot`'s buffer.
    pub fn buf(&self, slot: usize) -> u64 {
        self.bufs.iova_at(slot * TX_BUF)
    }

    /// Writes `TDT`.
    pub fn kick(&self, port: &Port) {
        port.w(TDT(self.q), self.tail as u32);
    }

    /// Places each frame, then kicks once.
    pub fn send(&mut self, port: &Port, frames: &[&[u8]]) {
        for frame in frames {
            self.place(frame);
        }
        self.kick(port);
    }

    pub fn dd(&self, slot: usize) -> bool {
        self.descs.get(slot).writeback().dd()
    }
}

/// A test frame: Ethernet to `dst` with an IPv4/UDP header and `len` bytes in all.
pub fn frame_to(dst: [u8; 6], len: usize, seed: u8) -> Vec<u8> {
    let mut out = vec![0u8; len];
    out[0..6].copy_from_slice(&dst);
    out[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0xEE, seed]);
    out[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
    out[14] = 0x45;
    out[23] = 17;
    out[26..30].copy_from_slice(&[10, 1, 0, seed]);
    out[30..34].copy_from_slice(&[10, 2, 0, 1]);
    out[34..36].copy_from_slice(&(1000 + u16::from(seed)).to_be_bytes());
    out[36..38].copy_from_slice(&2000u16.to_be_bytes());
    for (i, b) in out.iter_mut().enumerate().skip(42) {
        *b = (i as u8).wrapping_mul(7).wrapping_add(seed);
    }
    out
}

/// The default port MAC of the model.
pub const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];

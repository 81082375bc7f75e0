//! Shared helpers for the driver tests: a simulated bus with one or two 82599 model ports
//! (linked by a wire when there are two), the driver brought up on them, frames built and
//! checked byte for byte. Time is the bus's virtual clock throughout.

#![allow(dead_code)]

use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::Topology;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::dma::PoolBuffer;
use userpci_framework::pci::PciAddress;
use userpci_ixgbe::model::frame::{write_udp_frame, UdpFlow};
use userpci_ixgbe::model::{self, IxgbeModel, IxgbeModelStats};
use userpci_ixgbe::{IxgbeDevice, IxgbeOptions, RxQueue, TxQueue};

/// Port A.
pub const A: &str = "01:00.0";
/// Port B.
pub const B: &str = "01:00.1";
/// The MACs the ports' EEPROMs hold.
pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];

pub type Dev = IxgbeDevice<SimFunction>;

pub fn addr(a: &str) -> PciAddress {
    a.parse().unwrap()
}

fn mac_text(mac: [u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// A bus with the given ports; `extra` is appended to each port's parameter table.
pub fn bus_with(ports: &[(&str, [u8; 6])], extra: &str) -> Arc<SimBus> {
    let mut text = String::from("[[root_ports]]\naddress = \"00:02.0\"\nsecondary_bus = 1\n");
    for (address, mac) in ports {
        text.push_str(&format!(
            "\n[[functions]]\naddress = \"{address}\"\nmodel = \"ixgbe\"\n\
             reset_methods = [\"flr\", \"bus\"]\n[functions.params]\nmac = \"{}\"\n{extra}\n",
            mac_text(*mac)
        ));
    }
    let topology = Topology::from_toml_str(&text).unwrap();
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    SimBus::new(topology, &registry).unwrap()
}

/// Two ports linked by a wire.
pub fn pair_with(extra: &str) -> Arc<SimBus> {
    let bus = bus_with(&[(A, MAC_A), (B, MAC_B)], extra);
    model::connect(&bus, addr(A), addr(B)).unwrap();
    bus
}

pub fn pair() -> Arc<SimBus> {
    pair_with("")
}

/// Options for the tests: small rings, the link required within a second.
pub fn options(rx_queues: u16, tx_queues: u16) -> IxgbeOptions {
    IxgbeOptions {
        rx_queues,
        tx_queues,
        rx_ring_size: 64,
        tx_ring_size: 64,
        link_timeout: Duration::from_secs(1),
        require_link: true,
        ..IxgbeOptions::default()
    }
}

pub fn device(bus: &Arc<SimBus>, address: &str, options: IxgbeOptions) -> Dev {
    IxgbeDevice::new(bus.open(addr(address)).unwrap(), options).unwrap()
}

/// Both ports of a pair with the same options.
pub fn devices(bus: &Arc<SimBus>, options: IxgbeOptions) -> (Dev, Dev) {
    (device(bus, A, options.clone()), device(bus, B, options))
}

pub fn model<R>(bus: &SimBus, address: &str, f: impl FnOnce(&mut IxgbeModel) -> R) -> R {
    bus.with_model::<IxgbeModel, R>(addr(address), f).unwrap()
}

pub fn model_stats(bus: &SimBus, address: &str) -> IxgbeModelStats {
    model(bus, address, |m| m.stats())
}

/// Lets the wire deliver: advances virtual time past a few wire polls.
pub fn settle(bus: &SimBus) {
    bus.clock().advance(Duration::from_micros(50));
}

/// Flow `flow` from A to B.
pub fn flow(flow: u32, dst: [u8; 6], src: [u8; 6]) -> UdpFlow {
    UdpFlow {
        dst_mac: dst,
        src_mac: src,
        src_ip: 0x0A00_0001u32.wrapping_add(flow).to_be_bytes(),
        dst_ip: [10, 255, 0, 1],
        src_port: 1024 + (flow % 60000) as u16,
        dst_port: 4791,
    }
}

/// Frame number `seq` of flow `f`, `len` bytes without FCS.
pub fn frame(seq: u64, len: usize, f: &UdpFlow) -> Vec<u8> {
    let mut out = Vec::with_capacity(len.max(64));
    write_udp_frame(&mut out, len, f, seq);
    out
}

/// A pool buffer holding `bytes`.
pub fn packet(dev: &Dev, bytes: &[u8]) -> PoolBuffer {
    let mut buf = dev.pool().get().expect("pool buffer");
    buf.set_len(bytes.len());
    buf.as_mut_slice().copy_from_slice(bytes);
    buf
}

/// Sends every packet, cleaning as needed; panics if the ring stays full.
pub fn send_all(tx: &mut TxQueue<SimFunction>, packets: &mut Vec<PoolBuffer>) -> usize {
    let mut sent = 0;
    for _ in 0..10_000 {
        if packets.is_empty() {
            return sent;
        }
        sent += tx.tx_batch(packets);
    }
    panic!("{} packets could not be sent", packets.len());
}

/// Receives until `count` packets arrived (at most `limit` rounds, with `settle` between
/// empty polls), returning their bytes in order.
pub fn receive(
    bus: &SimBus,
    rx: &mut RxQueue<SimFunction>,
    count: usize,
    batch: usize,
) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut bufs = Vec::with_capacity(batch);
    for _ in 0..10_000 {
        if out.len() >= count {
            break;
        }
        if rx.rx_batch(&mut bufs, batch) == 0 {
            settle(bus);
        }
        out.extend(bufs.drain(..).map(|b| b.as_slice().to_vec()));
    }
    out
}

//! Shared helpers for the driver tests: a simulated bus with the NVMe controller model, buffers
//! with patterns, and polling helpers. Time is the bus's virtual clock throughout.

#![allow(dead_code)]

use std::sync::Arc;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_nvme::model::{self, NvmeModel, NvmeModelStats};
use userpci_nvme::{Controller, ControllerOptions, IoBuffer, IoCompletion, IoQueuePair};

pub const ADDR: &str = "01:00.0";

pub fn addr() -> PciAddress {
    ADDR.parse().unwrap()
}

/// A bus with one NVMe controller model configured by `params` (TOML key = value lines).
pub fn bus(params: &str) -> Arc<SimBus> {
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDR, "nvme")
        .params(params.parse().expect("model parameters"))
        .build()
        .unwrap();
    SimBus::new(topology, &registry).unwrap()
}

pub fn controller_with(bus: &Arc<SimBus>, options: ControllerOptions) -> Controller<SimFunction> {
    Controller::new(bus.open(addr()).unwrap(), options).unwrap()
}

pub fn controller(bus: &Arc<SimBus>) -> Controller<SimFunction> {
    controller_with(bus, ControllerOptions::default())
}

pub fn model_stats(bus: &SimBus) -> NvmeModelStats {
    bus.with_model(addr(), |m: &mut NvmeModel| m.stats())
        .unwrap()
}

/// The byte a pattern puts at `index` of a buffer written with `seed`.
pub fn pattern(seed: u64, index: usize) -> u8 {
    let x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(index as u64 / 7);
    (x >> 24) as u8 ^ index as u8
}

pub fn patterned(bus: &SimBus, len: usize, seed: u64) -> DmaBuffer {
    let mut buf = bus
        .dma_space()
        .allocate_buffer(len, DmaDirection::Bidirectional)
        .unwrap();
    fill(buf.as_mut_slice(), seed);
    buf
}

pub fn fill(bytes: &mut [u8], seed: u64) {
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = pattern(seed, i);
    }
}

pub fn check(bytes: &[u8], seed: u64) -> bool {
    bytes
        .iter()
        .enumerate()
        .all(|(i, &b)| b == pattern(seed, i))
}

pub fn zeroed(bus: &SimBus, len: usize) -> DmaBuffer {
    bus.dma_space()
        .allocate_buffer(len, DmaDirection::Bidirectional)
        .unwrap()
}

/// Polls until `count` requests completed (at most `limit` polls); returns them in order.
pub fn drain<T, B: IoBuffer>(
    qp: &mut IoQueuePair<SimFunction, T, B>,
    count: usize,
    limit: usize,
) -> Vec<IoCompletion<T, B>> {
    let mut out = Vec::new();
    for _ in 0..limit {
        if out.len() >= count {
            break;
        }
        qp.process_completions(0, &mut |c| out.push(c));
    }
    assert_eq!(out.len(), count, "completions after {limit} polls");
    out
}

/// Submits, polls and returns the one completion.
pub fn one<T, B: IoBuffer>(qp: &mut IoQueuePair<SimFunction, T, B>) -> IoCompletion<T, B> {
    drain(qp, 1, 100).pop().unwrap()
}

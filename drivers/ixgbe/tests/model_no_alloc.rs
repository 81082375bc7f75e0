//! The 82599 model's data path allocates nothing once warm: TX descriptors to the sink and
//! the wire, the wire poll, the generator, RSS, RX write-backs and MSI-X interrupts (the
//! driver's zero-allocation test runs the model on its own thread too).
//!
//! A counting global allocator counts, per thread, the calls made while counting is on.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_ixgbe::model::{connect, GeneratorConfig};
use userpci_ixgbe::spec::desc::AdvRxDesc;
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;
use userpci_ixgbe::spec::stats;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Hands every written-back descriptor of `rx` back to the device; how many there were.
fn recycle(port: &Port, rx: &mut RxRing) -> usize {
    let mut n = 0;
    while rx.wb(rx.next).dd() {
        let i = rx.next;
        rx.descs
            .set(i, AdvRxDesc::new_read(rx.bufs.iova_at(i * rx.buf_size)));
        rx.next = (i + 1) % rx.descs.len();
        n += 1;
    }
    if n > 0 {
        rx.tail = (rx.next + rx.descs.len() - 1) % rx.descs.len();
        port.w(RDT(rx.q), rx.tail as u32);
    }
    n
}

#[test]
fn the_warm_data_path_never_allocates() {
    let bus = pair_bus(
        "link_delay_us = 10\nwire_poll_ns = 1000",
        "link_delay_us = 10\nwire_poll_ns = 1000\nmac = \"02:00:00:00:00:0b\"",
    );
    let a = Port::open(&bus, A);
    let b = Port::open(&bus, B);
    connect(&bus, a.address, b.address).unwrap();
    a.bring_up();
    b.bring_up();
    for port in [&a, &b] {
        port.w(GPIE, GPIE_MSIX_MODE | GPIE_PBA_SUPPORT);
        port.map_queue(0, false, 1);
        port.map_queue(0, true, 2);
        port.w(EIAC, 0b110);
        port.w(EIMS, 0b110);
        port.w(
            MRQC,
            MRQC_MRQE_RSS | MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_UDP,
        );
    }
    let mut tx = TxRing::new(&a, 0, 64, 0);
    let mut rx_a = RxRing::new(&a, 0, 64, 2, false);
    let mut rx_b = RxRing::new(&b, 0, 64, 2, false);
    rx_a.give(&a, 63);
    rx_b.give(&b, 63);
    let config = GeneratorConfig {
        frame_len: 256,
        rate_pps: 2_000_000,
        flows: 16,
        ..GeneratorConfig::default()
    };
    a.model_ctx(|m, ctx| m.start_generator(ctx, config))
        .unwrap();
    let frames: Vec<Vec<u8>> = (0..8)
        .map(|i| frame_to([0x02, 0, 0, 0, 0, 0x0b], 300, i))
        .collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();

    let mut round = |received: &mut usize| {
        tx.send(&a, &refs);
        a.sleep(Duration::from_micros(4));
        *received += recycle(&a, &mut rx_a) + recycle(&b, &mut rx_b);
        a.r(stats::GPRC);
        b.r(stats::GPRC);
        a.interrupts(1);
        b.interrupts(1);
    };
    let mut received = 0;
    for _ in 0..20 {
        round(&mut received);
    }
    let mut measured = 0;
    let calls = allocator_calls(|| {
        for _ in 0..100 {
            round(&mut measured);
        }
    });
    assert_eq!(calls, 0, "allocator calls on a warm data path");
    assert!(
        measured >= 100 * (8 + 7),
        "traffic flowed: {measured} frames"
    );
    assert_eq!(b.stats().rx_delivered, 120 * 8);
}

//! 82599 model, two ports on a wire: what A transmits B receives, both ways, linked
//! explicitly ([`connect`]) or by the `wire` parameter; what a down link or a missing FCS
//! does to it.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_ixgbe::model::{connect, Wire, WireSide};
use userpci_ixgbe::spec::desc::{AdvTxRead, TXD_DCMD_IFCS};
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::STATUS;
use userpci_ixgbe::spec::stats;

const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0B];

fn pair(params: &str) -> (Port, Port) {
    let bus = pair_bus(
        &format!("link_delay_us = 10\n{params}"),
        &format!("link_delay_us = 10\nmac = \"02:00:00:00:00:0b\"\n{params}"),
    );
    (Port::open(&bus, A), Port::open(&bus, B))
}

#[test]
fn frames_sent_by_a_arrive_at_b_and_back() {
    let (a, b) = pair("wire_poll_ns = 2000");
    let wire = connect(&a.bus, a.address, b.address).unwrap();
    a.bring_up();
    b.bring_up();
    let mut tx_a = TxRing::new(&a, 0, 16, 0);
    let mut rx_b = RxRing::new(&b, 0, 16, 2, false);
    rx_b.give(&b, 15);
    let frames: Vec<Vec<u8>> = (0..4).map(|i| frame_to(MAC_B, 200 + i, i as u8)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(Vec::as_slice).collect();
    tx_a.send(&a, &refs);
    assert!(tx_a.dd(3));
    assert_eq!(wire.stats().in_flight, [4, 0]);
    // B takes them in on its poll timer (2 µs) without any register access.
    a.sleep(Duration::from_micros(2));
    assert_eq!(wire.stats().in_flight, [0, 0]);
    for frame in &frames {
        let (wb, data) = rx_b.poll().expect("frame on B");
        assert!(wb.dd() && wb.eop());
        assert_eq!(&data, frame);
    }
    assert_eq!(b.r(stats::GPRC), 4);
    assert_eq!(a.r(stats::GPTC), 4);

    // B answers; A receives on its next register access.
    let mut tx_b = TxRing::new(&b, 1, 8, 0);
    let mut rx_a = RxRing::new(&a, 0, 8, 2, false);
    rx_a.give(&a, 7);
    let reply = frame_to(MAC, 64, 42);
    tx_b.send(&b, &[&reply]);
    assert_eq!(a.r(RDH(0)), 1, "polled on the register access");
    assert_eq!(rx_a.poll().unwrap().1, reply);
    assert_eq!(wire.stats().sent, [4, 1]);
    assert_eq!(wire.stats().dropped, [0, 0]);
}

#[test]
fn the_wire_parameter_links_two_ports_by_name() {
    let (a, b) = pair("wire = \"model_wire_by_name\"");
    let side = |p: &Port| p.model(|m| m.wire().map(|w| (w.wire().name().to_string(), w.side())));
    assert_eq!(
        side(&a),
        Some(("model_wire_by_name".to_string(), WireSide::A))
    );
    assert_eq!(
        side(&b),
        Some(("model_wire_by_name".to_string(), WireSide::B))
    );
    a.bring_up();
    b.bring_up();
    let mut tx = TxRing::new(&b, 0, 8, 0);
    let mut rx = RxRing::new(&a, 0, 8, 2, false);
    rx.give(&a, 7);
    let frame = frame_to(MAC, 128, 1);
    tx.send(&b, &[&frame]);
    a.sleep(Duration::from_micros(10));
    assert_eq!(rx.poll().unwrap().1, frame);
    // The name is free again: a third port starts a new wire.
    let third = Wire::join("model_wire_by_name").unwrap();
    assert_eq!(third.side(), WireSide::A);
    let fourth = Wire::join("model_wire_by_name").unwrap();
    assert!(std::sync::Arc::ptr_eq(third.wire(), fourth.wire()));
    assert_eq!(fourth.side(), WireSide::B);
    assert!(
        Wire::attach(third.wire(), WireSide::A).is_err(),
        "side taken"
    );
}

#[test]
fn a_down_link_or_a_missing_fcs_loses_the_frame_at_the_receiver() {
    let (a, b) = pair("");
    connect(&a.bus, a.address, b.address).unwrap();
    a.bring_up();
    b.reset(); // B's link stays down
    let mut tx = TxRing::new(&a, 0, 8, 0);
    tx.send(&a, &[&frame_to(MAC_B, 64, 0)]);
    // B (receiver off: no poll timer) takes it in at its next register access.
    b.r(STATUS);
    assert_eq!(b.stats().rx_link_down, 1);
    b.link_up();
    b.set(RXCTRL, RXCTRL_RXEN);
    let mut rx = RxRing::new(&b, 0, 8, 2, false);
    rx.give(&b, 7);
    // Sent without IFCS: B sees a CRC error.
    let frame = frame_to(MAC_B, 64, 1);
    let slot = tx.tail;
    tx.bufs.write_bytes(slot * TX_BUF, &frame);
    let mut desc = AdvTxRead::packet(tx.buf(slot), 64);
    desc.cmd_type_len &= !TXD_DCMD_IFCS;
    tx.place_desc(desc);
    tx.kick(&a);
    b.sleep(Duration::from_micros(20));
    assert_eq!(b.r(stats::CRCERRS), 1);
    assert!(rx.poll().is_none());
    // A port without a peer drops what it sends (counted on the wire).
    let lone = Wire::new("lonely");
    let port = Wire::attach(&lone, WireSide::A).unwrap();
    a.model(|m| m.attach_wire(port));
    tx.send(&a, &[&frame]);
    assert_eq!(lone.stats().dropped, [1, 0]);
}

/// Issue 11: what crosses the wire never exceeds 10 Gb/s, preamble, SFD and inter-frame gap
/// included, and a saturated port reaches it. A keeps its TX ring full (its packet buffer
/// holds the backlog); B counts what it receives over one millisecond of virtual time.
#[test]
fn the_wire_carries_line_rate_at_most_with_preamble_and_gap() {
    use userpci_ixgbe::model::wire::{line_rate_pps, wire_time_ps, LINE_RATE_BPS};
    for size in [60usize, 1514] {
        let (a, b) = pair("wire_poll_ns = 100");
        connect(&a.bus, a.address, b.address).unwrap();
        a.bring_up();
        b.bring_up();
        let n = 256;
        let mut tx = TxRing::new(&a, 0, n, 0);
        let mut rx = RxRing::new(&b, 0, 1024, 2, true);
        rx.give(&b, 1023);
        let frame = frame_to(MAC_B, size, 1);
        let step = Duration::from_micros(1);
        let window = Duration::from_millis(1);
        let mut received = 0u64;
        let mut keep_full = |received: &mut u64| {
            let head = a.r(TDH(0)) as usize;
            let free = (head + n - tx.tail - 1) % n;
            for _ in 0..free {
                tx.place(&frame);
            }
            tx.kick(&a);
            let mut got = 0;
            while let Some((wb, _)) = rx.poll() {
                assert_eq!(usize::from(wb.length), size);
                got += 1;
            }
            rx.give(&b, got);
            *received += got as u64;
        };
        // Fill the packet buffer first, then measure from the first frame's arrival on.
        while received == 0 {
            keep_full(&mut received);
            a.sleep(step);
        }
        received = 0;
        let start = a.now();
        while a.now() - start < window {
            keep_full(&mut received);
            a.sleep(step);
        }
        let elapsed = a.now() - start;
        let frame_bits = wire_time_ps(size as u64 + 4) / 100;
        let bits = received * frame_bits;
        let line_bits = (u128::from(LINE_RATE_BPS) * elapsed.as_nanos() / 1_000_000_000) as u64;
        assert!(
            bits <= line_bits + frame_bits,
            "{size}-byte frames: {bits} bits in {elapsed:?}, line rate allows {line_bits}"
        );
        assert!(
            bits >= line_bits / 100 * 99,
            "{size}-byte frames: {bits} bits in {elapsed:?}, below line rate {line_bits}"
        );
        assert_eq!(b.stats().rx_missed + b.stats().rx_queue_drops, 0);
        assert!(a.stats().tx_wire_waits > 0, "the packet buffer filled up");
        // 14.88 Mpps of minimum frames, 812 743 pps of 1514-byte ones.
        let pps = line_rate_pps(size as u64 + 4);
        assert!(received <= pps / 1000 + 1, "{received} frames, {pps} pps");
    }
}

/// The generator is the far end of a 10 Gb/s link: asked for a frame every nanosecond, it
/// sends at line rate.
#[test]
fn the_generator_never_exceeds_line_rate() {
    use userpci_ixgbe::model::wire::line_rate_pps;
    use userpci_ixgbe::model::GeneratorConfig;
    let bus = bus("link_delay_us = 10\nsink_keep = 0");
    let port = Port::open(&bus, A);
    port.bring_up();
    let mut rx = RxRing::new(&port, 0, 1024, 2, true);
    rx.give(&port, 1023);
    let config = GeneratorConfig {
        frame_len: 1514,
        rate_pps: 1_000_000_000,
        ..GeneratorConfig::default()
    };
    port.model_ctx(|m, ctx| m.start_generator(ctx, config))
        .unwrap();
    port.sleep(Duration::from_micros(1000));
    let sent = port.model(|m| m.generator().sent);
    let most = line_rate_pps(1518) / 1000 + 1;
    assert!(
        sent <= most && sent >= most * 99 / 100,
        "{sent} frames in 1 ms"
    );
}

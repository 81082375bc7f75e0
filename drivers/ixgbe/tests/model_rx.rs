//! 82599 model, receive: the generator into descriptors, RSS (one Toeplitz value checked
//! against the datasheet's verification suite), L2 filtering, buffer spanning, CRC
//! stripping, length checks, the packet buffer (MPC, DROP_EN), statistics and interrupts.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_ixgbe::model::frame::{fcs, write_udp_frame, UdpFlow};
use userpci_ixgbe::model::regs::{MAXFRS, MCSTCTRL, MCSTCTRL_MFE, RXCSUM, RXCSUM_PCSD};
use userpci_ixgbe::model::rss::toeplitz;
use userpci_ixgbe::model::{GeneratorConfig, RxDrop, RxOutcome};
use userpci_ixgbe::spec::desc::{packet_type, rss_type, RXD_STAT_DD, RXD_STAT_EOP};
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;
use userpci_ixgbe::spec::stats;

/// The verification suite's key (datasheet 7.1.2.8.3).
const KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

fn up(params: &str) -> Port {
    let bus = bus(&format!("link_delay_us = 10\n{params}"));
    let port = Port::open(&bus, A);
    port.bring_up();
    port
}

fn inject(port: &Port, frame: &[u8]) -> RxOutcome {
    port.model_ctx(|m, ctx| m.receive_frame(ctx, frame))
}

/// RSS on: the key, RETA entry i = i % 16, the given field enables, hash in write-backs.
fn enable_rss(port: &Port, fields: u32) {
    for i in 0..10 {
        let k = &KEY[4 * i..4 * i + 4];
        port.w(RSSRK(i), u32::from_le_bytes([k[0], k[1], k[2], k[3]]));
    }
    for n in 0..32 {
        let e = |i: usize| ((4 * n + i) % 16) as u32;
        port.w(RETA(n), e(0) | e(1) << 8 | e(2) << 16 | e(3) << 24);
    }
    port.w(MRQC, MRQC_MRQE_RSS | fields);
    port.set(RXCSUM, RXCSUM_PCSD);
}

#[test]
fn the_generator_fills_descriptors_with_length_eop_dd_and_its_frames() {
    let port = up("generator = { frame_len = 128, count = 10, rate_pps = 1000000, flows = 4 }");
    let mut rx = RxRing::new(&port, 0, 16, 2, false);
    rx.give(&port, 15);
    port.sleep(Duration::from_micros(20));
    let config = GeneratorConfig {
        frame_len: 128,
        count: 10,
        flows: 4,
        ..GeneratorConfig::default()
    };
    let mut expected = Vec::new();
    for k in 0..10 {
        let (wb, data) = rx.poll().unwrap_or_else(|| panic!("frame {k} missing"));
        assert!(wb.dd() && wb.eop());
        assert_eq!(wb.length, 128);
        assert_eq!(wb.errors(), 0);
        assert_eq!(wb.packet_type(), packet_type::IPV4 | packet_type::UDP);
        assert_eq!(wb.rss_type(), rss_type::NONE, "RSS off");
        config.frame(k, MAC, &mut expected);
        assert_eq!(data, expected, "frame {k}");
    }
    assert!(rx.poll().is_none());
    assert_eq!(port.r(RDH(0)), 10);
    let generator = port.model(|m| m.generator());
    assert!(generator.finished() && !generator.running);
    assert_eq!(port.r(stats::GPRC), 10);
    assert_eq!(port.r(stats::GORCL), 10 * 132);
    assert_eq!(port.r(stats::GORCH), 0);
    assert_eq!(port.r(stats::QPRC(0)), 10);
    assert_eq!(port.r(stats::QBRC_L(0)), 10 * 128);
    assert_eq!(port.r(stats::GPRC), 0, "clear on read");
    assert_eq!(port.r(stats::QPRC(0)), 0);
}

#[test]
fn rss_hash_matches_the_verification_suite_and_picks_the_reta_queue() {
    let port = up("");
    enable_rss(&port, MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_UDP);
    // 66.9.149.187:2794 -> 161.142.100.80:1766 hashes to 0x51ccc178 with its ports.
    let mut frame = Vec::new();
    let flow = UdpFlow {
        dst_mac: MAC,
        src_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [66, 9, 149, 187],
        dst_ip: [161, 142, 100, 80],
        src_port: 2794,
        dst_port: 1766,
    };
    write_udp_frame(&mut frame, 100, &flow, 0);
    let queue = (0x51cc_c178u32 & 0x7F) as usize % 16;
    let mut rx = RxRing::new(&port, queue, 8, 2, false);
    rx.give(&port, 7);
    assert_eq!(
        inject(&port, &frame),
        RxOutcome::Accepted {
            queue: queue as u16
        }
    );
    let (wb, data) = rx.poll().expect("delivered on the RETA queue");
    assert_eq!(wb.rss_hash, 0x51cc_c178);
    assert_eq!(wb.rss_type(), rss_type::IPV4_UDP);
    assert_eq!(data, frame);
    // Without the UDP field enable, the IPv4 2-tuple hash of the same table.
    enable_rss(&port, MRQC_RSS_FIELD_IPV4);
    let queue2 = (0x323e_8fc2u32 & 0x7F) as usize % 16;
    let mut rx2 = RxRing::new(&port, queue2, 8, 2, false);
    rx2.give(&port, 7);
    inject(&port, &frame);
    let (wb, _) = rx2.poll().unwrap();
    assert_eq!((wb.rss_hash, wb.rss_type()), (0x323e_8fc2, rss_type::IPV4));
    // Without RXCSUM.PCSD the field is not the hash.
    port.clear(RXCSUM, RXCSUM_PCSD);
    inject(&port, &frame);
    let (wb, _) = rx2.poll().unwrap();
    assert_eq!((wb.rss_hash, wb.rss_type()), (0, rss_type::IPV4));
}

/// The 82599 moved some registers away from their 82598 addresses (the alias table in
/// `spec`'s docs). The model answers only the 82599 addresses, so a driver that configured
/// RSS or an address filter at an alias would see it do nothing here.
#[test]
fn the_82598_alias_addresses_are_not_answered() {
    let port = up("");
    // Each alias is plain storage and leaves the 82599 register alone.
    let pairs: &[(usize, usize)] = &[
        (0x05818, MRQC),
        (0x05C00 + 4 * 3, RETA(3)),
        (0x05C80 + 4 * 9, RSSRK(9)),
        (0x05400 + 8 * 5, RAL(5)),
        (0x05404 + 8 * 5, RAH(5)),
        (0x02100 + 4 * 2, SRRCTL(2)),
        (0x02200 + 4 * 2, DCA_RXCTRL(2)),
        (0x06030 + 0x40, stats::QPTC(1)),
    ];
    for &(alias, own) in pairs {
        let before = port.r(own);
        port.w(alias, 0x0000_0123);
        assert_eq!(port.r(alias), 0x123, "{alias:#07x} is storage");
        assert_eq!(port.r(own), before, "{alias:#07x} reached {own:#07x}");
    }
    // RSS configured at the aliases: not enabled, the frame goes to queue 0 unhashed.
    for i in 0..10 {
        let k = &KEY[4 * i..4 * i + 4];
        port.w(
            0x05C80 + 4 * i,
            u32::from_le_bytes([k[0], k[1], k[2], k[3]]),
        );
    }
    for n in 0..32 {
        port.w(0x05C00 + 4 * n, 0x0505_0505);
    }
    port.w(
        0x05818,
        MRQC_MRQE_RSS | MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_UDP,
    );
    port.set(RXCSUM, RXCSUM_PCSD);
    let mut frame = Vec::new();
    let flow = UdpFlow {
        dst_mac: MAC,
        src_mac: [2, 0, 0, 0, 0, 2],
        src_ip: [66, 9, 149, 187],
        dst_ip: [161, 142, 100, 80],
        src_port: 2794,
        dst_port: 1766,
    };
    write_udp_frame(&mut frame, 100, &flow, 0);
    let mut rx0 = RxRing::new(&port, 0, 8, 2, false);
    rx0.give(&port, 7);
    assert_eq!(inject(&port, &frame), RxOutcome::Accepted { queue: 0 });
    let (wb, _) = rx0.poll().expect("delivered on queue 0");
    assert_eq!((wb.rss_hash, wb.rss_type()), (0, rss_type::NONE));
    // The same at the 82599 addresses: hashed, and on the RETA's queue.
    enable_rss(&port, MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_UDP);
    let queue = (0x51cc_c178u32 & 0x7F) as usize % 16;
    assert_eq!(
        inject(&port, &frame),
        RxOutcome::Accepted {
            queue: queue as u16
        }
    );
    // An exact-address filter at the alias of RAL/RAH(5) does not accept its address.
    port.w(FCTRL, 0);
    let other = [0x02, 0xAA, 0, 0, 0, 1];
    let (ral, rah) = ral_rah_from_mac(other, true);
    port.w(0x05400 + 8 * 5, ral);
    port.w(0x05404 + 8 * 5, rah);
    assert_eq!(
        inject(&port, &frame_to(other, 64, 0)),
        RxOutcome::Dropped(RxDrop::Filtered)
    );
}

#[test]
fn generated_flows_spread_over_the_rss_queues() {
    let port = up("");
    enable_rss(&port, MRQC_RSS_FIELD_IPV4 | MRQC_RSS_FIELD_IPV4_UDP);
    let mut rings: Vec<RxRing> = (0..16)
        .map(|q| RxRing::new(&port, q, 64, 2, false))
        .collect();
    for ring in &mut rings {
        ring.give(&port, 63);
    }
    let config = GeneratorConfig {
        frame_len: 64,
        count: 256,
        rate_pps: 10_000_000,
        flows: 64,
        ..GeneratorConfig::default()
    };
    port.model_ctx(|m, ctx| m.start_generator(ctx, config))
        .unwrap();
    port.sleep(Duration::from_micros(30));
    let mut used = 0;
    let mut total = 0;
    for ring in &mut rings {
        let mut got = 0;
        while let Some((wb, data)) = ring.poll() {
            // The hash is the Toeplitz hash of the frame's 4-tuple.
            let mut input = [0u8; 12];
            input[..8].copy_from_slice(&data[26..34]);
            input[8..12].copy_from_slice(&data[34..38]);
            assert_eq!(wb.rss_hash, toeplitz(&KEY, &input));
            assert_eq!((wb.rss_hash & 0x7F) as usize % 16, ring.q);
            got += 1;
        }
        used += usize::from(got > 0);
        total += got;
    }
    assert_eq!(total, 256);
    assert!(used >= 8, "64 flows reached {used} of 16 queues");
}

#[test]
fn l2_filters_accept_own_and_listed_addresses_broadcast_and_multicast_as_configured() {
    let port = up("");
    port.w(FCTRL, 0);
    let mut rx = RxRing::new(&port, 0, 32, 2, false);
    rx.give(&port, 31);
    let other = [0x02, 0xAA, 0, 0, 0, 1];
    let multicast = [0x01, 0x00, 0x5e, 0x00, 0x12, 0x34];
    let filtered = RxOutcome::Dropped(RxDrop::Filtered);
    assert!(matches!(
        inject(&port, &frame_to(MAC, 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    assert_eq!(inject(&port, &frame_to(other, 64, 0)), filtered);
    assert_eq!(inject(&port, &frame_to([0xFF; 6], 64, 0)), filtered);
    assert_eq!(inject(&port, &frame_to(multicast, 64, 0)), filtered);
    // A second exact address.
    let (ral, rah) = ral_rah_from_mac(other, true);
    port.w(RAL(5), ral);
    port.w(RAH(5), rah);
    assert!(matches!(
        inject(&port, &frame_to(other, 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    // Broadcast with BAM, multicast through the MTA (MO = 0: address bits 47:36).
    port.w(FCTRL, FCTRL_BAM);
    assert!(matches!(
        inject(&port, &frame_to([0xFF; 6], 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    let index = (0x34usize << 4) | (0x12 >> 4);
    port.w(MTA(index >> 5), 1 << (index & 31));
    assert_eq!(
        inject(&port, &frame_to(multicast, 64, 0)),
        filtered,
        "MFE off"
    );
    port.w(MCSTCTRL, MCSTCTRL_MFE);
    assert!(matches!(
        inject(&port, &frame_to(multicast, 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    // Promiscuous modes.
    port.w(FCTRL, FCTRL_UPE | FCTRL_MPE);
    assert!(matches!(
        inject(&port, &frame_to([2, 9, 9, 9, 9, 9], 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    assert!(matches!(
        inject(&port, &frame_to([3, 9, 9, 9, 9, 9], 64, 0)),
        RxOutcome::Accepted { .. }
    ));
    assert_eq!(port.r(stats::BPRC), 1);
    assert_eq!(port.r(stats::MPRC), 2);
    assert_eq!(port.stats().rx_filtered, 4);
}

#[test]
fn frames_larger_than_a_buffer_span_descriptors_and_lengths_are_checked() {
    let port = up("");
    let mut rx = RxRing::new(&port, 0, 16, 2, false);
    rx.give(&port, 15);
    let jumbo = frame_to(MAC, 5000, 9);
    assert_eq!(
        inject(&port, &jumbo),
        RxOutcome::Dropped(RxDrop::Oversize),
        "no jumbo frames without HLREG0.JUMBOEN"
    );
    assert_eq!(port.r(stats::ROC), 1);
    assert_eq!(
        inject(&port, &frame_to(MAC, 59, 0)),
        RxOutcome::Dropped(RxDrop::Undersize)
    );
    assert_eq!(port.r(stats::RUC), 1);
    assert!(matches!(
        inject(&port, &frame_to(MAC, 1514, 0)),
        RxOutcome::Accepted { .. }
    ));
    assert_eq!(
        inject(&port, &frame_to(MAC, 1515, 0)),
        RxOutcome::Dropped(RxDrop::Oversize)
    );
    rx.poll().unwrap();

    port.set(HLREG0, HLREG0_JUMBOEN);
    port.w(MAXFRS, 9018 << 16);
    inject(&port, &jumbo);
    let mut data = Vec::new();
    let mut lengths = Vec::new();
    loop {
        let (wb, part) = rx.poll().unwrap();
        lengths.push(wb.length);
        data.extend_from_slice(&part);
        if wb.eop() {
            break;
        }
        assert!(wb.dd());
    }
    assert_eq!(lengths, [2048, 2048, 904]);
    assert_eq!(data, jumbo);
    assert_eq!(port.stats().rx_descriptors, 4);
}

#[test]
fn without_crc_stripping_the_fcs_is_in_the_buffer() {
    let port = up("");
    port.clear(HLREG0, HLREG0_RXCRCSTRP);
    let mut rx = RxRing::new(&port, 0, 8, 1, false);
    rx.give(&port, 7);
    let frame = frame_to(MAC, 100, 4);
    inject(&port, &frame);
    let (wb, data) = rx.poll().unwrap();
    assert_eq!(wb.length, 104);
    assert_eq!(&data[..100], frame.as_slice());
    assert_eq!(&data[100..], fcs(&frame).to_le_bytes());
    // The FCS may straddle two buffers: 1022 + 4 bytes in 1 KiB buffers.
    let frame = frame_to(MAC, 1022, 5);
    inject(&port, &frame);
    let (first, a) = rx.poll().unwrap();
    let (last, b) = rx.poll().unwrap();
    assert_eq!(
        (first.length, first.eop(), last.length, last.eop()),
        (1024, false, 2, true)
    );
    let mut all = a;
    all.extend_from_slice(&b);
    assert_eq!(&all[..1022], frame.as_slice());
    assert_eq!(&all[1022..], fcs(&frame).to_le_bytes());
}

#[test]
fn without_descriptors_frames_wait_in_the_packet_buffer_then_are_missed() {
    let port = up("");
    port.w(RXPBSIZE(0), 4 << 10); // 4 KiB
    port.w(GPIE, GPIE_MSIX_MODE);
    port.w(IVAR_MISC, (1 | IVAR_ALLOC_VAL) << 8);
    port.w(EIMS, 1 << 17); // RX_MISS
    let mut rx = RxRing::new(&port, 0, 16, 2, false);
    let frames: Vec<Vec<u8>> = (0..10).map(|i| frame_to(MAC, 1000, i)).collect();
    let outcomes: Vec<RxOutcome> = frames.iter().map(|f| inject(&port, f)).collect();
    let missed = outcomes
        .iter()
        .filter(|o| **o == RxOutcome::Dropped(RxDrop::Missed))
        .count();
    assert_eq!(missed, 6, "{outcomes:?}");
    assert_eq!(port.r(stats::MPC(0)), 6);
    assert_eq!(port.r(stats::MPC(0)), 0, "clear on read");
    assert_eq!(port.r(stats::GPRC), 4, "missed frames are not good frames");
    assert_ne!(port.r(EICR) & (1 << 17), 0, "EICR.RX_MISS");
    assert!(port.interrupts(1) >= 1);
    assert_eq!(port.model(|m| m.rx_buffered()), 4);
    // Descriptors let the held frames through, in order.
    rx.give(&port, 15);
    for frame in &frames[..4] {
        assert_eq!(&rx.poll().unwrap().1, frame);
    }
    assert!(rx.poll().is_none());
    assert_eq!(port.model(|m| m.rx_buffered()), 0);
}

#[test]
fn drop_en_drops_at_the_queue_instead_of_holding_the_buffer() {
    let port = up("");
    let mut rx = RxRing::new(&port, 0, 8, 2, true);
    for i in 0..5 {
        inject(&port, &frame_to(MAC, 64, i));
    }
    assert_eq!(port.r(stats::QPRDC(0)), 5);
    assert_eq!(port.r(stats::MPC(0)), 0);
    assert_eq!(port.model(|m| m.rx_buffered()), 0);
    rx.give(&port, 2);
    inject(&port, &frame_to(MAC, 64, 7));
    assert_eq!(rx.poll().unwrap().1, frame_to(MAC, 64, 7));
    // A disabled queue drops too.
    port.clear(RXDCTL(0), RXDCTL_ENABLE);
    inject(&port, &frame_to(MAC, 64, 8));
    assert_eq!(port.r(stats::QPRDC(0)), 1);
    assert_eq!(port.stats().rx_queue_drops, 6);
}

#[test]
fn the_receiver_and_the_link_gate_reception() {
    let bus = bus("link_delay_us = 10");
    let port = Port::open(&bus, A);
    port.reset();
    let mut rx = RxRing::new(&port, 0, 8, 2, false);
    rx.give(&port, 7);
    let frame = frame_to(MAC, 64, 0);
    assert_eq!(inject(&port, &frame), RxOutcome::Dropped(RxDrop::LinkDown));
    port.link_up();
    assert_eq!(
        inject(&port, &frame),
        RxOutcome::Dropped(RxDrop::ReceiverDisabled)
    );
    assert_eq!(port.r(stats::TPR), 1);
    port.set(RXCTRL, RXCTRL_RXEN);
    assert_eq!(inject(&port, &frame), RxOutcome::Accepted { queue: 0 });
    assert!(rx.poll().is_some());
    let stats = port.stats();
    assert_eq!(
        (stats.rx_link_down, stats.rx_disabled, stats.rx_delivered),
        (1, 1, 1)
    );
}

#[test]
fn legacy_descriptors_get_length_dd_and_eop() {
    let port = up("");
    let rx = RxRing::new(&port, 0, 8, 2, false);
    port.w(SRRCTL(0), srrctl_bsizepacket(2048)); // DESCTYPE 000b: legacy
    port.w(RDT(0), 4);
    let frame = frame_to(MAC, 90, 2);
    inject(&port, &frame);
    let raw = rx.descs.get(0).raw;
    assert_eq!(raw[0], rx.bufs.iova(), "the buffer address stays");
    assert_eq!(raw[1] & 0xFFFF, 90);
    let status = ((raw[1] >> 32) & 0xFF) as u32;
    assert_eq!(status, RXD_STAT_DD | RXD_STAT_EOP);
    assert_eq!(rx.data(0, 90), frame);
}

#[test]
fn rx_interrupts_follow_ivar_and_eitr_throttles_them() {
    let port = up("");
    let mut rx = RxRing::new(&port, 3, 16, 2, false);
    rx.give(&port, 15);
    port.w(GPIE, GPIE_MSIX_MODE | GPIE_PBA_SUPPORT);
    port.map_queue(3, false, 5);
    port.w(EIAC, 1 << 5);
    port.w(EIMS, 1 << 5);
    port.w(EITR(5), eitr_interval(10));
    port.w(RXDCTL(0), 0);
    // Everything to queue 3: RSS with a table of threes.
    port.w(MRQC, MRQC_MRQE_RSS | MRQC_RSS_FIELD_IPV4);
    for n in 0..32 {
        port.w(RETA(n), 0x0303_0303);
    }
    for i in 0..3 {
        inject(&port, &frame_to(MAC, 64, i));
    }
    assert_eq!(
        port.interrupts(5),
        1,
        "the others are inside the throttle interval"
    );
    port.sleep(Duration::from_micros(9));
    assert_eq!(port.interrupts(5), 0);
    port.sleep(Duration::from_micros(1));
    assert_eq!(port.interrupts(5), 1, "one more when the interval ends");
    port.sleep(Duration::from_micros(50));
    assert_eq!(port.interrupts(5), 0);
    // Masked (EIMC): nothing; the cause waits for EIMS.
    port.w(EIMC, 1 << 5);
    inject(&port, &frame_to(MAC, 64, 9));
    assert_eq!(port.interrupts(5), 0);
    port.w(EIMS, 1 << 5);
    assert_eq!(port.interrupts(5), 1);
    // EICS raises a vector by software.
    port.sleep(Duration::from_micros(20));
    port.w(EICS, 1 << 5);
    assert_eq!(port.interrupts(5), 1);

    // INTx/MSI mode: the IVAR entry selects an EICR bit; the function signals vector 0.
    port.w(GPIE, 0);
    port.w(EITR(0), 0);
    port.w(EIMS, 1 << 5);
    port.interrupts(0);
    inject(&port, &frame_to(MAC, 64, 10));
    assert_eq!(port.interrupts(0), 1);
    assert_eq!(port.r(EICR) & 0xFFFF, 1 << 5);
    assert_eq!(port.r(EICR), 0, "read to clear");
}

#[test]
fn a_frame_the_ring_can_never_hold_is_dropped_instead_of_blocking() {
    let port = up("");
    port.set(HLREG0, HLREG0_JUMBOEN);
    port.w(MAXFRS, 9018 << 16);
    let mut rx = RxRing::new(&port, 0, 8, 1, false);
    rx.give(&port, 7);
    // 9000 bytes need 9 buffers of 1 KiB; the ring owns at most 7.
    inject(&port, &frame_to(MAC, 9000, 0));
    assert_eq!(port.r(stats::QPRDC(0)), 1);
    let small = frame_to(MAC, 64, 1);
    inject(&port, &small);
    assert_eq!(rx.poll().unwrap().1, small);
}

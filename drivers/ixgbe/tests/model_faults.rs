//! 82599 model, fault injection: link flap, TX hang, corrupt RX write-backs, DMA the IOMMU
//! refuses, and resets in the middle of traffic.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_ixgbe::model::{GeneratorConfig, RxCorruption, RxDrop, RxOutcome};
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;

const US: Duration = Duration::from_micros(1);

fn up() -> Port {
    let bus = bus("link_delay_us = 10");
    let port = Port::open(&bus, A);
    port.bring_up();
    port
}

fn inject(port: &Port, frame: &[u8]) -> RxOutcome {
    port.model_ctx(|m, ctx| m.receive_frame(ctx, frame))
}

#[test]
fn a_link_flap_takes_the_link_down_for_its_duration() {
    let port = up();
    port.w(GPIE, GPIE_MSIX_MODE);
    port.w(IVAR_MISC, (2 | IVAR_ALLOC_VAL) << 8);
    assert_ne!(
        port.r(EICR) & EICR_LSC,
        0,
        "from bringing the link up; cleared by the read"
    );
    port.w(EIMS, EICR_LSC);
    assert_eq!(port.interrupts(2), 0);
    let mut rx = RxRing::new(&port, 0, 64, 2, false);
    rx.give(&port, 63);
    let mut tx = TxRing::new(&port, 0, 8, 0);
    let config = GeneratorConfig {
        rate_pps: 100_000, // every 10 µs
        ..GeneratorConfig::default()
    };
    port.model_ctx(|m, ctx| m.start_generator(ctx, config))
        .unwrap();
    port.sleep(10 * US);
    assert_eq!(port.model(|m| m.generator().sent), 1);

    port.model_ctx(|m, ctx| m.link_flap(ctx, 100 * US));
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    assert_eq!(port.interrupts(2), 1, "LSC down");
    assert_ne!(port.r(EICR) & EICR_LSC, 0);
    assert_eq!(
        inject(&port, &frame_to(MAC, 64, 0)),
        RxOutcome::Dropped(RxDrop::LinkDown)
    );
    tx.send(&port, &[&frame_to(MAC, 64, 0)]);
    assert_eq!(port.r(TDH(0)), 0, "transmit waits for the link");
    port.sleep(99 * US);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    assert_eq!(
        port.model(|m| m.generator().sent),
        1,
        "the generator pauses"
    );
    port.sleep(US);
    assert_ne!(port.r(LINKS) & LINKS_UP, 0, "up after 100 µs");
    assert_eq!(port.interrupts(2), 1, "LSC up");
    assert_eq!(port.r(TDH(0)), 1, "the pending frame went at link up");
    assert!(tx.dd(0));
    port.sleep(30 * US);
    assert_eq!(
        port.model(|m| m.generator().sent),
        4,
        "the generator resumed"
    );
    let stats = port.stats();
    assert_eq!((stats.link_flaps, stats.link_changes), (1, 3));
    // A flap of a link that was down does not bring it up.
    port.w(CTRL, CTRL_RST);
    port.sleep(Duration::from_millis(5));
    port.model_ctx(|m, ctx| m.link_flap(ctx, 10 * US));
    port.sleep(100 * US);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
}

#[test]
fn a_tx_hang_stops_transmit_until_cleared_or_reset() {
    let port = up();
    let mut tx = TxRing::new(&port, 0, 8, 0);
    port.model(|m| m.hang_tx());
    tx.send(&port, &[&frame_to(MAC, 64, 0), &frame_to(MAC, 64, 1)]);
    port.sleep(Duration::from_millis(1));
    assert_eq!(port.r(TDH(0)), 0);
    assert!(!tx.dd(0));
    assert_eq!(port.model(|m| m.sink().frames_sent()), 0);
    assert_eq!(port.stats().tx_hang_ignored, 1);
    port.model(|m| m.clear_faults());
    tx.kick(&port);
    assert_eq!(port.r(TDH(0)), 2);
    assert!(tx.dd(1));
    // A software reset also ends it.
    port.model(|m| m.hang_tx());
    port.reset();
    port.link_up();
    port.set(DMATXCTL, DMATXCTL_TE);
    let mut tx = TxRing::new(&port, 0, 8, 0);
    tx.send(&port, &[&frame_to(MAC, 64, 2)]);
    assert!(tx.dd(0));
}

#[test]
fn corrupt_write_backs_fire_once_each() {
    let port = up();
    let mut rx = RxRing::new(&port, 0, 16, 2, false);
    rx.give(&port, 15);
    port.model(|m| m.corrupt_next_rx_writeback(RxCorruption::LengthBeyondBuffer));
    inject(&port, &frame_to(MAC, 100, 0));
    let (wb, _) = rx.poll().unwrap();
    assert_eq!(wb.length, 2049, "larger than the 2 KiB buffer");
    assert!(wb.dd() && wb.eop());

    port.model(|m| m.corrupt_next_rx_writeback(RxCorruption::NoEop));
    inject(&port, &frame_to(MAC, 100, 1));
    let (wb, _) = rx.poll().unwrap();
    assert!(wb.dd() && !wb.eop());
    assert_eq!(wb.length, 100);

    port.model(|m| m.corrupt_next_rx_writeback(RxCorruption::NoDd));
    inject(&port, &frame_to(MAC, 100, 2));
    assert!(rx.poll().is_none(), "no DD: software cannot see it");
    assert_eq!(port.r(RDH(0)), 3, "yet the device used the descriptor");
    assert_eq!(rx.wb(2).length, 100);
    rx.next = 3;
    inject(&port, &frame_to(MAC, 100, 3));
    let (wb, data) = rx.poll().unwrap();
    assert!(wb.dd() && wb.eop() && wb.length == 100);
    assert_eq!(data, frame_to(MAC, 100, 3), "the fault fired once");
}

#[test]
fn dma_the_iommu_refuses_disables_the_queue() {
    let port = up();
    // RX ring at an IOVA nothing is mapped at.
    port.w(RDBAL(1), 0x7000_0000);
    port.w(RDBAH(1), 0x10);
    port.w(RDLEN(1), 8 * 16);
    port.w(
        SRRCTL(1),
        SRRCTL_DESCTYPE_ADV_ONEBUF | srrctl_bsizepacket(2048),
    );
    port.set(RXDCTL(1), RXDCTL_ENABLE);
    port.w(RDT(1), 4);
    port.w(MRQC, MRQC_MRQE_RSS | MRQC_RSS_FIELD_IPV4);
    for n in 0..32 {
        port.w(RETA(n), 0x0101_0101);
    }
    inject(&port, &frame_to(MAC, 64, 0));
    assert_eq!(port.r(RXDCTL(1)) & RXDCTL_ENABLE, 0);
    assert_eq!(port.stats().dma_faults, 1);
    assert!(!port.bus.iommu().take_faults().is_empty());
    // The same for a TX ring.
    port.w(TDBAL(2), 0x7000_0000);
    port.w(TDBAH(2), 0x10);
    port.w(TDLEN(2), 8 * 16);
    port.w(TXDCTL(2), TXDCTL_ENABLE);
    port.w(TDT(2), 1);
    assert_eq!(port.r(TXDCTL(2)) & TXDCTL_ENABLE, 0);
    assert_eq!(port.stats().dma_faults, 2);
    // Without bus mastering nothing moves either, and nothing panics.
    use userpci_framework::device::PciFunctionExt;
    let mut rx = RxRing::new(&port, 0, 8, 2, false);
    rx.give(&port, 7);
    port.function
        .update_command(0, userpci_framework::device::config::COMMAND_BUS_MASTER)
        .unwrap();
    port.w(MRQC, 0);
    inject(&port, &frame_to(MAC, 64, 1));
    assert!(rx.poll().is_none());
    assert_eq!(port.stats().dma_faults, 3);
}

#[test]
fn a_software_reset_during_traffic_empties_the_device() {
    let port = up();
    let _rx = RxRing::new(&port, 0, 8, 2, false);
    for i in 0..3 {
        inject(&port, &frame_to(MAC, 64, i));
    }
    assert_eq!(port.model(|m| m.rx_buffered()), 3, "no descriptors given");
    let config = GeneratorConfig {
        rate_pps: 1_000_000,
        ..GeneratorConfig::default()
    };
    port.model_ctx(|m, ctx| m.start_generator(ctx, config))
        .unwrap();
    port.sleep(5 * US);
    let sent = port.model(|m| m.generator().sent);
    port.reset();
    assert_eq!(port.model(|m| m.rx_buffered()), 0);
    assert_eq!(port.r(RXCTRL) & RXCTRL_RXEN, 0);
    let paused = port.model(|m| m.generator());
    assert!(
        !paused.running,
        "the generator waits for the link and the receiver"
    );
    assert!(paused.sent >= sent);
    port.bring_up();
    let mut rx = RxRing::new(&port, 0, 8, 2, false);
    rx.give(&port, 7);
    port.sleep(3 * US);
    assert!(rx.poll().is_some(), "traffic flows again");
}

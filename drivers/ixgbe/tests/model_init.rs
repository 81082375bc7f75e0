//! 82599 model: PCI identity, power-on registers, the 4.6.3 reset with its self-clearing bits
//! and auto-read, the link state machine, queue enables, resets back to power-on, and the
//! factory's parameter checks.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::Error;
use userpci_ixgbe::model::{CLASS_CODE, DEVICE_ID, VENDOR_ID};
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;
use userpci_ixgbe::spec::stats;

const US: Duration = Duration::from_micros(1);

#[test]
fn pci_identity_bar_and_msix() {
    let bus = bus("");
    let port = Port::open(&bus, A);
    assert_eq!(port.function.ids().unwrap(), (VENDOR_ID, DEVICE_ID));
    assert_eq!((VENDOR_ID, DEVICE_ID), (0x8086, 0x10FB));
    let class = port.function.read_config_u32(0x08).unwrap() >> 8;
    assert_eq!(class, CLASS_CODE);
    assert_eq!(class, 0x02_00_00);
    assert_eq!(port.function.msix_vector_count().unwrap(), 64);
    assert_eq!(port.function.map_bar(0).unwrap().len(), 512 * 1024);
    assert!(port.function.map_bar(2).is_err());
    // Another ID of the family, by parameter.
    let other = model_support::bus("device_id = 0x1557");
    let port = Port::open(&other, A);
    assert_eq!(port.function.ids().unwrap(), (0x8086, 0x1557));
}

#[test]
fn registers_at_power_on() {
    let bus = bus("mac = \"02:1b:21:aa:bb:cc\"");
    let port = Port::open(&bus, A);
    let mac = mac_from_ral_rah(port.r(RAL(0)), port.r(RAH(0)));
    assert_eq!(mac, [0x02, 0x1b, 0x21, 0xaa, 0xbb, 0xcc]);
    assert_ne!(port.r(RAH(0)) & RAH_AV, 0);
    assert_eq!(port.r(RAH(1)), 0);
    assert_eq!(port.r(CTRL) & CTRL_RST_MASK, 0);
    assert_ne!(port.r(EEC) & EEC_ARD, 0, "auto-read done at power-on");
    assert_ne!(port.r(RDRXCTL) & RDRXCTL_DMAIDONE, 0);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0, "link down until set up");
    let status = port.r(STATUS);
    assert_eq!(status & STATUS_LINK_UP, 0);
    assert_eq!(status & STATUS_LAN_ID_MASK, 0, "function 0");
    assert_ne!(status & STATUS_PCIE_MASTER_ENABLE_STATUS, 0);
    assert_eq!(port.r(RXCTRL) & RXCTRL_RXEN, 0);
    assert_eq!(port.r(DMATXCTL) & DMATXCTL_TE, 0);
    assert_ne!(port.r(HLREG0) & HLREG0_RXCRCSTRP, 0);
    assert_eq!(
        port.r(SRRCTL(5)) & SRRCTL_BSIZEPACKET_MASK,
        2,
        "2 KiB buffers"
    );
    assert_eq!(
        port.r(SRRCTL(5)) & SRRCTL_DESCTYPE_MASK,
        SRRCTL_DESCTYPE_LEGACY
    );
    assert_ne!(port.r(DCA_RXCTRL(3)) & DCA_RXCTRL_RESERVED12, 0);
    assert_eq!(port.r(RXPBSIZE(0)), RXPBSIZE_512KB);
    assert_eq!(port.r(EIMS), 0);
    // Read-only registers ignore writes; plain registers keep them.
    port.w(STATUS, 0);
    port.w(LINKS, LINKS_UP);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    port.w(RTTDCS, RTTDCS_ARBDIS);
    assert_eq!(port.r(RTTDCS), RTTDCS_ARBDIS);
    // The 82598 alias of MRQC reaches the 82599 register.
    port.w(MRQC, 0x0040_0001);
    assert_eq!(port.r(0x0EC80), 0x0040_0001);
    // STATUS.LAN_ID follows the function number.
    let pair = pair_bus("", "");
    let b = Port::open(&pair, B);
    assert_eq!((b.r(STATUS) & STATUS_LAN_ID_MASK) >> STATUS_LAN_ID_SHIFT, 1);
}

#[test]
fn global_reset_bits_self_clear_then_auto_read_and_dma_init_complete() {
    let bus = bus("reset_delay_us = 20\nauto_read_delay_us = 500");
    let port = Port::open(&bus, A);
    port.w(FCTRL, FCTRL_BAM | FCTRL_UPE);
    port.w(RAL(0), 0x1234_5678);
    let start = port.now();
    port.w(CTRL, CTRL_RST_MASK);
    assert_eq!(
        port.r(CTRL) & CTRL_RST_MASK,
        CTRL_RST_MASK,
        "set while resetting"
    );
    assert_eq!(port.r(EEC) & EEC_ARD, 0);
    assert_eq!(port.r(RDRXCTL) & RDRXCTL_DMAIDONE, 0);
    // Registers are back at power-on at once.
    assert_eq!(port.r(FCTRL), 0);
    assert_eq!(mac_from_ral_rah(port.r(RAL(0)), port.r(RAH(0))), MAC);
    // Writes of other CTRL bits do not end the reset.
    port.w(CTRL, CTRL_PCIE_MASTER_DISABLE);
    assert_eq!(port.r(CTRL) & CTRL_RST, CTRL_RST);
    port.w(CTRL, 0);

    let took = port
        .wait_for(CTRL, CTRL_RST_MASK, 0, Duration::from_millis(1))
        .unwrap();
    assert_eq!(
        port.now() - start,
        20 * US,
        "cleared after reset_delay ({took:?})"
    );
    assert_eq!(
        port.r(EEC) & EEC_ARD,
        0,
        "the auto-read comes after the reset"
    );
    port.wait_for(EEC, EEC_ARD, EEC_ARD, Duration::from_millis(10))
        .unwrap();
    assert_eq!(port.now() - start, 520 * US);
    assert_ne!(port.r(RDRXCTL) & RDRXCTL_DMAIDONE, 0);
    // DMAIDONE and ARD are the hardware's: writes keep them.
    port.w(RDRXCTL, RDRXCTL_CRCSTRIP);
    assert_eq!(port.r(RDRXCTL), RDRXCTL_CRCSTRIP | RDRXCTL_DMAIDONE);
    port.w(EEC, 0);
    assert_ne!(port.r(EEC) & EEC_ARD, 0);
    assert_eq!(port.stats().software_resets, 1);
}

#[test]
fn link_comes_up_after_the_delay_at_10g_with_an_lsc_interrupt() {
    let bus = bus("link_delay_us = 3000");
    let port = Port::open(&bus, A);
    port.reset();
    // MSI-X mode, "other" causes on vector 3, LSC enabled.
    port.w(GPIE, GPIE_MSIX_MODE | GPIE_PBA_SUPPORT);
    port.w(IVAR_MISC, (3 | IVAR_ALLOC_VAL) << 8);
    port.w(EIMS, EICR_LSC);
    port.interrupts(3);
    let start = port.now();
    let autoc = port.r(AUTOC) & !AUTOC_LMS_MASK;
    port.w(AUTOC, autoc | AUTOC_LMS_10G_SERIAL | AUTOC_AN_RESTART);
    assert_eq!(port.r(AUTOC) & AUTOC_AN_RESTART, 0, "self-clearing");
    assert_eq!(port.r(AUTOC) & AUTOC_LMS_MASK, AUTOC_LMS_10G_SERIAL);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    port.wait_for(LINKS, LINKS_UP, LINKS_UP, Duration::from_secs(1))
        .unwrap();
    assert_eq!(port.now() - start, Duration::from_millis(3));
    assert_eq!(links_speed(port.r(LINKS)), Some(LinkSpeed::Gbps10));
    assert_ne!(port.r(STATUS) & STATUS_LINK_UP, 0);
    assert_eq!(port.interrupts(3), 1);
    let eicr = port.r(EICR);
    assert_ne!(eicr & EICR_LSC, 0);
    assert_ne!(eicr & EICR_OTHER, 0);
    assert_eq!(port.r(EICR), 0, "read to clear");

    // A link reset takes it down; it trains again after the bit clears.
    port.w(CTRL, CTRL_LRST);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    assert_eq!(port.interrupts(3), 1);
    port.wait_for(LINKS, LINKS_UP, LINKS_UP, Duration::from_secs(1))
        .unwrap();
    assert_eq!(port.r(CTRL) & CTRL_LRST, 0);
    assert_eq!(port.stats().link_resets, 1);
    // Restarting auto-negotiation on a link that is up drops it first.
    port.set(AUTOC, AUTOC_AN_RESTART);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    port.sleep(Duration::from_millis(3));
    assert_ne!(port.r(LINKS) & LINKS_UP, 0);
}

#[test]
fn queue_enables_read_back_within_the_configured_queue_count() {
    let bus = bus("rx_queues = 4\ntx_queues = 2");
    let port = Port::open(&bus, A);
    port.set(RXDCTL(3), RXDCTL_ENABLE);
    assert_ne!(port.r(RXDCTL(3)) & RXDCTL_ENABLE, 0);
    port.set(RXDCTL(4), RXDCTL_ENABLE);
    assert_eq!(port.r(RXDCTL(4)) & RXDCTL_ENABLE, 0, "beyond rx_queues");
    port.set(RXDCTL(100), RXDCTL_ENABLE);
    assert_eq!(port.r(RXDCTL(100)) & RXDCTL_ENABLE, 0);
    port.set(TXDCTL(1), TXDCTL_ENABLE);
    assert_ne!(port.r(TXDCTL(1)) & TXDCTL_ENABLE, 0);
    port.set(TXDCTL(2), TXDCTL_ENABLE);
    assert_eq!(port.r(TXDCTL(2)) & TXDCTL_ENABLE, 0);
    // Head writes to an enabled queue are violations (still done).
    port.w(RDH(3), 0);
    port.w(TDH(1), 0);
    assert_eq!(port.stats().protocol_violations, 2);
    port.clear(RXDCTL(3), RXDCTL_ENABLE);
    assert_eq!(port.r(RXDCTL(3)) & RXDCTL_ENABLE, 0);
}

#[test]
fn function_and_bus_resets_return_to_power_on() {
    let bus = bus("link_delay_us = 10");
    let port = Port::open(&bus, A);
    port.bring_up();
    let _rx = RxRing::new(&port, 0, 8, 2, false);
    port.w(RAL(0), 0);
    port.w(FCTRL, FCTRL_UPE);
    port.w(EIMS, 0xFFFF);
    port.r(stats::GPRC);
    port.function.reset_function().unwrap();
    port.function.set_bus_master(true).unwrap();
    assert_eq!(mac_from_ral_rah(port.r(RAL(0)), port.r(RAH(0))), MAC);
    assert_eq!(port.r(FCTRL), 0);
    assert_eq!(port.r(EIMS), 0);
    assert_eq!(port.r(RXCTRL), 0);
    assert_eq!(port.r(RXDCTL(0)) & RXDCTL_ENABLE, 0);
    assert_eq!(port.r(RDBAL(0)), 0);
    assert_eq!(port.r(LINKS) & LINKS_UP, 0, "link down after FLR");
    assert_ne!(port.r(EEC) & EEC_ARD, 0);
    assert_ne!(port.r(RDRXCTL) & RDRXCTL_DMAIDONE, 0);
    assert_eq!(port.r(CTRL) & CTRL_RST_MASK, 0);
    assert_eq!(port.stats().function_resets, 1);

    port.link_up();
    port.function.reset_group_hot().unwrap();
    port.function.set_bus_master(true).unwrap();
    assert_eq!(port.r(LINKS) & LINKS_UP, 0);
    assert_eq!(port.stats().bus_resets, 1);
    // A link timer set before the reset does not fire after it.
    port.set(AUTOC, AUTOC_AN_RESTART);
    port.w(CTRL, CTRL_RST);
    port.sleep(Duration::from_millis(5));
    assert_eq!(
        port.r(LINKS) & LINKS_UP,
        0,
        "training was cancelled by the reset"
    );
}

fn factory_error(params: &str) -> String {
    match try_bus(&[(A, params)]) {
        Err(Error::Topology(message)) => message,
        Err(other) => panic!("{params}: unexpected error {other}"),
        Ok(_) => panic!("{params}: accepted"),
    }
}

#[test]
fn bad_parameters_name_the_key_the_value_and_what_was_expected() {
    let m = factory_error("colour = 3");
    assert!(
        m.contains("unknown parameter colour = 3") && m.contains("known:"),
        "{m}"
    );
    let m = factory_error("mac = \"01:00:00:00:00:01\"");
    assert!(m.contains("mac") && m.contains("unicast"), "{m}");
    let m = factory_error("mac = \"nonsense\"");
    assert!(
        m.contains("mac = \"nonsense\"") && m.contains("MAC address"),
        "{m}"
    );
    let m = factory_error("rx_queues = 129");
    assert!(
        m.contains("rx_queues = 129") && m.contains("1..=128"),
        "{m}"
    );
    let m = factory_error("link_delay_us = -1");
    assert!(m.contains("link_delay_us = -1"), "{m}");
    let m = factory_error("wire = 5");
    assert!(m.contains("wire = 5") && m.contains("string"), "{m}");
    let m = factory_error("sink_keep = 1000");
    assert!(
        m.contains("sink_keep = 1000") && m.contains("0..=256"),
        "{m}"
    );
    let m = factory_error("generator = { frame_len = 10 }");
    assert!(
        m.contains("generator.frame_len = 10") && m.contains("50..="),
        "{m}"
    );
    let m = factory_error("generator = { speed = 10 }");
    assert!(m.contains("unknown parameter generator.speed = 10"), "{m}");
    let m = factory_error("generator = { dst = \"somewhere\" }");
    assert!(
        m.contains("generator.dst") && m.contains("broadcast"),
        "{m}"
    );
    let m = factory_error("generator = 3");
    assert!(m.contains("generator = 3") && m.contains("table"), "{m}");
    // An X540's ID (0x1528) is not an 82599's.
    let m = factory_error("device_id = 0x1528");
    assert!(
        m.contains("device_id = 0x1528") && m.contains("an 82599 device ID"),
        "{m}"
    );
    // Every accepted key, at once.
    try_bus(&[(
        A,
        "device_id = 0x154a\nmac = \"02:00:00:00:00:07\"\nlink_delay_us = 1\nreset_delay_us = 1\n\
         auto_read_delay_us = 1\nrx_queues = 8\ntx_queues = 8\nwire_poll_ns = 500\n\
         sink_keep = 4\nwire = \"model_init_all_keys\"\ngenerator = { frame_len = 100, \
         count = 5, rate_pps = 1000, flows = 4, dst = \"broadcast\", \
         src_mac = \"02:00:00:00:00:09\" }",
    )])
    .unwrap();
}

//! Bring-up (datasheet 4.6) against the 82599 model: the link comes up, the MAC address is
//! the EEPROM's, the registers hold what 4.6.7 / 4.6.8 ask for, every wait has a deadline.

mod driver_support;

use std::time::Duration;

use driver_support::*;
use userpci_framework::device::RegisterIo;
use userpci_framework::device::{PciFunction, PciFunctionExt};
use userpci_framework::time::Clock;
use userpci_ixgbe::spec::queue::*;
use userpci_ixgbe::spec::regs::*;
use userpci_ixgbe::{Error, IxgbeDevice, IxgbeOptions, LinkSpeed};

#[test]
fn init_reaches_link_up_with_the_eeprom_mac() {
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(1, 1));
    let link = dev.link();
    assert!(link.up, "{link}");
    assert_eq!(link.speed, Some(LinkSpeed::Gbps10));
    assert_eq!(link.mbps(), 10_000);
    assert_eq!(dev.mac_address(), MAC_A);
    let stats = model_stats(&bus, A);
    assert_eq!(stats.software_resets, 1, "one global reset");
    assert_eq!(
        stats.protocol_violations, 0,
        "no head written while enabled"
    );
    // Virtual time: the 10 ms reset wait and the model's 10 ms link training, not more
    // than a few milliseconds beyond.
    let now = bus.clock().now();
    assert!(
        now >= Duration::from_millis(10) && now < Duration::from_millis(60),
        "{now:?}"
    );
}

#[test]
fn registers_hold_the_datasheet_configuration() {
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(2, 2));
    let regs = dev.function().map_bar(0).unwrap();
    let r = |o| regs.read32(o);
    assert_eq!(r(CTRL) & CTRL_RST_MASK, 0);
    for q in 0..2 {
        let srrctl = r(SRRCTL(q));
        assert_eq!(srrctl & SRRCTL_DESCTYPE_MASK, SRRCTL_DESCTYPE_ADV_ONEBUF);
        assert_eq!(srrctl & SRRCTL_BSIZEPACKET_MASK, 2, "2 KiB buffers");
        assert_ne!(srrctl & SRRCTL_DROP_EN, 0);
        assert_ne!(r(RXDCTL(q)) & RXDCTL_ENABLE, 0);
        assert_ne!(r(TXDCTL(q)) & TXDCTL_ENABLE, 0);
        assert_eq!(r(RDLEN(q)), 64 * 16);
        assert_eq!(r(TDLEN(q)), 64 * 16);
        assert_eq!(r(RDT(q)), 63, "the ring handed over, minus one");
        assert_eq!(r(TXDCTL(q)) & 0x7F7F7F, 36 | (8 << 8) | (4 << 16));
    }
    assert_ne!(r(RXCTRL) & RXCTRL_RXEN, 0);
    assert_ne!(r(DMATXCTL) & DMATXCTL_TE, 0);
    let hlreg0 = r(HLREG0);
    assert_eq!(
        hlreg0 & (HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN),
        HLREG0_RXCRCSTRP | HLREG0_TXCRCEN | HLREG0_TXPADEN
    );
    assert_ne!(r(RDRXCTL) & RDRXCTL_CRCSTRIP, 0);
    let fctrl = r(FCTRL);
    assert_eq!(
        fctrl & (FCTRL_BAM | FCTRL_UPE | FCTRL_MPE),
        FCTRL_BAM | FCTRL_UPE | FCTRL_MPE
    );
    assert_eq!(r(RXPBSIZE(0)), RXPBSIZE_512KB);
    assert_eq!(r(TXPBSIZE(0)), TXPBSIZE_160KB);
    assert_eq!(r(RTTDCS) & RTTDCS_ARBDIS, 0, "arbiter back on");
    assert_eq!(r(MRQC) & MRQC_MRQE_MASK, MRQC_MRQE_RSS, "two queues: RSS");
    assert_ne!(
        r(userpci_ixgbe::spec::regs::RXCSUM) & userpci_ixgbe::spec::regs::RXCSUM_PCSD,
        0,
        "RSS hash in the write-back"
    );
    assert_eq!(r(RQSMR(0)), 0x0100, "queue 1 counts in set 1");
    assert_ne!(r(CTRL_EXT) & CTRL_EXT_DRV_LOAD, 0);

    dev.set_promiscuous(false);
    assert!(!dev.is_promiscuous());
    assert_eq!(r(FCTRL) & (FCTRL_UPE | FCTRL_MPE), 0);
    assert_ne!(r(FCTRL) & FCTRL_BAM, 0, "broadcast still accepted");
    dev.set_multicast_promiscuous(true);
    assert_eq!(r(FCTRL) & (FCTRL_UPE | FCTRL_MPE), FCTRL_MPE);
}

#[test]
fn a_link_that_does_not_come_up_is_a_typed_timeout_in_virtual_time() {
    let bus = bus_with(&[(A, MAC_A)], "link_delay_us = 5000000");
    let opts = IxgbeOptions {
        link_timeout: Duration::from_millis(200),
        ..options(1, 1)
    };
    let start = bus.clock().now();
    let err = IxgbeDevice::new(bus.open(addr(A)).unwrap(), opts).unwrap_err();
    match &err {
        Error::LinkDown { waited_ms, .. } => {
            assert!((200..300).contains(waited_ms), "{waited_ms}")
        }
        other => panic!("expected LinkDown, got {other}"),
    }
    let text = err.to_string();
    assert!(
        text.contains("0000:01:00.0") && text.contains("link still down"),
        "{text}"
    );
    assert!(bus.clock().now() - start < Duration::from_millis(300));

    // Not required: the device comes up anyway and the link later.
    let opts = IxgbeOptions {
        link_timeout: Duration::from_millis(200),
        require_link: false,
        ..options(1, 1)
    };
    let dev = device(&bus, A, opts);
    assert!(!dev.link().up);
    let link = dev.wait_for_link(Duration::from_secs(10)).unwrap();
    assert!(link.up);
}

#[test]
fn a_reset_that_never_finishes_fails_with_the_step_named() {
    let bus = bus_with(&[(A, MAC_A)], "reset_delay_us = 5000000");
    let err = IxgbeDevice::new(bus.open(addr(A)).unwrap(), options(1, 1)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Init { .. }), "{text}");
    assert!(text.contains("4.6.3.2"), "{text}");
    assert!(text.contains("CTRL.RST"), "{text}");
    assert!(
        bus.clock().now() < Duration::from_secs(2),
        "bounded by the deadline"
    );
}

#[test]
fn invalid_options_are_refused_before_touching_the_device() {
    let bus = bus_with(&[(A, MAC_A)], "");
    for (opts, what) in [
        (
            IxgbeOptions {
                rx_queues: 0,
                ..options(1, 1)
            },
            "RX queue count",
        ),
        (
            IxgbeOptions {
                tx_queues: 17,
                ..options(1, 1)
            },
            "TX queue count",
        ),
        (
            IxgbeOptions {
                rx_ring_size: 100,
                ..options(1, 1)
            },
            "RX ring size",
        ),
        (
            IxgbeOptions {
                tx_ring_size: 4,
                ..options(1, 1)
            },
            "TX ring size",
        ),
        (
            IxgbeOptions {
                buffer_size: 512,
                ..options(1, 1)
            },
            "buffer size",
        ),
    ] {
        let err = IxgbeDevice::new(bus.open(addr(A)).unwrap(), opts).unwrap_err();
        assert!(matches!(err, Error::InvalidOption { .. }), "{err}");
        assert!(err.to_string().contains(what), "{err}");
    }
    assert_eq!(model_stats(&bus, A).software_resets, 0);
}

#[test]
fn every_82599_device_id_is_accepted_and_named() {
    // The model presents each ID of the family in turn; bring-up must accept all of them
    // (0x154A, the 82599 SFP SF QP, used to be refused with NotIxgbe).
    for d in userpci_ixgbe::spec::ids::DEVICE_IDS_82599 {
        let bus = bus_with(&[(A, MAC_A)], &format!("device_id = {}", d.id));
        let function = bus.open(addr(A)).unwrap();
        assert_eq!(function.ids().unwrap(), (0x8086, d.id));
        let dev = IxgbeDevice::new(function, options(1, 1))
            .unwrap_or_else(|e| panic!("{:#06x} ({}): {e}", d.id, d.name));
        assert!(dev.link().up, "{}", d.name);
        assert!(
            d.name.starts_with("82599"),
            "{:#06x} labelled {}",
            d.id,
            d.name
        );
    }
    assert!(userpci_ixgbe::IXGBE_82599_DEVICE_IDS.contains(&0x154A));
}

#[test]
fn a_function_that_is_not_an_82599_is_refused_by_id() {
    // The NVMe model presents QEMU's NVMe IDs, 1b36:0010.
    use userpci_framework::backend::sim::topology::TopologyBuilder;
    use userpci_framework::backend::sim::{ModelRegistry, SimBus};
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "nvme")
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    userpci_nvme::model::register(&mut registry);
    let bus = SimBus::new(topology, &registry).unwrap();
    let err = IxgbeDevice::new(bus.open(addr(A)).unwrap(), options(1, 1)).unwrap_err();
    assert!(
        matches!(
            err,
            Error::NotIxgbe {
                vendor: 0x1b36,
                device_id: 0x0010,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("not an Intel 82599"), "{err}");
}

#[test]
fn a_queue_is_taken_once_and_only_if_configured() {
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(2, 1));
    let q0 = dev.take_rx_queue(0).unwrap();
    assert_eq!(q0.index(), 0);
    assert_eq!(q0.ring_size(), 64);
    let again = dev.take_rx_queue(0).unwrap_err();
    assert!(again.to_string().contains("taken already"), "{again}");
    let missing = dev.take_tx_queue(1).unwrap_err();
    assert!(missing.to_string().contains("not configured"), "{missing}");
    assert!(dev.take_rx_queue(1).is_ok());
}

#[test]
fn dropping_a_queue_stops_it_and_returns_its_buffers() {
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(1, 1));
    let pool = dev.pool().clone();
    let rx = dev.take_rx_queue(0).unwrap();
    let regs = dev.function().map_bar(0).unwrap();
    pool.flush_local_cache();
    let before = pool.available();
    drop(rx);
    assert_eq!(regs.read32(RXDCTL(0)) & RXDCTL_ENABLE, 0);
    pool.flush_local_cache();
    assert_eq!(pool.available(), before + 64, "the ring's buffers are back");
}

#[test]
fn the_device_and_its_options_are_shareable() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Dev>();
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(1, 1));
    assert_eq!(dev.rx_queue_count(), 1);
    assert!(format!("{dev:?}").contains("02:00:00:00:00:0a"));
}

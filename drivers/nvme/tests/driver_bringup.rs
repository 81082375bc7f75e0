//! Controller bring-up against the model: identity, registers, identify, namespaces, queue
//! negotiation, options, and the errors of each step.

mod driver_support;

use std::time::Duration;

use driver_support::*;
use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus};
use userpci_framework::dma::DmaBuffer;
use userpci_framework::time::Clock;
use userpci_nvme::{Controller, ControllerOptions, ControllerState, Error, QpairOptions};

#[test]
fn brings_up_and_identifies() {
    let bus = bus("serial = \"SIM-42\"\nmodel_number = \"sim ctrl\"\nmax_queues = 3\nnamespaces = 2\nblocks = 4096\nmdts = 5");
    let ctrl = controller(&bus);
    let info = ctrl.info();
    assert_eq!(info.serial, "SIM-42");
    assert_eq!(info.model, "sim ctrl");
    assert_eq!(info.mdts, 5);
    assert_eq!(info.max_transfer, 128 * 1024, "2^5 pages of 4 KiB");
    assert_eq!(info.io_queues, 3, "4 requested, 3 granted");
    assert_eq!(ctrl.state(), ControllerState::Enabled);
    assert_eq!(ctrl.namespaces().len(), 2);
    let ns = ctrl.namespace(2).unwrap();
    assert_eq!((ns.nsid(), ns.blocks(), ns.block_size()), (2, 4096, 512));
    assert_eq!(ns.max_blocks_per_command(), 256);
    assert!(matches!(
        ctrl.namespace(3),
        Err(Error::NoSuchNamespace { nsid: 3, .. })
    ));
    assert!(ctrl.unusable_namespaces().is_empty());
    assert_eq!(
        ctrl.interrupt_vectors().len(),
        4,
        "admin + one per I/O queue"
    );
    ctrl.check_health().unwrap();

    // Queue pairs take QIDs 1..=3, then there is none left.
    let qps: Vec<_> = (0..3)
        .map(|_| {
            ctrl.create_io_qpair::<u64, DmaBuffer>(QpairOptions::default())
                .unwrap()
        })
        .collect();
    assert_eq!(qps.iter().map(|q| q.qid()).collect::<Vec<_>>(), [1, 2, 3]);
    let err = ctrl
        .create_io_qpair::<u64, DmaBuffer>(QpairOptions::default())
        .unwrap_err();
    assert!(
        matches!(err, Error::NoQueueAvailable { granted: 3, .. }),
        "{err}"
    );
    // Dropping one frees its QID (Delete SQ, then CQ).
    drop(qps);
    let stats = model_stats(&bus);
    assert_eq!((stats.sq_deletes, stats.cq_deletes), (3, 3));
    let qp = ctrl
        .create_io_qpair::<u64, DmaBuffer>(QpairOptions::default())
        .unwrap();
    assert_eq!(qp.qid(), 1);
    assert_eq!(model_stats(&bus).violations.total(), 0);
}

#[test]
fn queue_sizes_are_checked_against_mqes() {
    let bus = bus("mqes = 63");
    let ctrl = controller(&bus);
    for entries in [1, 65] {
        let err = ctrl
            .create_io_qpair::<u64, DmaBuffer>(QpairOptions {
                entries,
                ..QpairOptions::default()
            })
            .unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::InvalidOption { .. }), "{text}");
        assert!(text.contains(&entries.to_string()), "{text}");
        assert!(text.contains("2..=64"), "{text}");
    }
    let qp = ctrl
        .create_io_qpair::<u64, DmaBuffer>(QpairOptions {
            entries: 64,
            ..QpairOptions::default()
        })
        .unwrap();
    assert_eq!(qp.capacity(), 63);
    // Admin queue larger than MQES + 1.
    let bus2 = driver_support::bus("mqes = 15");
    let err = Controller::new(
        bus2.open(addr()).unwrap(),
        ControllerOptions {
            admin_entries: 32,
            ..ControllerOptions::default()
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("admin queue entries 32"), "{err}");
}

#[test]
fn formats_of_512_and_4096_bytes() {
    for lba_size in [512u32, 4096] {
        let bus = bus(&format!("lba_size = {lba_size}\nblocks = 1000"));
        let ctrl = controller(&bus);
        let ns = &ctrl.namespaces()[0];
        assert_eq!(ns.block_size(), lba_size);
        assert_eq!(ns.size_bytes(), 1000 * u64::from(lba_size));
    }
}

#[test]
fn a_namespace_with_metadata_is_refused_naming_nsid_and_size() {
    let bus = bus("metadata_size = 8");
    let err = Controller::new(bus.open(addr()).unwrap(), ControllerOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NoUsableNamespace { .. }), "{text}");
    assert!(text.contains("namespace 1"), "{text}");
    assert!(text.contains("8 bytes of metadata"), "{text}");
}

#[test]
fn a_function_that_is_not_nvme_is_refused() {
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", userpci_framework::testdev::model::factory);
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(ADDR, "copy-engine")
        .build()
        .unwrap();
    let bus = SimBus::new(topology, &registry).unwrap();
    let err = Controller::new(bus.open(addr()).unwrap(), ControllerOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::NotNvme { .. }), "{text}");
    assert!(text.contains("0000:01:00.0"), "{text}");
    assert!(text.contains("0x010802"), "{text}");
}

#[test]
fn readiness_slower_than_cap_to_times_out() {
    // CAP.TO = 1 (500 ms), RDY takes 2 s.
    let bus = bus("timeout_500ms = 1\nready_delay_us = 2000000");
    let start = bus.clock().now();
    let err = Controller::new(bus.open(addr()).unwrap(), ControllerOptions::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("CSTS.RDY=1"), "{text}");
    assert!(text.contains("500 ms"), "{text}");
    assert_eq!(bus.clock().now() - start, Duration::from_millis(500));
    // Within CAP.TO it is fine, and virtual time moved by the delay only.
    let bus = driver_support::bus("timeout_500ms = 4\nready_delay_us = 1500000");
    let ctrl = controller(&bus);
    assert_eq!(ctrl.state(), ControllerState::Enabled);
}

#[test]
fn an_enabled_controller_is_disabled_first() {
    let bus = bus("");
    let ctrl = controller(&bus);
    let resets = model_stats(&bus).controller_resets;
    // The function is closed with the controller still enabled; the next driver resets it.
    drop(ctrl);
    let ctrl = controller(&bus);
    assert_eq!(model_stats(&bus).controller_resets, resets + 1);
    assert_eq!(ctrl.state(), ControllerState::Enabled);
}

#[test]
fn shadow_doorbells_are_used_when_offered_and_wanted() {
    let bus = bus("shadow_doorbells = true");
    let ctrl = controller(&bus);
    assert!(ctrl.info().shadow_doorbells);
    drop(ctrl);
    let ctrl = controller_with(
        &bus,
        ControllerOptions {
            shadow_doorbells: false,
            ..ControllerOptions::default()
        },
    );
    assert!(!ctrl.info().shadow_doorbells);
    let bus = driver_support::bus("shadow_doorbells = false");
    assert!(!controller(&bus).info().shadow_doorbells);
}

#[test]
fn polled_only_mode_has_no_vectors() {
    let bus = bus("");
    let ctrl = controller_with(
        &bus,
        ControllerOptions {
            interrupts: false,
            ..ControllerOptions::default()
        },
    );
    assert!(ctrl.interrupt_vectors().is_empty());
    let qp = ctrl
        .create_io_qpair::<u64, DmaBuffer>(QpairOptions::default())
        .unwrap();
    assert!(qp.interrupt().is_none());
}

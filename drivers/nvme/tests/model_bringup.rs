//! Controller model: PCI identity, registers, bring-up and shutdown by hand, Identify data,
//! features, and the topology-file parameters.

mod model_support;

use std::time::Duration;

use model_support::*;
use userpci_framework::device::{PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::dma::DmaDirection;
use userpci_nvme::model::{self, NvmeModel, NvmeModelConfig};
use userpci_nvme::spec::features::{FeatureId, NumberOfQueues};
use userpci_nvme::spec::identify::{ActiveNamespaceList, Cns, IdentifyController};
use userpci_nvme::spec::registers::{self as regs, Aqa, Cc, Csts, Vs};
use userpci_nvme::spec::{IdentifyNamespace, Status, SubmissionEntry, NSID_ALL};

#[test]
fn pci_identity_bar_and_msix_follow_the_configuration() {
    let bus = bus("max_queues = 4");
    let f = bus.open(addr()).unwrap();
    assert_eq!(f.ids().unwrap(), (0x1b36, 0x0010));
    let class = f.read_config_u32(0x08).unwrap() >> 8;
    assert_eq!(class, 0x01_08_02);
    assert_eq!(f.msix_vector_count().unwrap(), 5);
    assert_eq!(f.map_bar(0).unwrap().len(), 16 * 1024);

    // Enough queue pairs and a wide stride need a bigger BAR0 (a power of two).
    let config = NvmeModelConfig {
        max_queues: 2047,
        dstrd: 1,
        ..NvmeModelConfig::default()
    };
    assert_eq!(config.bar0_size(), 64 * 1024);
}

#[test]
fn registers_at_power_on() {
    let ctrl = Ctrl::open(&bus("mqes = 255\ndstrd = 2\ntimeout_500ms = 4"));
    let cap = ctrl.cap();
    assert_eq!(cap.mqes(), 255);
    assert!(cap.cqr());
    assert_eq!(cap.to(), 4);
    assert_eq!(cap.dstrd(), 2);
    assert_eq!(cap.css(), 0x01, "NVM command set only");
    assert_eq!((cap.mpsmin(), cap.mpsmax()), (0, 4));
    assert!(!cap.nssrs() && !cap.cmbs() && !cap.pmrs());
    assert_eq!(
        ctrl.regs.read32(regs::CAP),
        cap.0 as u32,
        "32-bit halves work too"
    );
    assert_eq!(ctrl.regs.read32(regs::CAP + 4), (cap.0 >> 32) as u32);
    assert_eq!(Vs(ctrl.regs.read32(regs::VS)), Vs::new(1, 4, 0));
    assert_eq!(ctrl.csts(), Csts::new());
    assert_eq!(ctrl.cc(), Cc::new());
    assert_eq!(ctrl.regs.read32(regs::CMBSZ), 0);

    // INTMS/INTMC keep a mask; CSTS is read only.
    ctrl.regs.write32(regs::INTMS, 0b101);
    ctrl.regs.write32(regs::INTMC, 0b001);
    assert_eq!(ctrl.regs.read32(regs::INTMS), 0b100);
    assert_eq!(ctrl.regs.read32(regs::INTMC), 0b100);
    ctrl.regs.write32(regs::CSTS, u32::MAX);
    assert_eq!(ctrl.csts(), Csts::new());
    // ASQ/ACQ as one 64-bit write or two 32-bit ones.
    ctrl.regs.write64(regs::ASQ, 0x1234_5678_9abc_d000);
    ctrl.regs.write32(regs::ACQ, 0x2000);
    ctrl.regs.write32(regs::ACQ + 4, 0x7);
    assert_eq!(ctrl.regs.read64(regs::ASQ), 0x1234_5678_9abc_d000);
    assert_eq!(ctrl.regs.read64(regs::ACQ), 0x7_0000_2000);
}

#[test]
fn bring_up_by_hand_with_a_ready_delay_within_cap_to() {
    let mut ctrl = Ctrl::open(&bus("ready_delay_us = 250"));
    let start = ctrl.now();
    ctrl.enable(8);
    assert_eq!(
        ctrl.now() - start,
        Duration::from_micros(250),
        "RDY 1 after the delay"
    );
    assert!(ctrl.cc().en());
    assert!(ctrl.csts().rdy());

    // Clearing EN resets at once; RDY clears after the delay too.
    ctrl.regs.write32(regs::CC, 0);
    assert!(ctrl.csts().rdy(), "RDY lags CC.EN");
    let took = ctrl.wait_ready(false).unwrap();
    assert_eq!(took, Duration::from_micros(250));
    assert_eq!(ctrl.stats().controller_resets, 1);
}

#[test]
fn a_ready_delay_beyond_cap_to_lets_the_host_time_out() {
    let ctrl = Ctrl::open(&bus("ready_delay_us = 600000\ntimeout_500ms = 1"));
    ctrl.regs.write32(regs::AQA, Aqa::new(7, 7).0);
    ctrl.regs.write32(regs::CC, Ctrl::enable_value().0);
    assert_eq!(ctrl.wait_ready(true), None, "CAP.TO is 500 ms");
    ctrl.bus.clock().advance(Duration::from_millis(100));
    assert!(ctrl.csts().rdy());
}

#[test]
fn invalid_configurations_fail_the_enable_with_cfs() {
    let ctrl = Ctrl::open(&bus(""));
    let queues = ctrl
        .function
        .dma_space()
        .allocate(2 * PAGE, DmaDirection::Bidirectional)
        .unwrap();
    let good = |ctrl: &Ctrl| {
        ctrl.regs.write32(regs::AQA, Aqa::new(3, 3).0);
        ctrl.regs.write64(regs::ASQ, queues.iova());
        ctrl.regs.write64(regs::ACQ, queues.iova() + PAGE as u64);
    };
    let enable = Ctrl::enable_value();
    type Spoil = Box<dyn Fn(&Ctrl)>;
    let cases: Vec<(&str, Spoil, Cc)> = vec![
        (
            "ASQS 0",
            Box::new(|c: &Ctrl| c.regs.write32(regs::AQA, Aqa::new(0, 3).0)),
            enable,
        ),
        (
            "ACQS 0",
            Box::new(|c: &Ctrl| c.regs.write32(regs::AQA, Aqa::new(3, 0).0)),
            enable,
        ),
        (
            "ASQ unaligned",
            Box::new(|c: &Ctrl| c.regs.write64(regs::ASQ, 0x1200)),
            enable,
        ),
        (
            "ACQ unaligned",
            Box::new(|c: &Ctrl| c.regs.write64(regs::ACQ, 0x1010)),
            enable,
        ),
        (
            "MPS above MPSMAX",
            Box::new(|_: &Ctrl| {}),
            enable.with_mps(5),
        ),
        (
            "CSS admin only",
            Box::new(|_: &Ctrl| {}),
            enable.with_css(Cc::CSS_ADMIN_ONLY),
        ),
        ("IOSQES 5", Box::new(|_: &Ctrl| {}), enable.with_iosqes(5)),
        ("IOCQES 3", Box::new(|_: &Ctrl| {}), enable.with_iocqes(3)),
        (
            "AMS vendor",
            Box::new(|_: &Ctrl| {}),
            enable.with_ams(0b111),
        ),
    ];
    for (what, spoil, cc) in cases {
        good(&ctrl);
        spoil(&ctrl);
        ctrl.regs.write32(regs::CC, cc.0);
        let csts = ctrl.csts();
        assert!(csts.cfs() && !csts.rdy(), "{what}: {csts:?}");
        ctrl.regs.write32(regs::CC, 0);
        assert_eq!(ctrl.csts(), Csts::new(), "{what}: disabling clears CFS");
    }
    // Entry sizes may be left zero at enable (admin-only use until I/O queues).
    good(&ctrl);
    ctrl.regs
        .write32(regs::CC, enable.with_iosqes(0).with_iocqes(0).0);
    assert!(ctrl.csts().rdy());
}

#[test]
fn shutdown_notification_completes() {
    let mut ctrl = Ctrl::enabled("");
    let cc = Ctrl::enable_value().with_shn(Cc::SHN_NORMAL);
    ctrl.regs.write32(regs::CC, cc.0);
    assert_eq!(ctrl.csts().shst(), Csts::SHST_COMPLETE);
    ctrl.disable();
    assert_eq!(ctrl.csts(), Csts::new());
}

#[test]
fn identify_controller_namespace_and_active_list() {
    let mut ctrl = Ctrl::enabled(
        "namespaces = 3\nblocks = 1000\nlba_size = 4096\nmdts = 3\nserial = \"SN42\"\n\
         model_number = \"Test Ctrl\"\nshadow_doorbells = true",
    );
    let buf = ctrl.buffer(PAGE, DmaDirection::FromDevice, |_| 0xee);
    ctrl.admin_ok(SubmissionEntry::identify(Cns::Controller, 0, buf.iova()));
    let id: IdentifyController = bytemuck::pod_read_unaligned(buf.as_slice());
    assert_eq!((id.vid, id.ssvid), (0x1b36, 0x1af4));
    assert_eq!(id.serial(), "SN42");
    assert_eq!(id.model(), "Test Ctrl");
    assert_eq!(id.mdts(), 3);
    assert_eq!(id.version(), Vs::new(1, 4, 0));
    assert_eq!(id.nn, 3);
    assert_eq!((id.sqes, id.cqes), (0x66, 0x44));
    assert_eq!((id.aerl, id.acl, id.elpe), (3, 3, 3));
    assert!(id.supports_doorbell_buffer_config());
    assert!(id.supports_dataset_management() && id.supports_write_zeroes());
    assert!(id.has_volatile_write_cache());
    assert_eq!(id.sgls, 0, "PRPs only");
    assert!(id.subsystem_nqn().ends_with("SN42"));

    let buf = ctrl.buffer(PAGE, DmaDirection::FromDevice, |_| 0xee);
    ctrl.admin_ok(SubmissionEntry::identify(Cns::Namespace, 2, buf.iova()));
    let ns: IdentifyNamespace = bytemuck::pod_read_unaligned(buf.as_slice());
    assert_eq!((ns.nsze, ns.ncap, ns.nuse), (1000, 1000, 1000));
    assert_eq!(ns.nlbaf, 0);
    assert_eq!(ns.block_size(), Some(4096));
    assert_eq!(ns.metadata_size(), 0);
    assert_eq!(ns.dlfeat & 0x7, 0x1, "deallocated blocks read as zeroes");
    let other: IdentifyNamespace = {
        ctrl.admin_ok(SubmissionEntry::identify(Cns::Namespace, 3, buf.iova()));
        bytemuck::pod_read_unaligned(buf.as_slice())
    };
    assert_ne!(ns.nguid, other.nguid, "unique per namespace");

    for (nsid, expected) in [(0, vec![1, 2, 3]), (1, vec![2, 3]), (3, vec![])] {
        ctrl.admin_ok(SubmissionEntry::identify(
            Cns::ActiveNamespaceList,
            nsid,
            buf.iova(),
        ));
        let list: ActiveNamespaceList = bytemuck::pod_read_unaligned(buf.as_slice());
        assert_eq!(list.iter().collect::<Vec<_>>(), expected);
    }

    let bad = [
        (
            SubmissionEntry::identify(Cns::Namespace, 0, buf.iova()),
            Status::INVALID_NAMESPACE_OR_FORMAT,
        ),
        (
            SubmissionEntry::identify(Cns::Namespace, 4, buf.iova()),
            Status::INVALID_NAMESPACE_OR_FORMAT,
        ),
        (
            SubmissionEntry::identify(Cns::Namespace, NSID_ALL, buf.iova()),
            Status::INVALID_NAMESPACE_OR_FORMAT,
        ),
        (
            SubmissionEntry::identify(Cns::ActiveNamespaceList, NSID_ALL - 1, buf.iova()),
            Status::INVALID_NAMESPACE_OR_FORMAT,
        ),
        (
            SubmissionEntry {
                cdw10: 0x55,
                ..SubmissionEntry::identify(Cns::Controller, 0, buf.iova())
            },
            Status::INVALID_FIELD,
        ),
        (SubmissionEntry::new(0x03), Status::INVALID_OPCODE),
    ];
    for (sqe, expected) in bad {
        let status = ctrl.admin(sqe).status();
        assert_eq!(status, expected.with_dnr(), "{sqe:?}");
    }
}

#[test]
fn identify_into_a_buffer_split_over_two_pages() {
    let mut ctrl = Ctrl::enabled("metadata_size = 8");
    let pages = ctrl.buffer(3 * PAGE, DmaDirection::FromDevice, |_| 0);
    // PRP1 in the middle of the first page, PRP2 the third page.
    let prp1 = pages.iova() + 2048;
    let prp2 = pages.iova() + 2 * PAGE as u64;
    let mut sqe = SubmissionEntry::identify(Cns::Namespace, 1, prp1);
    sqe.prp2 = prp2;
    ctrl.admin_ok(sqe);
    let mut raw = [0u8; PAGE];
    raw[..2048].copy_from_slice(&pages.as_slice()[2048..PAGE]);
    raw[2048..].copy_from_slice(&pages.as_slice()[2 * PAGE..2 * PAGE + 2048]);
    let ns: IdentifyNamespace = bytemuck::pod_read_unaligned(&raw);
    assert_eq!(ns.nsze, 262_144);
    assert_eq!((ns.block_size(), ns.metadata_size()), (Some(512), 8));
    assert_eq!(ns.mc, 0b10, "metadata in a separate buffer");
    assert!(pages.as_slice()[PAGE..2 * PAGE].iter().all(|&b| b == 0));
}

#[test]
fn number_of_queues_is_granted_once_until_queues_exist() {
    let mut ctrl = Ctrl::enabled("max_queues = 4");
    let get = SubmissionEntry::get_features(FeatureId::NumberOfQueues);
    assert_eq!(
        NumberOfQueues::from_dword(ctrl.admin_ok(get)),
        NumberOfQueues { nsq: 3, ncq: 3 }
    );

    let granted = ctrl.admin_ok(SubmissionEntry::set_features_number_of_queues(1, 15));
    assert_eq!(
        NumberOfQueues::from_dword(granted),
        NumberOfQueues { nsq: 1, ncq: 3 }
    );
    let again = ctrl.admin_ok(SubmissionEntry::set_features_number_of_queues(0, 0));
    assert_eq!(
        again, granted,
        "the allocation does not change until a reset"
    );
    assert_eq!(ctrl.admin_ok(get), granted);

    let invalid = ctrl.admin(SubmissionEntry::set_features_number_of_queues(u16::MAX, 0));
    assert_eq!(invalid.status(), Status::INVALID_FIELD.with_dnr());

    // Queue IDs beyond the grant are refused; within it they work.
    let _pair = ctrl.create_io(2, 8);
    let pair = QueuePair::new(&ctrl, 3, 8, 8);
    let sq = ctrl.admin(SubmissionEntry::create_io_sq(3, 7, pair.sq.iova(), 2, 0));
    assert_eq!(sq.status(), Status::INVALID_QUEUE_IDENTIFIER.with_dnr());
    let late = ctrl.admin(SubmissionEntry::set_features_number_of_queues(3, 3));
    assert_eq!(late.status(), Status::COMMAND_SEQUENCE_ERROR.with_dnr());

    // A controller reset restores the defaults.
    ctrl.disable();
    ctrl.enable(4);
    assert_eq!(
        NumberOfQueues::from_dword(ctrl.admin_ok(get)),
        NumberOfQueues { nsq: 3, ncq: 3 }
    );
}

#[test]
fn other_features_round_trip_and_refuse_what_is_not_supported() {
    let mut ctrl = Ctrl::enabled("");
    ctrl.admin_ok(SubmissionEntry::set_features(
        FeatureId::InterruptCoalescing,
        0x0a07,
    ));
    assert_eq!(
        ctrl.admin_ok(SubmissionEntry::get_features(
            FeatureId::InterruptCoalescing
        )),
        0x0a07
    );
    ctrl.admin_ok(SubmissionEntry::set_features(
        FeatureId::AsyncEventConfiguration,
        0x1ff,
    ));
    let aec = SubmissionEntry::get_features(FeatureId::AsyncEventConfiguration);
    assert_eq!(ctrl.admin_ok(aec), 0x1ff);
    // SEL 001b: the default; 011b: capabilities (changeable, not saveable).
    assert_eq!(
        ctrl.admin_ok(SubmissionEntry {
            cdw10: aec.cdw10 | (1 << 8),
            ..aec
        }),
        0
    );
    assert_eq!(
        ctrl.admin_ok(SubmissionEntry {
            cdw10: aec.cdw10 | (3 << 8),
            ..aec
        }),
        0b100
    );

    let mut saved = SubmissionEntry::set_features(FeatureId::InterruptCoalescing, 0);
    saved.cdw10 |= 1 << 31;
    assert_eq!(
        ctrl.admin(saved).status(),
        Status::FEATURE_NOT_SAVEABLE.with_dnr()
    );
    let mut unknown = SubmissionEntry::get_features(FeatureId::InterruptCoalescing);
    unknown.cdw10 = 0x06;
    assert_eq!(
        ctrl.admin(unknown).status(),
        Status::INVALID_FIELD.with_dnr()
    );
    let mut per_ns = SubmissionEntry::set_features(FeatureId::AsyncEventConfiguration, 0);
    per_ns.nsid = 1;
    assert_eq!(
        ctrl.admin(per_ns).status().sc(),
        0x0f,
        "Feature Not Namespace Specific"
    );
    // Doorbell Buffer Config is an optional command this configuration lacks.
    let dbbuf = SubmissionEntry::doorbell_buffer_config(0x10_0000, 0x20_0000);
    assert_eq!(
        ctrl.admin(dbbuf).status(),
        Status::INVALID_OPCODE.with_dnr()
    );
}

#[test]
fn factory_reads_parameters_and_names_bad_ones() {
    let table: toml::Table =
        "mqes = 63\nlatency_ns = 1500\nready_delay_us = 7\nshadow_doorbells = true"
            .parse()
            .unwrap();
    let built = model::factory(&table).unwrap();
    let m = built.as_any().downcast_ref::<NvmeModel>().unwrap();
    assert_eq!(m.config().mqes, 63);
    assert_eq!(m.config().latency, Duration::from_nanos(1500));
    assert_eq!(m.config().ready_delay, Duration::from_micros(7));
    assert!(m.config().shadow_doorbells);
    assert_eq!(m.config().blocks, NvmeModelConfig::default().blocks);

    let error = |text: &str| match model::factory(&text.parse().unwrap()) {
        Ok(_) => panic!("{text} accepted"),
        Err(err) => err.to_string(),
    };
    for (text, needles) in [
        ("lba_size = 1024", &["lba_size", "1024", "512 or 4096"][..]),
        ("mqes = \"big\"", &["mqes", "\"big\"", "integer"]),
        ("mqes = 0", &["mqes", "0", "reserved"]),
        ("dstrd = 16", &["dstrd", "16", "0..=15"]),
        ("max_queues = 0", &["max_queues", "1..=2047"]),
        ("namespaces = 2000", &["namespaces", "2000"]),
        ("blocks = -1", &["blocks", "-1"]),
        (
            "shadow_doorbells = 1",
            &["shadow_doorbells", "true or false"],
        ),
        ("serial = \"012345678901234567890\"", &["serial", "20"]),
        (
            "colour = \"blue\"",
            &["unknown parameter colour", "\"blue\"", "mqes"],
        ),
    ] {
        let err = error(text);
        for needle in needles {
            assert!(err.contains(needle), "{text}: {err}");
        }
    }
    assert!(NvmeModel::new(NvmeModelConfig {
        mdts: 17,
        ..NvmeModelConfig::default()
    })
    .is_err());
}

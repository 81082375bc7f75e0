//! The 82599 driver under the framework's reset coordinator, on the simulated bus: a reset
//! group of an NVMe controller (01:00.0, FLR and bus reset) and an 82599 port (01:00.1, FLR)
//! whose model generator feeds 64 UDP flows into four RSS queues; the driver echoes every
//! frame back out (counted at the model's TX sink). Virtual time throughout (`bus.clock()`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci_framework::device::{PciFunction, RegisterIo, ResetMethod, ResetTarget};
use userpci_framework::dma::{DmaBuffer, DmaDirection, PoolBuffer};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    CoordinatorConfig, Outcome, ParticipantConfig, Phase, ResetCause, ResetCoordinator, ResetKind,
    ResetRequest, ResetScope,
};
use userpci_ixgbe::model::IxgbeModel;
use userpci_ixgbe::spec::regs;
use userpci_ixgbe::{
    IxgbeDevice, IxgbeOptions, IxgbeParticipant, IxgbeResetOptions, ResetState, RxQueue, TxQueue,
};
use userpci_nvme::model::NvmeModel;
use userpci_nvme::{Controller, ControllerOptions, IoQueuePair, Namespace, NvmeParticipant};

const NVME: &str = "01:00.0";
const NIC: &str = "01:00.1";
const MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x42];
const QUEUES: u16 = 4;
const BLOCK: usize = 512;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

/// The group: NVMe 01:00.0 and the 82599 01:00.1, the model's link training taking
/// `link_delay_ms`.
fn bus(link_delay_ms: u64) -> Arc<SimBus> {
    let nvme: toml::Table = "latency_ns = 100000\nblocks = 4096".parse().unwrap();
    let nic: toml::Table = format!(
        "mac = \"02:00:00:00:00:42\"\nlink_delay_us = {}\n\
         generator = {{ rate_pps = 200000, flows = 64, frame_len = 100 }}",
        link_delay_ms * 1000
    )
    .parse()
    .unwrap();
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(NVME, "nvme")
        .params(nvme)
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .function(NIC, "ixgbe")
        .params(nic)
        .reset_methods(&[ResetMethod::Flr])
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    userpci_nvme::model::register(&mut registry);
    userpci_ixgbe::model::register(&mut registry);
    SimBus::new(topology, &registry).unwrap()
}

type Dev = IxgbeDevice<Arc<SimFunction>>;

/// The NIC, its queues, and what came through them.
struct Nic {
    dev: Arc<Dev>,
    rxs: Vec<RxQueue<Arc<SimFunction>>>,
    tx: TxQueue<Arc<SimFunction>>,
    per_queue: Vec<u64>,
    queue_of_flow: BTreeMap<u16, BTreeSet<u16>>,
    received: u64,
    pending: Vec<PoolBuffer>,
}

impl Nic {
    /// Receives on every queue, echoes what arrived, for `rounds` rounds of 20 µs.
    fn pump(&mut self, bus: &SimBus, rounds: usize) {
        let mut bufs = Vec::with_capacity(32);
        for _ in 0..rounds {
            for rx in &mut self.rxs {
                while rx.rx_batch(&mut bufs, 32) > 0 {
                    for p in bufs.drain(..) {
                        let port = u16::from_be_bytes([p.as_slice()[34], p.as_slice()[35]]);
                        self.queue_of_flow
                            .entry(port)
                            .or_default()
                            .insert(rx.index());
                        self.per_queue[usize::from(rx.index())] += 1;
                        self.received += 1;
                        if self.pending.len() < 256 {
                            self.pending.push(p);
                        }
                    }
                }
            }
            self.tx.tx_batch(&mut self.pending);
            bus.clock().advance(Duration::from_micros(20));
        }
    }

    fn sent(&self, bus: &SimBus) -> u64 {
        bus.with_model(addr(NIC), |m: &mut IxgbeModel| m.sink().frames_sent())
            .unwrap()
    }
}

/// One NVMe queue pair and the writes it was told succeeded.
struct Storage {
    ctrl: Controller<Arc<SimFunction>>,
    qp: IoQueuePair<Arc<SimFunction>, u64, DmaBuffer>,
    ns: Namespace,
    acknowledged: BTreeSet<u64>,
    failed: u64,
    next: u64,
}

fn pattern(token: u64, i: usize) -> u8 {
    (token.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u8 ^ (i as u8).wrapping_mul(7)
}

impl Storage {
    fn write(&mut self, bus: &SimBus, count: u64) {
        for _ in 0..count {
            let token = self.next;
            let mut buf = bus
                .dma_space()
                .allocate_buffer(8 * BLOCK, DmaDirection::ToDevice)
                .unwrap();
            for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
                *b = pattern(token, i);
            }
            self.qp
                .submit_write(&self.ns, token * 8, buf, token)
                .unwrap();
            self.next += 1;
        }
        self.qp.commit().unwrap();
    }

    fn poll(&mut self) {
        let (acked, failed) = (&mut self.acknowledged, &mut self.failed);
        self.qp.process_completions(0, &mut |c| match c.result {
            Ok(()) => assert!(
                acked.insert(c.token),
                "write {} acknowledged twice",
                c.token
            ),
            Err(_) => *failed += 1,
        });
    }

    /// Acknowledged writes whose data is not on the namespace.
    fn lost(&self, bus: &SimBus) -> usize {
        self.acknowledged
            .iter()
            .filter(|&&token| {
                let mut data = vec![0u8; 8 * BLOCK];
                bus.with_model(addr(NVME), |m: &mut NvmeModel| {
                    m.read_namespace(1, token * 8 * BLOCK as u64, &mut data)
                })
                .unwrap()
                .unwrap();
                data.iter()
                    .enumerate()
                    .any(|(i, &b)| b != pattern(token, i))
            })
            .count()
    }
}

struct Rig {
    bus: Arc<SimBus>,
    coordinator: ResetCoordinator,
    nic: Nic,
    storage: Option<Storage>,
}

fn rig(link_delay_ms: u64, link_budget: Duration, with_nvme: bool) -> Rig {
    let bus = bus(link_delay_ms);
    let coordinator =
        ResetCoordinator::new(Arc::clone(bus.clock()) as _, CoordinatorConfig::default());
    let storage = with_nvme.then(|| {
        let function = Arc::new(bus.open(addr(NVME)).unwrap());
        let ctrl = Controller::new(Arc::clone(&function), ControllerOptions::default()).unwrap();
        coordinator
            .register(
                function as Arc<dyn ResetTarget>,
                Box::new(NvmeParticipant::new(ctrl.clone(), "nvme 01:00.0")),
                ParticipantConfig {
                    priority: 0,
                    ..ParticipantConfig::default()
                },
            )
            .expect("the first participant for this function");
        let qp = ctrl.create_io_qpair(Default::default()).unwrap();
        let ns = ctrl.namespaces()[0].clone();
        Storage {
            ctrl,
            qp,
            ns,
            acknowledged: BTreeSet::new(),
            failed: 0,
            next: 0,
        }
    });
    let function = Arc::new(bus.open(addr(NIC)).unwrap());
    let dev = Arc::new(
        IxgbeDevice::new(
            Arc::clone(&function),
            IxgbeOptions {
                rx_queues: QUEUES,
                tx_queues: 1,
                rx_ring_size: 128,
                tx_ring_size: 256,
                promiscuous: false,
                link_timeout: Duration::from_secs(1),
                require_link: true,
                ..IxgbeOptions::default()
            },
        )
        .unwrap(),
    );
    // Multicast promiscuous on, unicast off: a filter state the reset must not forget.
    dev.set_multicast_promiscuous(true);
    let participant = IxgbeParticipant::new(
        Arc::clone(&dev),
        "ixgbe 01:00.1",
        IxgbeResetOptions {
            link_budget,
            ..IxgbeResetOptions::default()
        },
    )
    .unwrap();
    coordinator
        .register(
            function as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig {
                priority: 10,
                ..ParticipantConfig::default()
            },
        )
        .expect("the first participant for this function");
    let rxs = (0..QUEUES).map(|q| dev.take_rx_queue(q).unwrap()).collect();
    let tx = dev.take_tx_queue(0).unwrap();
    Rig {
        bus,
        coordinator,
        nic: Nic {
            dev,
            rxs,
            tx,
            per_queue: vec![0; usize::from(QUEUES)],
            queue_of_flow: BTreeMap::new(),
            received: 0,
            pending: Vec::with_capacity(256),
        },
        storage,
    }
}

/// Reads a NIC register through a second mapping of BAR0.
fn reg(rig: &Rig, offset: usize) -> u32 {
    rig.nic.dev.function().map_bar(0).unwrap().read32(offset)
}

/// MAC, filters and RSS as the driver programmed them.
fn assert_configured(rig: &Rig) {
    let (ral, rah) = regs::ral_rah_from_mac(MAC, true);
    assert_eq!((reg(rig, regs::RAL(0)), reg(rig, regs::RAH(0))), (ral, rah));
    let fctrl = reg(rig, regs::FCTRL);
    assert_eq!(
        fctrl & regs::FCTRL_MPE,
        regs::FCTRL_MPE,
        "multicast promiscuous"
    );
    assert_eq!(fctrl & regs::FCTRL_UPE, 0, "unicast promiscuous stays off");
    assert_eq!(
        fctrl & regs::FCTRL_BAM,
        regs::FCTRL_BAM,
        "broadcast accepted"
    );
    assert_eq!(
        reg(rig, regs::MRQC) & regs::MRQC_MRQE_MASK,
        regs::MRQC_MRQE_RSS
    );
    for (n, key) in userpci_ixgbe::init::RSS_KEY.chunks_exact(4).enumerate() {
        let want = u32::from_le_bytes([key[0], key[1], key[2], key[3]]);
        assert_eq!(reg(rig, regs::RSSRK(n)), want, "RSSRK({n})");
    }
    for n in 0..regs::RETA_ENTRIES / 4 {
        assert_ne!(reg(rig, regs::RETA(n)), 0, "RETA({n}) spreads");
    }
    assert!(rig.nic.dev.link().up);
    assert!(!rig.nic.dev.is_promiscuous());
}

/// Traffic flows: some packets received on every RSS queue, each flow on one queue, and
/// echoed out. Returns (received, sent) during the window.
fn assert_traffic(rig: &mut Rig, rounds: usize) -> (u64, u64) {
    let (rx0, tx0) = (rig.nic.received, rig.nic.sent(&rig.bus));
    let before = rig.nic.per_queue.clone();
    rig.nic.pump(&rig.bus, rounds);
    let (rx, tx) = (rig.nic.received - rx0, rig.nic.sent(&rig.bus) - tx0);
    assert!(rx > 100, "received {rx}");
    assert!(tx > 100, "sent {tx}");
    for (q, (now, then)) in rig.nic.per_queue.iter().zip(&before).enumerate() {
        assert!(
            now > then,
            "RSS queue {q} got nothing: {:?}",
            rig.nic.per_queue
        );
    }
    for (port, queues) in &rig.nic.queue_of_flow {
        assert_eq!(queues.len(), 1, "flow {port} on queues {queues:?}");
    }
    (rx, tx)
}

fn outcome(report: &userpci_framework::reset::ResetReport, at: &str) -> Outcome {
    report
        .members
        .iter()
        .find(|m| m.address == addr(at))
        .unwrap()
        .outcome
        .clone()
}

#[test]
fn an_flr_of_the_nic_alone_restores_mac_filters_rss_and_traffic() {
    let mut rig = rig(10, Duration::from_secs(1), false);
    assert_configured(&rig);
    assert_traffic(&mut rig, 200);
    // Something in flight in the TX ring when the reset comes.
    rig.nic.pump(&rig.bus, 1);
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr(NIC), ResetCause::Api).with_scope(ResetScope::Function))
        .unwrap();
    let report = outcome.report;
    assert_eq!(report.kind, ResetKind::Flr);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.bus.stats(addr(NIC)).unwrap().function_resets, 1);
    assert_eq!(rig.nic.dev.reset_state(), ResetState::Running);
    let info = rig.nic.dev.reset_info();
    assert_eq!((info.quiesces, info.recoveries), (1, 1));
    let link_up = info.last_link_up.unwrap();
    assert!(link_up >= Duration::from_millis(10) && link_up <= Duration::from_secs(1));
    assert_configured(&rig);
    // The flows are hashed as before: each stays on one queue across the reset.
    assert_traffic(&mut rig, 200);
    for rx in &rig.nic.rxs {
        assert_eq!(rx.resets(), 1, "queue {} restarted once", rx.index());
    }
    let model = rig
        .bus
        .with_model(addr(NIC), |m: &mut IxgbeModel| m.stats())
        .unwrap();
    assert_eq!(model.protocol_violations, 0, "{model:?}");
    assert_eq!(model.dma_faults, 0, "{model:?}");
    let sim = rig.bus.stats(addr(NIC)).unwrap();
    assert_eq!(sim.mmio_while_memory_disabled, 0);
    // Every pool buffer comes back: rings hold theirs, nothing leaked.
    drop(rig.nic.pending.drain(..));
}

#[test]
fn a_bus_reset_of_the_group_recovers_the_nvme_controller_and_the_nic() {
    let mut rig = rig(10, Duration::from_secs(1), true);
    let storage = rig.storage.as_mut().unwrap();
    storage.write(&rig.bus, 16);
    assert_traffic(&mut rig, 200);
    let storage = rig.storage.as_mut().unwrap();
    storage.write(&rig.bus, 8);
    let outcome = rig
        .coordinator
        .request(
            ResetRequest::new(addr(NVME), ResetCause::NotResponding).with_scope(ResetScope::Group),
        )
        .unwrap();
    let report = outcome.report;
    assert_eq!(report.kind, ResetKind::Bus);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.bus.stats(addr(NIC)).unwrap().bus_resets, 1);
    assert_eq!(rig.bus.stats(addr(NVME)).unwrap().bus_resets, 1);
    // NVMe first (priority 0), then the NIC (10).
    let order: Vec<&str> = report
        .timeline
        .phases
        .iter()
        .filter(|p| p.phase == Phase::Recover)
        .map(|p| p.member.as_str())
        .collect();
    assert_eq!(order, vec!["nvme 01:00.0", "ixgbe 01:00.1"]);
    assert_configured(&rig);
    assert_traffic(&mut rig, 200);
    let storage = rig.storage.as_mut().unwrap();
    storage.write(&rig.bus, 8);
    for _ in 0..2000 {
        storage.poll();
        if storage.acknowledged.len() as u64 + storage.failed == storage.next {
            break;
        }
        rig.bus.clock().advance(Duration::from_millis(1));
    }
    assert_eq!(storage.failed, 0);
    assert_eq!(storage.acknowledged.len(), 32);
    assert_eq!(storage.lost(&rig.bus), 0);
    assert!(storage.ctrl.check_health().is_ok());
}

#[test]
fn a_link_that_stays_down_past_its_budget_fails_the_nic_and_the_others_recover() {
    // Link training takes 80 ms; the NIC's budget is 20 ms.
    let mut rig = rig(80, Duration::from_millis(20), true);
    let storage = rig.storage.as_mut().unwrap();
    storage.write(&rig.bus, 8);
    assert_traffic(&mut rig, 200);
    let report = rig
        .coordinator
        .request(
            ResetRequest::new(addr(NVME), ResetCause::NotResponding).with_scope(ResetScope::Group),
        )
        .unwrap()
        .report;
    assert_eq!(report.kind, ResetKind::Bus);
    assert!(outcome(&report, NVME).is_ok(), "{report:?}");
    match outcome(&report, NIC) {
        Outcome::Failed(why) => assert!(why.contains("link did not come back"), "{why}"),
        other => panic!("the NIC should have failed: {other:?}"),
    }
    let failed = rig.coordinator.failed_participants();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].0, "ixgbe 01:00.1");
    assert!(matches!(rig.nic.dev.reset_state(), ResetState::Failed(_)));
    // The failed NIC's data path does nothing; the NVMe controller serves writes.
    let before = rig.nic.received;
    rig.nic.pump(&rig.bus, 50);
    assert_eq!(rig.nic.received, before);
    let storage = rig.storage.as_mut().unwrap();
    storage.write(&rig.bus, 8);
    for _ in 0..2000 {
        storage.poll();
        if storage.acknowledged.len() as u64 + storage.failed == storage.next {
            break;
        }
        rig.bus.clock().advance(Duration::from_millis(1));
    }
    assert_eq!(storage.acknowledged.len(), 16);
    assert_eq!(storage.lost(&rig.bus), 0);
}

#[test]
fn the_link_comes_back_within_its_budget_on_virtual_time() {
    // 30 ms of link training against a 50 ms budget: recovered, and the time it took is
    // what the model's link training takes plus the re-initialisation, on virtual time.
    let mut rig = rig(30, Duration::from_millis(50), false);
    assert_traffic(&mut rig, 100);
    let report = rig
        .coordinator
        .request(ResetRequest::new(addr(NIC), ResetCause::Api).with_scope(ResetScope::Function))
        .unwrap()
        .report;
    assert!(report.all_recovered(), "{report:?}");
    let info = rig.nic.dev.reset_info();
    let link_up = info.last_link_up.unwrap();
    assert!(link_up >= Duration::from_millis(30), "{link_up:?}");
    assert!(link_up <= Duration::from_millis(50), "{link_up:?}");
    assert_eq!(info.link_budget, Some(Duration::from_millis(50)));
    let recover = report
        .timeline
        .phases
        .iter()
        .find(|p| p.phase == Phase::Recover)
        .unwrap();
    assert!(recover.outcome.is_ok());
    assert_traffic(&mut rig, 100);
}

//! NVMe controllers under the framework's reset coordinator, on the simulated bus: a
//! three-function reset group (01:00.0-2) and one controller outside it (02:00.0), each with a
//! write workload in flight when the fault hits. Every test checks that each write is either
//! acknowledged once and durable, or failed with an error; none is lost or doubled; and that
//! the model saw no queue access while disabled or being reset, and no Delete SQ/CQ.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFault, SimFunction};
use userpci_framework::device::{ResetMethod, ResetTarget};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    CoordinatorConfig, Outcome, ParticipantConfig, Progress, ResetCause, ResetCoordinator,
    ResetKind, ResetParticipant,
};
use userpci_nvme::model::{self, NvmeModel, Recovery};
use userpci_nvme::{
    Controller, ControllerOptions, IoQueuePair, Namespace, NvmeParticipant, QpairOptions,
    ResetHandler,
};

const MEMBERS: [&str; 3] = ["01:00.0", "01:00.1", "01:00.2"];
const OUTSIDE: &str = "02:00.0";
const BLOCK: usize = 512;
const WRITE_BLOCKS: u64 = 8;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn bus() -> Arc<SimBus> {
    let params: toml::Table = "latency_ns = 200000\nblocks = 65536".parse().unwrap();
    let mut builder = TopologyBuilder::new().root_port("00:02.0", 1);
    for (i, at) in MEMBERS.iter().enumerate() {
        let methods: &[ResetMethod] = if i == 0 {
            &[ResetMethod::Flr, ResetMethod::Bus]
        } else {
            &[ResetMethod::Flr]
        };
        builder = builder
            .function(at, "nvme")
            .params(params.clone())
            .reset_methods(methods);
    }
    let topology = builder
        .root_port("00:03.0", 2)
        .function(OUTSIDE, "nvme")
        .params(params)
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    SimBus::new(topology, &registry).unwrap()
}

/// Everything a write's caller learned.
#[derive(Debug, Default)]
struct WriteRecord {
    lba: u64,
    seed: u64,
    acknowledged: u32,
    failed: Option<String>,
}

/// One controller with one queue pair and a ledger of its writes.
struct Workload {
    at: &'static str,
    qp: IoQueuePair<Arc<SimFunction>, u64, DmaBuffer>,
    ns: Namespace,
    writes: BTreeMap<u64, WriteRecord>,
    next: u64,
}

fn pattern(seed: u64, i: usize) -> u8 {
    (seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 40) as u8 ^ (i as u8).wrapping_mul(31)
}

impl Workload {
    /// Submits `count` writes of 8 blocks at distinct LBAs; returns how many went in.
    fn write(&mut self, bus: &SimBus, count: usize) -> usize {
        let mut submitted = 0;
        for _ in 0..count {
            let token = self.next;
            let lba = token * WRITE_BLOCKS;
            let seed = token + 1000 * self.at.len() as u64 + u64::from(self.at.as_bytes()[6]);
            let mut buf = bus
                .dma_space()
                .allocate_buffer(WRITE_BLOCKS as usize * BLOCK, DmaDirection::ToDevice)
                .unwrap();
            for (i, b) in buf.as_mut_slice().iter_mut().enumerate() {
                *b = pattern(seed, i);
            }
            match self.qp.submit_write(&self.ns, lba, buf, token) {
                Ok(()) => {
                    self.writes.insert(
                        token,
                        WriteRecord {
                            lba,
                            seed,
                            ..WriteRecord::default()
                        },
                    );
                    self.next += 1;
                    submitted += 1;
                }
                Err(_) => break,
            }
        }
        self.qp.commit().unwrap();
        submitted
    }

    fn poll(&mut self) {
        let writes = &mut self.writes;
        self.qp.process_completions(0, &mut |c| {
            let record = writes.get_mut(&c.token).expect("a token we issued");
            match c.result {
                Ok(()) => record.acknowledged += 1,
                Err(err) => record.failed = Some(err.to_string()),
            }
        });
    }

    fn settled(&self) -> bool {
        self.writes
            .values()
            .all(|w| w.acknowledged > 0 || w.failed.is_some())
    }

    /// Writes acknowledged more than once, or both acknowledged and failed.
    fn duplicated(&self) -> usize {
        self.writes
            .values()
            .filter(|w| w.acknowledged > 1 || (w.acknowledged == 1 && w.failed.is_some()))
            .count()
    }

    fn acknowledged(&self) -> usize {
        self.writes.values().filter(|w| w.acknowledged == 1).count()
    }

    /// Acknowledged writes whose data is not on the namespace (read through the model).
    fn lost(&self, bus: &SimBus) -> usize {
        let mut lost = 0;
        for w in self.writes.values().filter(|w| w.acknowledged > 0) {
            let mut data = vec![0u8; WRITE_BLOCKS as usize * BLOCK];
            bus.with_model(addr(self.at), |m: &mut NvmeModel| {
                m.read_namespace(1, w.lba * BLOCK as u64, &mut data)
            })
            .unwrap()
            .unwrap();
            if data
                .iter()
                .enumerate()
                .any(|(i, &b)| b != pattern(w.seed, i))
            {
                lost += 1;
            }
        }
        lost
    }
}

struct Rig {
    bus: Arc<SimBus>,
    coordinator: Arc<ResetCoordinator>,
    workloads: Vec<Workload>,
    refusals: Arc<Mutex<Vec<String>>>,
}

/// Opens every member (except those in `skip`), registers their participants and starts a
/// queue pair on each. `hook` may wrap a participant.
fn rig_with(
    bus: Arc<SimBus>,
    skip: &[&str],
    mut hook: impl FnMut(&str, Box<dyn ResetParticipant>) -> Box<dyn ResetParticipant>,
) -> Rig {
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let refusals = Arc::new(Mutex::new(Vec::new()));
    let mut workloads = Vec::new();
    for (priority, at) in MEMBERS.iter().chain([&OUTSIDE]).enumerate() {
        if skip.contains(at) {
            continue;
        }
        let function = Arc::new(bus.open(addr(at)).unwrap());
        let handler = {
            let coordinator = Arc::clone(&coordinator);
            let refusals = Arc::clone(&refusals);
            ResetHandler::new(move |device, cause| {
                match coordinator
                    .request(userpci_framework::reset::ResetRequest::new(device, cause))
                {
                    Ok(_) => true,
                    Err(err) => {
                        refusals.lock().unwrap().push(err.to_string());
                        false
                    }
                }
            })
        };
        let ctrl = Controller::new(
            Arc::clone(&function),
            ControllerOptions {
                reset_handler: Some(handler),
                ..ControllerOptions::default()
            },
        )
        .unwrap();
        let participant = hook(
            at,
            Box::new(NvmeParticipant::new(ctrl.clone(), format!("nvme {at}"))),
        );
        coordinator
            .register(
                function as Arc<dyn ResetTarget>,
                participant,
                ParticipantConfig {
                    priority: priority as u32,
                    ..ParticipantConfig::default()
                },
            )
            .expect("the first participant for this function");
        let qp = ctrl
            .create_io_qpair(QpairOptions {
                entries: 32,
                ..QpairOptions::default()
            })
            .unwrap();
        let ns = ctrl.namespaces()[0].clone();
        workloads.push(Workload {
            at,
            qp,
            ns,
            writes: BTreeMap::new(),
            next: 0,
        });
    }
    Rig {
        bus,
        coordinator,
        workloads,
        refusals,
    }
}

fn rig() -> Rig {
    rig_with(bus(), &[], |_, p| p)
}

impl Rig {
    fn workload(&mut self, at: &str) -> &mut Workload {
        self.workloads.iter_mut().find(|w| w.at == at).unwrap()
    }

    fn write_everywhere(&mut self, count: usize) {
        for w in &mut self.workloads {
            assert_eq!(w.write(&self.bus, count), count, "{}", w.at);
        }
    }

    /// Polls every queue pair and lets virtual time run until every write settled.
    fn settle(&mut self) {
        for _ in 0..20_000 {
            for w in &mut self.workloads {
                w.poll();
            }
            if self.workloads.iter().all(Workload::settled) {
                return;
            }
            self.bus.clock().advance(Duration::from_millis(1));
        }
        let open: Vec<_> = self
            .workloads
            .iter()
            .map(|w| {
                (
                    w.at,
                    w.writes
                        .values()
                        .filter(|r| r.acknowledged == 0 && r.failed.is_none())
                        .count(),
                )
            })
            .collect();
        panic!("writes still open after 20 s of virtual time: {open:?}");
    }

    /// No acknowledged write lost or doubled on reachable controllers; no protocol violation.
    fn assert_no_loss(&self, unreachable: &[&str]) {
        for w in &self.workloads {
            assert_eq!(w.duplicated(), 0, "{}: duplicated", w.at);
            if !unreachable.contains(&w.at) {
                assert_eq!(w.lost(&self.bus), 0, "{}: lost", w.at);
            }
            let stats = self
                .bus
                .with_model(addr(w.at), |m: &mut NvmeModel| m.stats())
                .unwrap();
            assert_eq!(
                stats.violations.total(),
                0,
                "{}: {:?}",
                w.at,
                stats.violations
            );
            assert_eq!((stats.sq_deletes, stats.cq_deletes), (0, 0), "{}", w.at);
            let sim = self.bus.stats(addr(w.at)).unwrap();
            assert_eq!(
                sim.mmio_while_memory_disabled, 0,
                "{}: would be SIGBUS on VFIO",
                w.at
            );
        }
    }

    fn resets(&self, at: &str) -> (u64, u64) {
        let s = self.bus.stats(addr(at)).unwrap();
        (s.function_resets, s.bus_resets)
    }
}

#[test]
fn a_fatal_controller_gets_an_flr_of_its_function_alone() {
    let mut rig = rig();
    rig.write_everywhere(8);
    rig.bus
        .with_model(addr("01:00.1"), |m: &mut NvmeModel| {
            m.fatal(Recovery::FunctionReset)
        })
        .unwrap();
    // Its writes time out (5 s, virtual); the queue pair sees CSTS.CFS and asks the
    // coordinator, which plans an FLR: 01:00.1 has one and the fault is its own.
    for _ in 0..60 {
        rig.bus.clock().advance(Duration::from_millis(100));
        for w in &mut rig.workloads {
            w.poll();
        }
    }
    rig.settle();
    let report = rig
        .coordinator
        .last_report()
        .expect("a coordinated reset ran");
    assert_eq!(report.kind, ResetKind::Flr);
    assert_eq!(report.request.cause, ResetCause::FatalStatus);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.resets("01:00.1"), (1, 0));
    assert_eq!(rig.resets("01:00.0"), (0, 0));
    for w in &rig.workloads {
        assert_eq!(w.acknowledged(), 8, "{}", w.at);
    }
    assert!(rig.workload("01:00.1").qp.stats().reissued >= 8);
    rig.assert_no_loss(&[]);
}

#[test]
fn a_link_down_gets_a_bus_reset_of_the_whole_group_and_every_write_survives() {
    let mut rig = rig();
    rig.write_everywhere(8);
    rig.bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    rig.write_everywhere(4);
    rig.settle();
    let report = rig
        .coordinator
        .last_report()
        .expect("a coordinated reset ran");
    assert_eq!(report.kind, ResetKind::Bus);
    assert_eq!(report.request.cause, ResetCause::NotResponding);
    let members: Vec<PciAddress> = report.members.iter().map(|m| m.address).collect();
    assert_eq!(members, MEMBERS.map(addr).to_vec());
    assert!(report.all_recovered(), "{report:?}");
    for at in MEMBERS {
        assert_eq!(rig.resets(at), (0, 1), "{at}");
    }
    assert_eq!(rig.resets(OUTSIDE), (0, 0));
    for w in &rig.workloads {
        assert_eq!(w.acknowledged(), 12, "{}", w.at);
    }
    // Recovery in priority order: 01:00.0, then .1, then .2.
    let order: Vec<&str> = report
        .timeline
        .phases
        .iter()
        .filter(|p| p.phase == userpci_framework::reset::Phase::Recover)
        .map(|p| p.member.as_str())
        .collect();
    assert_eq!(order, vec!["nvme 01:00.0", "nvme 01:00.1", "nvme 01:00.2"]);
    rig.assert_no_loss(&[]);
}

#[test]
fn a_bus_reset_blocked_by_a_member_owned_elsewhere_is_refused_and_no_write_is_acknowledged_wrongly()
{
    let bus = bus();
    bus.hold_elsewhere(addr("01:00.2"), "pid 4242").unwrap();
    let mut rig = rig_with(bus, &["01:00.2"], |_, p| p);
    rig.write_everywhere(6);
    rig.bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    rig.settle();
    let refusals = rig.refusals.lock().unwrap().clone();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert!(
        refusals[0].contains("0000:01:00.2 is owned by pid 4242"),
        "{}",
        refusals[0]
    );
    assert_eq!(rig.resets("01:00.0"), (0, 0), "nothing was reset");
    let broken = rig.workload("01:00.0");
    assert!(broken
        .writes
        .values()
        .all(|w| w.acknowledged == 0 && w.failed.is_some()));
    assert_eq!(rig.workload("01:00.1").acknowledged(), 6);
    rig.assert_no_loss(&["01:00.0"]);
}

#[test]
fn a_member_that_never_comes_back_is_failed_and_the_others_recover() {
    let mut rig = rig();
    rig.write_everywhere(8);
    rig.bus
        .inject(
            addr("01:00.1"),
            SimFault::SlowReady(Duration::from_secs(120)),
        )
        .unwrap();
    rig.bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    rig.settle();
    let report = rig.coordinator.last_report().unwrap();
    let outcome = |at: &str| {
        report
            .members
            .iter()
            .find(|m| m.address == addr(at))
            .unwrap()
            .outcome
            .clone()
    };
    assert!(matches!(outcome("01:00.1"), Outcome::Failed(_)));
    assert!(outcome("01:00.0").is_ok() && outcome("01:00.2").is_ok());
    let gone = rig.workload("01:00.1");
    assert!(
        gone.writes
            .values()
            .filter(|w| w.acknowledged == 0)
            .all(|w| w.failed.as_deref().is_some_and(|e| !e.is_empty())),
        "writes of the failed member end in an error, not silence"
    );
    assert_eq!(rig.workload("01:00.0").acknowledged(), 8);
    assert_eq!(rig.workload("01:00.2").acknowledged(), 8);
    rig.assert_no_loss(&["01:00.1"]);
}

/// Wraps a participant to run `after` once its recovery is done.
struct AfterRecover {
    inner: Box<dyn ResetParticipant>,
    after: Option<Box<dyn FnOnce() + Send>>,
}

impl ResetParticipant for AfterRecover {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn address(&self) -> PciAddress {
        self.inner.address()
    }
    fn begin_quiesce(&mut self) -> userpci_framework::Result<()> {
        self.inner.begin_quiesce()
    }
    fn poll_quiesce(&mut self) -> userpci_framework::Result<Progress> {
        self.inner.poll_quiesce()
    }
    fn begin_recover(&mut self) -> userpci_framework::Result<()> {
        self.inner.begin_recover()?;
        if let Some(after) = self.after.take() {
            after();
        }
        Ok(())
    }
    fn poll_recover(&mut self) -> userpci_framework::Result<Progress> {
        self.inner.poll_recover()
    }
    fn abandon(&mut self, reason: &str) {
        self.inner.abandon(reason)
    }
}

#[test]
fn a_fault_during_recovery_fails_that_member_only() {
    let bus = bus();
    let for_hook = Arc::clone(&bus);
    let mut rig = rig_with(bus, &[], move |at, inner| {
        if at != "01:00.0" {
            return inner;
        }
        // 01:00.0 recovers first; right after, 01:00.1's controller dies (fatal until the next
        // function reset), so its own recovery fails.
        let bus = Arc::clone(&for_hook);
        Box::new(AfterRecover {
            inner,
            after: Some(Box::new(move || {
                bus.with_model(addr("01:00.1"), |m: &mut NvmeModel| {
                    m.fatal(Recovery::FunctionReset)
                })
                .unwrap();
            })),
        })
    });
    rig.write_everywhere(8);
    rig.bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    rig.settle();
    let report = rig.coordinator.last_report().unwrap();
    let failed: Vec<PciAddress> = report
        .members
        .iter()
        .filter(|m| !m.outcome.is_ok())
        .map(|m| m.address)
        .collect();
    assert_eq!(failed, vec![addr("01:00.1")], "{report:?}");
    assert_eq!(
        rig.workload("01:00.2").acknowledged(),
        8,
        "recovered after the failure"
    );
    let failed_writes = &rig.workload("01:00.1").writes;
    assert!(failed_writes
        .values()
        .filter(|w| w.acknowledged == 0)
        .all(|w| w.failed.is_some()));
    rig.assert_no_loss(&["01:00.1"]);
}

#[test]
fn a_reset_with_every_queue_full_reissues_each_write_once() {
    let mut rig = rig();
    for w in &mut rig.workloads {
        let went_in = w.write(&rig.bus, 64);
        assert_eq!(went_in, 31, "{}: a 32-entry queue holds 31 commands", w.at);
    }
    rig.bus.inject(addr("01:00.0"), SimFault::LinkDown).unwrap();
    rig.settle();
    let report = rig.coordinator.last_report().unwrap();
    assert_eq!(report.kind, ResetKind::Bus);
    assert!(report.all_recovered());
    for w in &rig.workloads {
        assert_eq!(w.acknowledged(), 31, "{}", w.at);
    }
    assert!(rig.workload("01:00.0").qp.stats().reissued >= 31);
    rig.assert_no_loss(&[]);
}

#[test]
fn the_reset_group_report_names_every_member_with_its_ownership() {
    let bus = bus();
    bus.hold_elsewhere(addr("01:00.2"), "pid 77").unwrap();
    let rig = rig_with(bus, &["01:00.2"], |_, p| p);
    let functions = rig.coordinator.functions();
    let targets: Vec<&dyn ResetTarget> = functions.iter().map(|f| f.as_ref()).collect();
    let views = userpci_framework::reset::group_report(&targets).unwrap();
    let group = views
        .iter()
        .find(|v| v.members.len() == 3)
        .expect("the three-function group");
    assert!(!group.bus_reset_possible);
    let table = userpci_framework::reset::render_table(&views);
    assert!(table.contains("elsewhere: pid 77"), "{table}");
    assert!(table.contains("bus reset not possible"), "{table}");
    drop(rig.workloads);
}

//! The reset coordinator on the simulated bus, with copy engines as participants: every branch
//! (FLR, bus reset, refusal, missed quiesce deadline, a device that never comes back, a fault
//! during recovery, coalesced requests, a reset with the ring full), each checking that every
//! copy the workload submitted completes exactly once and lands intact.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use userpci_framework::backend::sim::topology::TopologyBuilder;
use userpci_framework::backend::sim::{ModelRegistry, SimBus, SimFault, SimFunction};
use userpci_framework::device::{Ownership, PciFunction, ResetMethod, ResetTarget};
use userpci_framework::dma::{DmaBuffer, DmaDirection};
use userpci_framework::pci::PciAddress;
use userpci_framework::reset::{
    claim_reset_group, group_report, render_svg, render_table, CoordinatorConfig, Outcome,
    ParticipantConfig, Phase, Progress, ResetCause, ResetCoordinator, ResetKind, ResetParticipant,
    ResetRequest, ResetScope,
};
use userpci_framework::testdev::{model, CopyEngineDriver};
use userpci_framework::{Error, Result};

const COPY: usize = 512;
const SLOTS: u32 = 15;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

/// 00:02.0 -> 01:00.0 (flr bus) + 01:00.1 (flr): one reset group; 00:03.0 -> 02:00.0 alone.
/// Copies complete 1 ms (virtual) after their doorbell, so some are in flight at a reset.
fn bus() -> Arc<SimBus> {
    let latency: toml::Table = "latency_ns = 1000000".parse().unwrap();
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "copy-engine")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .params(latency.clone())
        .function("01:00.1", "copy-engine")
        .params(latency.clone())
        .root_port("00:03.0", 2)
        .function("02:00.0", "copy-engine")
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .params(latency)
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", model::factory);
    SimBus::new(topology, &registry).unwrap()
}

/// What each engine's workload saw: completions per tag.
#[derive(Default)]
struct Ledger {
    completions: BTreeMap<u32, u32>,
    failures: u32,
}

/// One engine, its buffers and its workload, shared by the test and the participant.
struct Engine {
    driver: CopyEngineDriver<Arc<SimFunction>>,
    source: DmaBuffer,
    destination: DmaBuffer,
    ledger: Ledger,
    stopped: bool,
}

impl Engine {
    fn submit(&mut self, tag: u32) -> Result<()> {
        let offset = u64::from(tag) * COPY as u64;
        self.driver.submit(
            self.source.iova() + offset,
            self.destination.iova() + offset,
            COPY as u32,
            tag,
        )
    }

    fn poll(&mut self) {
        let ledger = &mut self.ledger;
        self.driver.poll_completions(&mut |c| {
            *ledger.completions.entry(c.tag).or_default() += 1;
            if !c.is_ok() {
                ledger.failures += 1;
            }
        });
    }

    fn verify(&self) -> bool {
        self.source.as_slice()[..SLOTS as usize * COPY]
            == self.destination.as_slice()[..SLOTS as usize * COPY]
    }
}

type Shared = Arc<Mutex<Engine>>;

fn engine(bus: &Arc<SimBus>, at: &str) -> (Shared, Arc<SimFunction>) {
    let function = Arc::new(bus.open(addr(at)).unwrap());
    let space = function.dma_space().clone();
    let driver = CopyEngineDriver::new(Arc::clone(&function), 16).unwrap();
    let mut source = space
        .allocate_buffer(SLOTS as usize * COPY, DmaDirection::ToDevice)
        .unwrap();
    for (i, b) in source.as_mut_slice().iter_mut().enumerate() {
        *b = (i * 7 + at.len()) as u8 ^ 0x5a;
    }
    let destination = space
        .allocate_buffer(SLOTS as usize * COPY, DmaDirection::FromDevice)
        .unwrap();
    let engine = Engine {
        driver,
        source,
        destination,
        ledger: Ledger::default(),
        stopped: false,
    };
    (Arc::new(Mutex::new(engine)), function)
}

#[derive(Clone, Copy, Default)]
struct Behaviour {
    never_quiesces: bool,
    recover_fails: bool,
}

/// A copy-engine participant: quiesce stops submissions and collects what completed; recover
/// re-initialises the engine and re-submits, once, every copy the reset took away.
struct EngineParticipant {
    name: String,
    address: PciAddress,
    engine: Shared,
    behaviour: Behaviour,
    abandoned: Arc<Mutex<Option<String>>>,
    /// A request to make from another thread while quiescing (the coalescing test).
    also_request: Option<SecondRequest>,
    /// A coordinator to call from inside `begin_quiesce`, on the reset's own thread, and
    /// where to note what it answered (the re-entrancy test).
    reentrant: Option<ReentrantCall>,
}

/// The coordinator a hook calls back into, and where the hook notes the answer.
type ReentrantCall = (Arc<ResetCoordinator>, Arc<Mutex<Option<String>>>);

/// A second request: the coordinator, the request, and where to note whether it coalesced.
type SecondRequest = (
    Arc<ResetCoordinator>,
    ResetRequest,
    Arc<Mutex<Option<bool>>>,
);

impl ResetParticipant for EngineParticipant {
    fn name(&self) -> String {
        self.name.clone()
    }
    fn address(&self) -> PciAddress {
        self.address
    }
    fn begin_quiesce(&mut self) -> Result<()> {
        let mut engine = self.engine.lock().unwrap();
        engine.stopped = true;
        engine.poll();
        if let Some((coordinator, answer)) = &self.reentrant {
            let request = ResetRequest::new(self.address, ResetCause::Api);
            let text = match coordinator.request(request) {
                Ok(_) => "served".to_string(),
                Err(err) => err.to_string(),
            };
            *answer.lock().unwrap() = Some(text);
        }
        if let Some((coordinator, request, joined)) = self.also_request.take() {
            let second = Arc::clone(&coordinator);
            std::thread::spawn(move || {
                let outcome = second.request(request).unwrap();
                *joined.lock().unwrap() = Some(outcome.coalesced);
            });
            // Wait (bounded: a failure guard, not a timing assumption) until the second
            // request is parked on the running reset.
            for _ in 0..100_000 {
                if coordinator.waiting_requests() == 1 {
                    break;
                }
                std::thread::sleep(Duration::from_micros(100));
            }
        }
        Ok(())
    }
    fn poll_quiesce(&mut self) -> Result<Progress> {
        Ok(if self.behaviour.never_quiesces {
            Progress::Pending
        } else {
            Progress::Done
        })
    }
    fn begin_recover(&mut self) -> Result<()> {
        if self.behaviour.recover_fails {
            return Err(Error::DeviceGone {
                device: self.address,
            });
        }
        let mut engine = self.engine.lock().unwrap();
        let taken_back = engine.driver.reinitialize()?;
        for tag in taken_back {
            engine.submit(tag)?;
        }
        engine.driver.flush();
        engine.stopped = false;
        Ok(())
    }
    fn poll_recover(&mut self) -> Result<Progress> {
        Ok(Progress::Done)
    }
    fn abandon(&mut self, reason: &str) {
        *self.abandoned.lock().unwrap() = Some(reason.to_string());
    }
}

struct Rig {
    bus: Arc<SimBus>,
    coordinator: Arc<ResetCoordinator>,
    engines: BTreeMap<&'static str, Shared>,
    abandoned: BTreeMap<&'static str, Arc<Mutex<Option<String>>>>,
}

fn rig_with(behaviours: &[(&'static str, Behaviour)]) -> Rig {
    let bus = bus();
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let mut engines = BTreeMap::new();
    let mut abandoned = BTreeMap::new();
    for (priority, at) in ["01:00.0", "01:00.1", "02:00.0"].into_iter().enumerate() {
        let (shared, function) = engine(&bus, at);
        let behaviour = behaviours
            .iter()
            .find(|(a, _)| *a == at)
            .map(|(_, b)| *b)
            .unwrap_or_default();
        let flag = Arc::new(Mutex::new(None));
        coordinator
            .register(
                function as Arc<dyn ResetTarget>,
                Box::new(EngineParticipant {
                    name: format!("engine {at}"),
                    address: addr(at),
                    engine: Arc::clone(&shared),
                    behaviour,
                    abandoned: Arc::clone(&flag),
                    also_request: None,
                    reentrant: None,
                }),
                ParticipantConfig {
                    // 01:00.1 recovers first: priority, not address order.
                    priority: if at == "01:00.1" {
                        1
                    } else {
                        10 + priority as u32
                    },
                    quiesce_budget: Duration::from_millis(20),
                    recover_budget: Duration::from_millis(500),
                },
            )
            .expect("the first participant for this function");
        engines.insert(at, shared);
        abandoned.insert(at, flag);
    }
    Rig {
        bus,
        coordinator,
        engines,
        abandoned,
    }
}

fn rig() -> Rig {
    rig_with(&[])
}

impl Rig {
    /// Submits every slot on every engine; none completes until virtual time passes.
    fn start_workload(&self) {
        for engine in self.engines.values() {
            let mut engine = engine.lock().unwrap();
            for tag in 0..SLOTS {
                engine.submit(tag).unwrap();
            }
            engine.driver.flush();
        }
    }

    /// Lets the copies finish and collects their completions.
    fn finish_workload(&self) {
        // The model completes one copy per millisecond: 15 copies need 15 ms.
        self.bus.clock().advance(Duration::from_millis(50));
        for engine in self.engines.values() {
            engine.lock().unwrap().poll();
        }
    }

    fn exactly_once(&self, at: &str) -> bool {
        let engine = self.engines[at].lock().unwrap();
        engine.ledger.failures == 0
            && engine.ledger.completions.len() == SLOTS as usize
            && engine.ledger.completions.values().all(|&n| n == 1)
            && engine.verify()
    }

    fn resets(&self, at: &str) -> (u64, u64) {
        let stats = self.bus.stats(addr(at)).unwrap();
        (stats.function_resets, stats.bus_resets)
    }
}

#[test]
fn a_local_fault_on_a_function_with_flr_resets_it_alone() {
    let rig = rig();
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr("02:00.0"), ResetCause::Timeout))
        .unwrap();
    let report = &outcome.report;
    assert_eq!(report.kind, ResetKind::Flr);
    assert_eq!(report.members.len(), 1);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.resets("02:00.0"), (1, 0));
    assert_eq!(
        rig.resets("01:00.0"),
        (0, 0),
        "the slot next door is untouched"
    );
    assert_eq!(report.device_wait_ns, 100_000_000, "the FLR's 100 ms");
    rig.finish_workload();
    for at in ["01:00.0", "01:00.1", "02:00.0"] {
        assert!(rig.exactly_once(at), "{at}");
    }
}

#[test]
fn a_device_that_stopped_answering_gets_a_bus_reset_of_its_whole_group() {
    let rig = rig();
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(
            addr("01:00.0"),
            ResetCause::NotResponding,
        ))
        .unwrap();
    let report = &outcome.report;
    assert_eq!(report.kind, ResetKind::Bus);
    let members: Vec<PciAddress> = report.members.iter().map(|m| m.address).collect();
    assert_eq!(members, vec![addr("01:00.0"), addr("01:00.1")]);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.resets("01:00.0"), (0, 1));
    assert_eq!(rig.resets("01:00.1"), (0, 1));
    assert_eq!(rig.resets("02:00.0"), (0, 0));

    // The sequence, in order, for each member; recovery in priority order (01:00.1 first).
    let phases_of = |member: &str| -> Vec<Phase> {
        report
            .timeline
            .phases
            .iter()
            .filter(|p| p.member == member)
            .map(|p| p.phase)
            .collect()
    };
    assert_eq!(
        phases_of("engine 01:00.0"),
        vec![
            Phase::Quiesce,
            Phase::Disable,
            Phase::Reset,
            Phase::WaitReady,
            Phase::Recover
        ],
        "one lane per device: its participant's and its function's phases"
    );
    let recover_order: Vec<&str> = report
        .timeline
        .phases
        .iter()
        .filter(|p| p.phase == Phase::Recover)
        .map(|p| p.member.as_str())
        .collect();
    assert_eq!(recover_order, vec!["engine 01:00.1", "engine 01:00.0"]);
    assert_eq!(
        report.device_wait_ns, 102_000_000,
        "2 ms SBR + 100 ms settle"
    );
    assert!(report.total_ns >= report.device_wait_ns);

    rig.finish_workload();
    for at in ["01:00.0", "01:00.1", "02:00.0"] {
        assert!(rig.exactly_once(at), "{at}");
    }
    let svg = render_svg(&report.timeline, "bus reset");
    assert!(svg.starts_with("<svg") && svg.contains("engine 01:00.1") && svg.contains("deadline"));
    let json = serde_json::to_value(&**report).unwrap();
    assert_eq!(json["kind"], "bus");
    assert!(json["timeline"]["phases"].as_array().unwrap().len() >= 10);
}

#[test]
fn a_bus_reset_is_refused_naming_the_member_owned_elsewhere_and_nothing_is_touched() {
    let bus = bus();
    let coordinator =
        ResetCoordinator::new(Arc::clone(bus.clock()) as _, CoordinatorConfig::default());
    let function = Arc::new(bus.open(addr("01:00.0")).unwrap());
    coordinator.add_function(function as Arc<dyn ResetTarget>);
    // 01:00.0 and 01:00.1 share an IOMMU group here, so taking 01:00.1 elsewhere is what blocks.
    bus.hold_elsewhere(addr("01:00.1"), "pid 4242").unwrap();
    let err = coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Api).with_scope(ResetScope::Group))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: hot reset of its reset group refused: 0000:01:00.1 is owned by pid 4242"
    );
    assert_eq!(bus.stats(addr("01:00.0")).unwrap().bus_resets, 0);
    assert_eq!(bus.stats(addr("01:00.1")).unwrap().bus_resets, 0);
}

#[test]
fn a_participant_that_misses_its_quiesce_deadline_is_failed_and_the_others_recover() {
    let rig = rig_with(&[(
        "01:00.1",
        Behaviour {
            never_quiesces: true,
            ..Behaviour::default()
        },
    )]);
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Api).with_scope(ResetScope::Group))
        .unwrap();
    let report = &outcome.report;
    let by = |a: &str| {
        report
            .members
            .iter()
            .find(|m| m.address == addr(a))
            .unwrap()
    };
    assert_eq!(
        by("01:00.1").outcome,
        Outcome::Failed("missed its quiesce deadline (20 ms)".to_string())
    );
    assert!(by("01:00.0").outcome.is_ok());
    assert_eq!(
        rig.abandoned["01:00.1"].lock().unwrap().as_deref(),
        Some("missed its quiesce deadline (20 ms)")
    );
    let quiesce = report
        .timeline
        .phases
        .iter()
        .find(|p| p.member == "engine 01:00.1" && p.phase == Phase::Quiesce)
        .unwrap();
    assert!(
        quiesce.end_ns >= quiesce.deadline_ns.unwrap(),
        "{quiesce:?}"
    );
    assert_eq!(rig.resets("01:00.1"), (0, 1), "the reset still happened");
    rig.finish_workload();
    assert!(rig.exactly_once("01:00.0"));
    assert_eq!(rig.coordinator.failed_participants().len(), 1);
}

#[test]
fn a_device_that_never_comes_back_fails_its_participant_only() {
    let rig = rig();
    rig.bus
        .inject(
            addr("01:00.1"),
            SimFault::SlowReady(Duration::from_secs(120)),
        )
        .unwrap();
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Api).with_scope(ResetScope::Group))
        .unwrap();
    let report = &outcome.report;
    let failed: Vec<_> = report
        .members
        .iter()
        .filter(|m| !m.outcome.is_ok())
        .map(|m| m.address)
        .collect();
    assert_eq!(failed, vec![addr("01:00.1")]);
    assert!(rig.abandoned["01:00.1"].lock().unwrap().is_some());
    rig.finish_workload();
    assert!(rig.exactly_once("01:00.0"));
}

#[test]
fn a_removed_member_fails_alone_in_the_timeline_of_its_group_reset() {
    let rig = rig();
    rig.bus
        .inject(addr("01:00.1"), SimFault::SurpriseRemoval)
        .unwrap();
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(
            addr("01:00.1"),
            ResetCause::NotResponding,
        ))
        .unwrap();
    let report = &outcome.report;
    assert_eq!(report.kind, ResetKind::Bus);
    let phase = |member: &str, phase: Phase| {
        report
            .timeline
            .phases
            .iter()
            .find(|r| r.member == member && r.phase == phase)
            .map(|r| r.outcome.clone())
            .unwrap()
    };
    assert_eq!(phase("engine 01:00.0", Phase::Reset), Outcome::Ok);
    assert_eq!(phase("engine 01:00.0", Phase::WaitReady), Outcome::Ok);
    assert_eq!(phase("engine 01:00.0", Phase::Recover), Outcome::Ok);
    assert_eq!(
        phase("engine 01:00.1", Phase::Reset),
        Outcome::Failed("0000:01:00.1: device is not responding (reads return all ones)".into())
    );
    assert!(matches!(
        phase("engine 01:00.1", Phase::WaitReady),
        Outcome::Failed(_)
    ));
    let failed: Vec<_> = report
        .members
        .iter()
        .filter(|m| !m.outcome.is_ok())
        .map(|m| m.address)
        .collect();
    assert_eq!(failed, vec![addr("01:00.1")]);
    rig.finish_workload();
    assert!(rig.exactly_once("01:00.0"));
}

#[test]
fn a_fault_during_recovery_fails_that_participant_and_the_next_still_recovers() {
    let rig = rig_with(&[(
        "01:00.1",
        Behaviour {
            recover_fails: true,
            ..Behaviour::default()
        },
    )]);
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(
            addr("01:00.1"),
            ResetCause::NotResponding,
        ))
        .unwrap();
    let report = &outcome.report;
    let by = |a: &str| {
        report
            .members
            .iter()
            .find(|m| m.address == addr(a))
            .unwrap()
    };
    assert!(
        matches!(&by("01:00.1").outcome, Outcome::Failed(why) if why.contains("recover failed"))
    );
    assert!(
        by("01:00.0").outcome.is_ok(),
        "recovered after the failed one (priority order)"
    );
    rig.finish_workload();
    assert!(rig.exactly_once("01:00.0"));
}

#[test]
fn concurrent_requests_for_one_group_coalesce_into_one_reset() {
    let bus = bus();
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let joined = Arc::new(Mutex::new(None));
    let (shared0, f0) = engine(&bus, "01:00.0");
    let (_shared1, f1) = engine(&bus, "01:00.1");
    coordinator.add_function(f1 as Arc<dyn ResetTarget>);
    coordinator
        .register(
            f0 as Arc<dyn ResetTarget>,
            Box::new(EngineParticipant {
                name: "engine 01:00.0".to_string(),
                address: addr("01:00.0"),
                engine: shared0,
                behaviour: Behaviour::default(),
                abandoned: Arc::new(Mutex::new(None)),
                also_request: Some((
                    Arc::clone(&coordinator),
                    ResetRequest::new(addr("01:00.1"), ResetCause::Timeout)
                        .with_scope(ResetScope::Group),
                    Arc::clone(&joined),
                )),
                reentrant: None,
            }),
            ParticipantConfig::default(),
        )
        .expect("the first participant for this function");
    let first = coordinator
        .request(
            ResetRequest::new(addr("01:00.0"), ResetCause::NotResponding)
                .with_scope(ResetScope::Group),
        )
        .unwrap();
    assert!(!first.coalesced);
    // The second request was parked on the running reset and got its report.
    for _ in 0..10_000 {
        if joined.lock().unwrap().is_some() {
            break;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
    assert_eq!(
        *joined.lock().unwrap(),
        Some(true),
        "second request coalesced"
    );
    assert_eq!(
        bus.stats(addr("01:00.0")).unwrap().bus_resets,
        1,
        "one reset, not two"
    );
    assert_eq!(bus.stats(addr("01:00.1")).unwrap().bus_resets, 1);
}

#[test]
fn a_reset_with_every_ring_full_reissues_each_copy_exactly_once() {
    let rig = rig();
    rig.start_workload();
    for engine in rig.engines.values() {
        let mut engine = engine.lock().unwrap();
        assert_eq!(
            engine.driver.in_flight(),
            engine.driver.capacity(),
            "ring full"
        );
        let err = engine.submit(0).unwrap_err();
        assert!(matches!(err, Error::QueueFull { .. }), "{err}");
    }
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Api).with_scope(ResetScope::Group))
        .unwrap();
    assert!(outcome.report.all_recovered());
    rig.finish_workload();
    for at in ["01:00.0", "01:00.1", "02:00.0"] {
        assert!(rig.exactly_once(at), "{at}");
    }
}

#[test]
fn the_group_report_and_claim_show_and_take_ownership() {
    let bus = bus();
    let f0 = bus.open(addr("01:00.0")).unwrap();
    let f2 = bus.open(addr("02:00.0")).unwrap();
    let views = group_report(&[&f0 as &dyn ResetTarget, &f2]).unwrap();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0].members.len(), 2);
    assert!(
        views[0].bus_reset_possible,
        "01:00.1 shares 01:00.0's IOMMU group"
    );
    let table = render_table(&views);
    assert!(table.contains("0000:01:00.1"), "{table}");
    assert!(table.contains("flr bus"), "{table}");

    bus.hold_elsewhere(addr("01:00.1"), "pid 9").unwrap();
    let views = group_report(&[&f0 as &dyn ResetTarget]).unwrap();
    assert_eq!(
        views[0].members[1].ownership,
        Ownership::OwnedElsewhere {
            owner: "pid 9".to_string()
        }
    );
    let err = claim_reset_group(&bus, &f0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: cannot claim its reset group: 0000:01:00.1 is owned by pid 9"
    );
    bus.release_elsewhere(addr("01:00.1")).unwrap();
    let claimed = claim_reset_group(&bus, &f0).unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].address(), addr("01:00.1"));
    assert!(matches!(
        bus.open(addr("01:00.1")).unwrap_err(),
        Error::AlreadyOpen { .. }
    ));
}

#[test]
fn unknown_functions_are_refused_and_function_scope_means_flr() {
    let bus = bus();
    let coordinator =
        ResetCoordinator::new(Arc::clone(bus.clock()) as _, CoordinatorConfig::default());
    let err = coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Api))
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: not registered with the reset coordinator"
    );
    let function = Arc::new(bus.open(addr("01:00.1")).unwrap());
    coordinator.add_function(function as Arc<dyn ResetTarget>);
    let report = coordinator
        .request(
            ResetRequest::new(addr("01:00.1"), ResetCause::Api).with_scope(ResetScope::Function),
        )
        .unwrap()
        .report;
    assert_eq!(report.kind, ResetKind::Flr);
}

#[test]
fn a_function_scope_reset_of_a_function_without_flr_is_refused_naming_its_methods() {
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "copy-engine")
        .reset_methods(&[ResetMethod::Bus])
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    registry.register("copy-engine", model::factory);
    let bus = SimBus::new(topology, &registry).unwrap();
    let coordinator =
        ResetCoordinator::new(Arc::clone(bus.clock()) as _, CoordinatorConfig::default());
    coordinator.add_function(Arc::new(bus.open(addr("01:00.0")).unwrap()) as Arc<dyn ResetTarget>);
    let err = coordinator
        .request(
            ResetRequest::new(addr("01:00.0"), ResetCause::Api).with_scope(ResetScope::Function),
        )
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "0000:01:00.0: no function-level reset (reset methods: bus)"
    );
    // Auto picks the bus reset for it instead: the group is just itself and it is ours.
    let report = coordinator
        .request(ResetRequest::new(addr("01:00.0"), ResetCause::Timeout))
        .unwrap()
        .report;
    assert_eq!(report.kind, ResetKind::Bus);
    assert!(report.all_recovered());
}

fn plain_participant(at: &str, name: &str) -> Box<dyn ResetParticipant> {
    let bus = bus();
    let (shared, _function) = engine(&bus, at);
    Box::new(EngineParticipant {
        name: name.to_string(),
        address: addr(at),
        engine: shared,
        behaviour: Behaviour::default(),
        abandoned: Arc::new(Mutex::new(None)),
        also_request: None,
        reentrant: None,
    })
}

#[test]
fn a_second_participant_for_a_function_is_refused_and_the_first_keeps_serving() {
    let rig = rig();
    // The rig opened 02:00.0 and registered its engine; a second driver asks for it too.
    let target = rig
        .coordinator
        .functions()
        .into_iter()
        .find(|t| t.target_address() == addr("02:00.0"))
        .unwrap();
    let err = rig
        .coordinator
        .register(
            target,
            plain_participant("02:00.0", "second driver"),
            ParticipantConfig::default(),
        )
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyRegistered { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "0000:02:00.0: a participant is already registered (engine 02:00.0); unregister it \
         before registering second driver"
    );
    // The first participant still takes part in the function's resets.
    rig.start_workload();
    let outcome = rig
        .coordinator
        .request(ResetRequest::new(addr("02:00.0"), ResetCause::Timeout))
        .unwrap();
    assert_eq!(outcome.report.members.len(), 1);
    assert!(outcome.report.all_recovered());
    rig.finish_workload();
    assert!(rig.exactly_once("02:00.0"));
}

#[test]
fn a_reset_requested_from_a_participant_hook_is_refused_not_deadlocked() {
    let bus = bus();
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let (shared, function) = engine(&bus, "02:00.0");
    let answer = Arc::new(Mutex::new(None));
    coordinator
        .register(
            function as Arc<dyn ResetTarget>,
            Box::new(EngineParticipant {
                name: "engine 02:00.0".to_string(),
                address: addr("02:00.0"),
                engine: shared,
                behaviour: Behaviour::default(),
                abandoned: Arc::new(Mutex::new(None)),
                also_request: None,
                reentrant: Some((Arc::clone(&coordinator), Arc::clone(&answer))),
            }),
            ParticipantConfig::default(),
        )
        .unwrap();
    let outcome = coordinator
        .request(ResetRequest::new(addr("02:00.0"), ResetCause::Timeout))
        .unwrap();
    assert!(outcome.report.all_recovered());
    assert_eq!(
        answer.lock().unwrap().as_deref(),
        Some(
            "0000:02:00.0: a reset request refused: called from inside the reset of \
             0000:02:00.0 that is running (a participant hook must not call the coordinator)"
        )
    );
    // The refusal left the coordinator usable.
    let again = coordinator
        .request(ResetRequest::new(addr("02:00.0"), ResetCause::Api))
        .unwrap();
    assert!(!again.coalesced);
}

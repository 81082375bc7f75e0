//! The NVMe driver unchanged as a broker client (issue 10 item 3): two client threads, each
//! opening one function of a two-controller reset group through the broker and running a
//! write-verify workload on it; one client asks for a coordinated bus reset while both have
//! writes in flight. The broker quiesces and recovers both controllers across the socket, and
//! every acknowledged write reads back: 0 lost, 0 duplicated.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use userpci::framework::backend::sim::topology::TopologyBuilder;
use userpci::framework::backend::sim::{ModelRegistry, SimBus};
use userpci::framework::broker::{Broker, BrokerClient, BrokerConfig, SimLending};
use userpci::framework::device::ResetMethod;
use userpci::framework::pci::PciAddress;
use userpci::framework::reset::{ParticipantConfig, ResetCause, ResetRequest, ResetScope};
use userpci::nvme::model::NvmeModel;
use userpci::nvme::{Controller, ControllerOptions, NvmeParticipant, QpairOptions};
use userpci::soak::{Workload, SLOTS, WRITE_BLOCKS};

const MEMBERS: [&str; 2] = ["01:00.0", "01:00.1"];
/// Acknowledged writes before the reset, and again after it.
const WRITES: u64 = 150;

fn addr(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn bus() -> Arc<SimBus> {
    let params: toml::Table = format!("latency_ns = 100000\nblocks = {}", SLOTS * WRITE_BLOCKS)
        .parse()
        .unwrap();
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function(MEMBERS[0], "nvme")
        .params(params.clone())
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .function(MEMBERS[1], "nvme")
        .params(params)
        .reset_methods(&[ResetMethod::Flr])
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    userpci::nvme::model::register(&mut registry);
    SimBus::new(topology, &registry).unwrap()
}

/// What one client saw: acknowledged, failed and duplicated writes, and the read-back.
#[derive(Debug)]
struct ClientResult {
    acknowledged: u64,
    duplicated: u64,
    lost: u64,
    verified: u64,
    reset_recovered: Option<bool>,
}

fn run_client(
    bus: &Arc<SimBus>,
    lending: &Arc<SimLending>,
    socket: &std::path::Path,
    index: usize,
    barrier: &Barrier,
    reset_done: &AtomicBool,
) -> ClientResult {
    let at = addr(MEMBERS[index]);
    let name = format!("nvme{index}");
    let client = BrokerClient::connect(socket, &name, Arc::clone(lending)).unwrap();
    // From here on the driver sees a function as if it had opened it itself.
    let function = client.open(at).unwrap();
    let ctrl = Controller::new(function, ControllerOptions::default()).unwrap();
    client
        .register(
            Box::new(NvmeParticipant::new(ctrl.clone(), name.clone())),
            ParticipantConfig {
                priority: index as u32,
                quiesce_budget: Duration::from_secs(5),
                recover_budget: Duration::from_secs(10),
            },
        )
        .unwrap();
    let mut workload = Workload::new(name, 16, 0x5eed ^ index as u64);
    workload
        .attach_with(
            &ctrl,
            QpairOptions {
                // Virtual time runs on every thread here: generous, so no timeout fires.
                timeout: Duration::from_secs(30),
                abort_timeout: Duration::from_secs(30),
                ..QpairOptions::default()
            },
        )
        .unwrap();
    let step = || bus.clock().advance(Duration::from_micros(20));
    let run_until = |workload: &mut Workload, acknowledged: u64| {
        for _ in 0..2_000_000 {
            if workload.acknowledged() >= acknowledged {
                return;
            }
            workload.top_up();
            workload.poll();
            step();
        }
        panic!("{}: stuck at {} acknowledged", at, workload.acknowledged());
    };
    run_until(&mut workload, WRITES);
    barrier.wait();
    let mut reset_recovered = None;
    if index == 0 {
        // Both workloads have writes in flight now.
        workload.top_up();
        let outcome = client
            .request_reset(ResetRequest::new(at, ResetCause::Timeout).with_scope(ResetScope::Group))
            .unwrap();
        reset_recovered = Some(outcome.all_recovered());
        assert_eq!(outcome.report["kind"], "bus", "{:?}", outcome.report);
        reset_done.store(true, Ordering::Release);
    } else {
        // Keep submitting and polling through the reset.
        for _ in 0..2_000_000 {
            if reset_done.load(Ordering::Acquire) {
                break;
            }
            workload.top_up();
            workload.poll();
            step();
        }
    }
    let target = workload.acknowledged() + WRITES;
    run_until(&mut workload, target);
    for _ in 0..2_000_000 {
        if workload.settled() {
            break;
        }
        workload.poll();
        step();
    }
    assert!(workload.settled(), "{at}: writes unanswered");
    let verify = workload.verify(at, step).unwrap();
    let counts = workload.ledger.counts();
    ClientResult {
        acknowledged: counts.acknowledged,
        duplicated: counts.duplicated,
        lost: verify.lost,
        verified: verify.slots_verified,
        reset_recovered,
    }
}

#[test]
fn two_nvme_clients_of_one_reset_group_lose_and_double_nothing_across_a_brokered_bus_reset() {
    let bus = bus();
    let functions: Vec<_> = MEMBERS
        .iter()
        .map(|at| Arc::new(bus.open(addr(at)).unwrap()))
        .collect();
    let lending = SimLending::new(functions);
    let socket =
        std::env::temp_dir().join(format!("userpci-broker-nvme-{}.sock", std::process::id()));
    let broker = Broker::start(lending.clone(), BrokerConfig::new(&socket)).unwrap();
    let barrier = Barrier::new(2);
    let reset_done = AtomicBool::new(false);
    let results: Vec<ClientResult> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let (bus, lending, socket) = (&bus, &lending, broker.socket());
                let (barrier, reset_done) = (&barrier, &reset_done);
                s.spawn(move || run_client(bus, lending, socket, i, barrier, reset_done))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(results[0].reset_recovered, Some(true), "{results:?}");
    for (i, r) in results.iter().enumerate() {
        assert!(r.acknowledged >= 2 * WRITES, "{i}: {r:?}");
        assert_eq!((r.lost, r.duplicated), (0, 0), "{i}: {r:?}");
        assert!(r.verified > 0, "{i}: {r:?}");
    }
    for at in MEMBERS {
        let sim = bus.stats(addr(at)).unwrap();
        assert_eq!(sim.bus_resets, 1, "{at}");
        // Quiesced across the socket before the reset: no doorbell reached a disabled or
        // resetting controller, no register access with memory decoding off.
        assert_eq!(
            sim.mmio_while_memory_disabled, 0,
            "{at}: would be SIGBUS on VFIO"
        );
        let model = bus
            .with_model(addr(at), |m: &mut NvmeModel| m.stats())
            .unwrap();
        assert_eq!(model.violations.total(), 0, "{at}: {:?}", model.violations);
    }
    let report = broker.coordinator().last_report().unwrap();
    let names: Vec<_> = report
        .members
        .iter()
        .map(|m| m.participant.clone())
        .collect();
    assert!(
        names
            .iter()
            .all(|n| n.as_deref().is_some_and(|n| n.contains("(nvme"))),
        "every member had its client's participant: {names:?}"
    );
}

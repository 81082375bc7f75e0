//! Framework overhead of a coordinated reset: a bus reset of a three-function NVMe reset
//! group on the simulated backend, each controller with a queue pair and writes in flight.
//!
//! The simulated device's mandated waits (2 ms SBR + 100 ms settle) pass in virtual time, so
//! the wall-clock time of one iteration is the coordinator's and the drivers' own work (plan,
//! quiesce, disable, reset bookkeeping, wait-ready checks, controller re-initialisation and
//! queue re-creation through the admin queue, the re-issue of 16 writes per controller on the
//! owning core's next poll), plus the controller model's time serving those admin commands
//! and writes, which is not separated out: the figure is an upper bound of the framework's
//! share.
//!
//! Run with `cargo bench --bench reset`.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use userpci::framework::backend::sim::topology::TopologyBuilder;
use userpci::framework::backend::sim::{ModelRegistry, SimBus, SimFunction};
use userpci::framework::device::{ResetMethod, ResetTarget};
use userpci::framework::dma::{DmaBuffer, DmaDirection};
use userpci::framework::reset::{
    CoordinatorConfig, ParticipantConfig, ResetCause, ResetCoordinator, ResetRequest, ResetScope,
};
use userpci::nvme::model;
use userpci::nvme::{Controller, ControllerOptions, IoQueuePair, NvmeParticipant, QpairOptions};

type Qp = IoQueuePair<Arc<SimFunction>, u64, DmaBuffer>;

struct Member {
    qp: Qp,
    ns: userpci::nvme::Namespace,
    idle_buffers: Vec<DmaBuffer>,
}

fn setup() -> (Arc<SimBus>, Arc<ResetCoordinator>, Vec<Member>) {
    let params: toml::Table = "latency_ns = 1000000".parse().unwrap();
    let topology = TopologyBuilder::new()
        .root_port("00:02.0", 1)
        .function("01:00.0", "nvme")
        .params(params.clone())
        .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
        .function("01:00.1", "nvme")
        .params(params.clone())
        .function("01:00.2", "nvme")
        .params(params)
        .build()
        .unwrap();
    let mut registry = ModelRegistry::new();
    model::register(&mut registry);
    let bus = SimBus::new(topology, &registry).unwrap();
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let mut qpairs = Vec::new();
    for (i, at) in ["01:00.0", "01:00.1", "01:00.2"].into_iter().enumerate() {
        let function = Arc::new(bus.open(at.parse().unwrap()).unwrap());
        let ctrl = Controller::new(Arc::clone(&function), ControllerOptions::default()).unwrap();
        coordinator
            .register(
                function as Arc<dyn ResetTarget>,
                Box::new(NvmeParticipant::new(ctrl.clone(), format!("nvme{i}"))),
                ParticipantConfig::default(),
            )
            .expect("the first participant for this function");
        let qp: Qp = ctrl
            .create_io_qpair(QpairOptions {
                entries: 64,
                ..QpairOptions::default()
            })
            .unwrap();
        let ns = ctrl.namespaces()[0].clone();
        let idle_buffers = (0..16)
            .map(|_| {
                bus.dma_space()
                    .allocate_buffer(4096, DmaDirection::ToDevice)
                    .unwrap()
            })
            .collect();
        qpairs.push(Member {
            qp,
            ns,
            idle_buffers,
        });
    }
    (bus, coordinator, qpairs)
}

/// Puts 16 writes in flight on every queue pair (the model completes them 1 ms later in
/// virtual time, so a reset right after takes all of them back).
fn submit_writes(members: &mut [Member]) {
    for m in members {
        for (lba, buf) in m.idle_buffers.drain(..).enumerate() {
            m.qp.submit_write(&m.ns, lba as u64 * 8, buf, lba as u64)
                .unwrap();
        }
        m.qp.commit().unwrap();
    }
}

/// Lets the re-issued writes finish and takes their buffers back.
fn finish_writes(bus: &SimBus, members: &mut [Member]) {
    bus.clock().advance(std::time::Duration::from_millis(20));
    for m in members.iter_mut() {
        let idle = &mut m.idle_buffers;
        m.qp.process_completions(0, &mut |c| {
            c.result.expect("a re-issued write completes");
            idle.push(c.buffer.expect("writes return their buffer"));
        });
        assert_eq!(idle.len(), 16, "every write completed once");
    }
}

fn coordinated_bus_reset(c: &mut Criterion) {
    let (bus, coordinator, members) = setup();
    let members = std::cell::RefCell::new(members);
    let request = ResetRequest::new("01:00.0".parse().unwrap(), ResetCause::Api)
        .with_scope(ResetScope::Group);
    c.bench_function("reset/bus_three_members_wall", |b| {
        let mut pending = false;
        b.iter_batched(
            || {
                // Untimed: the previous iteration's writes finish, new ones go in flight.
                let mut members = members.borrow_mut();
                if pending {
                    finish_writes(&bus, &mut members);
                }
                submit_writes(&mut members);
                pending = true;
            },
            |()| {
                let outcome = coordinator.request(request).unwrap();
                assert!(outcome.report.all_recovered());
                // Each owning core's next poll reconnects its queue pair and re-issues the
                // 16 writes the reset took back: part of recovery, so timed too.
                for m in members.borrow_mut().iter_mut() {
                    m.qp.process_completions(0, &mut |_| {});
                }
                outcome.report.framework_overhead_ns
            },
            criterion::BatchSize::PerIteration,
        );
        if pending {
            finish_writes(&bus, &mut members.borrow_mut());
        }
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = coordinated_bus_reset
}
criterion_main!(benches);

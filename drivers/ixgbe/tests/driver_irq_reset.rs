//! Interrupt mode across coordinated resets, and link changes from the link-status-change
//! interrupt (issue 12 item 4):
//! - after an FLR or a bus reset the participant enables the same MSI-X vectors and programs
//!   `GPIE`, `IVAR`, `EITR`, `EIAC`, `EIAM_EX`, `IVAR_MISC` and `EIMS` as bring-up did; every
//!   vector fires once as the gate opens, and the same flows then interrupt on the same
//!   vectors as before;
//! - a core asleep on its vector through the reset (on the framework's reactor) wakes up,
//!   restarts its ring and receives again;
//! - link down and up are learned from `EICR.LSC` on the link vector; without interrupts by
//!   polling `LINKS` (which misses a flap between two polls, where `LSC` does not).

mod driver_support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use driver_support::*;
use userpci_framework::backend::sim::{SimBus, SimFunction};
use userpci_framework::device::{InterruptVector, PciFunction, RegisterIo, ResetTarget};
use userpci_framework::dma::PoolBuffer;
use userpci_framework::reset::{
    CoordinatorConfig, ParticipantConfig, ResetCause, ResetCoordinator, ResetKind, ResetRequest,
    ResetScope,
};
use userpci_framework::runtime::{IdlePolicy, Reactor, ReactorConfig};
use userpci_ixgbe::model::frame::UdpFlow;
use userpci_ixgbe::model::IxgbeModel;
use userpci_ixgbe::spec::regs;
use userpci_ixgbe::{
    InterruptOptions, IxgbeDevice, IxgbeOptions, IxgbeParticipant, IxgbeResetOptions, RxPoll,
    RxQueue,
};

const QUEUES: u16 = 2;
const FLOWS: u32 = 16;

type Device = IxgbeDevice<Arc<SimFunction>>;

struct Rig {
    bus: Arc<SimBus>,
    coordinator: ResetCoordinator,
    dev: Arc<Device>,
}

/// Port A alone on its bus (FLR and bus reset), brought up with interrupts (no throttle)
/// and registered with a coordinator.
fn rig() -> Rig {
    let bus = bus_with(&[(A, MAC_A)], "");
    let coordinator =
        ResetCoordinator::new(Arc::clone(bus.clock()) as _, CoordinatorConfig::default());
    let function = Arc::new(bus.open(addr(A)).unwrap());
    let options = IxgbeOptions {
        interrupts: Some(InterruptOptions { itr_us: 0 }),
        ..options(QUEUES, 1)
    };
    let dev = Arc::new(IxgbeDevice::new(Arc::clone(&function), options).unwrap());
    let participant =
        IxgbeParticipant::new(Arc::clone(&dev), "ixgbe A", IxgbeResetOptions::default())
            .expect("interrupt mode is supported");
    coordinator
        .register(
            function as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig::default(),
        )
        .expect("the first participant for this function");
    Rig {
        bus,
        coordinator,
        dev,
    }
}

/// Frame `seq` of flow `k` (UDP source port 1024 + `k`, one source address: the helper's
/// flows change address and port together, which leaves the low bit of the hash, and so
/// the choice between two queues, the same for all of them), as the wire would bring it.
fn inject(bus: &SimBus, k: u32, seq: u64) {
    let f = UdpFlow {
        src_ip: [10, 0, 0, 1],
        ..flow(k, MAC_A, MAC_B)
    };
    let bytes = frame(seq, 100, &f);
    bus.with_model_ctx(addr(A), |m: &mut IxgbeModel, ctx| {
        m.receive_frame(ctx, &bytes)
    })
    .unwrap();
}

/// The interrupt registers the driver programs, read through a second mapping of BAR0.
fn interrupt_registers(dev: &Device) -> Vec<(&'static str, u32)> {
    let bar = dev.function().map_bar(0).unwrap();
    let mut out = vec![
        ("GPIE", bar.read32(regs::GPIE)),
        ("IVAR(0)", bar.read32(regs::IVAR(0))),
        ("IVAR_MISC", bar.read32(regs::IVAR_MISC)),
        ("EIAC", bar.read32(regs::EIAC)),
        ("EIAM_EX(0)", bar.read32(regs::EIAM_EX(0))),
        ("EIMS", bar.read32(regs::EIMS)),
    ];
    for v in 0..=usize::from(QUEUES) {
        out.push(("EITR", bar.read32(regs::EITR(v))));
    }
    out
}

/// Arms every queue (their rings are empty).
fn arm(rxs: &mut [RxQueue<Arc<SimFunction>>]) {
    let mut bufs = Vec::with_capacity(32);
    for rx in rxs {
        loop {
            match rx.rx_batch_or_arm(&mut bufs, 32) {
                RxPoll::Armed => break,
                RxPoll::Received(_) => bufs.clear(),
            }
        }
    }
}

/// One frame of every flow; returns, per queue, whether its vector fired and the flows it
/// received.
fn one_round(
    rig: &Rig,
    rxs: &mut [RxQueue<Arc<SimFunction>>],
    vectors: &[InterruptVector],
    seq: u64,
) -> Vec<(bool, Vec<u32>)> {
    for k in 0..FLOWS {
        inject(&rig.bus, k, seq);
    }
    let mut bufs: Vec<PoolBuffer> = Vec::with_capacity(32);
    let mut out = Vec::new();
    for (rx, vector) in rxs.iter_mut().zip(vectors) {
        let fired = vector.take().unwrap() > 0;
        let mut flows = Vec::new();
        while rx.rx_batch(&mut bufs, 32) > 0 {
            for p in bufs.drain(..) {
                let port = u16::from_be_bytes([p.as_slice()[34], p.as_slice()[35]]);
                flows.push(u32::from(port - 1024));
            }
        }
        out.push((fired, flows));
    }
    out
}

fn interrupts_survive(scope: ResetScope, kind: ResetKind) {
    let rig = rig();
    let mut rxs: Vec<_> = (0..QUEUES)
        .map(|q| rig.dev.take_rx_queue(q).unwrap())
        .collect();
    let vectors: Vec<InterruptVector> = rxs
        .iter()
        .map(|rx| rx.interrupt_vector().unwrap().clone())
        .collect();
    let link = rig.dev.link_interrupt().expect("a link vector").clone();
    assert_eq!(
        vectors.iter().map(|v| v.vector()).collect::<Vec<_>>(),
        vec![0, 1]
    );
    assert_eq!(link.vector(), QUEUES, "the vector after the RX queues'");
    let registers = interrupt_registers(&rig.dev);
    assert_eq!(registers[5].1 & regs::EICR_LSC, regs::EICR_LSC, "LSC on");
    for v in vectors.iter().chain([&link]) {
        v.take().unwrap();
    }

    // Before the reset: each flow's queue interrupts on its own vector.
    arm(&mut rxs);
    let before = one_round(&rig, &mut rxs, &vectors, 0);
    let mut queue_of_flow = BTreeMap::new();
    for (q, (fired, flows)) in before.iter().enumerate() {
        assert!(*fired && !flows.is_empty(), "queue {q}: {before:?}");
        for &k in flows {
            queue_of_flow.insert(k, q);
        }
    }
    assert_eq!(queue_of_flow.len(), FLOWS as usize);
    // Both queues asleep (armed) when the reset comes. (Arming fires a vector whose cause
    // frames set again while it was masked: counted here, before the reset.)
    arm(&mut rxs);
    for v in &vectors {
        v.take().unwrap();
    }

    let report = rig
        .coordinator
        .request(ResetRequest::new(addr(A), ResetCause::Api).with_scope(scope))
        .unwrap()
        .report;
    assert_eq!(report.kind, kind);
    assert!(report.all_recovered(), "{report:?}");
    // Programmed as before (the RX bits of EIMS: fired and auto-masked by the wake-up).
    assert_eq!(interrupt_registers(&rig.dev), registers);
    // Every vector fired once as the gate opened, the link vector with the link back up.
    for v in &vectors {
        assert_eq!(v.take().unwrap(), 1, "vector {} woken", v.vector());
    }
    assert!(link.take().unwrap() >= 1, "link vector");
    let status = rig.dev.poll_link_change().expect("LSC after the reset");
    assert!(status.up);

    // The same flows interrupt on the same vectors.
    arm(&mut rxs);
    let after = one_round(&rig, &mut rxs, &vectors, 1);
    for (q, (fired, flows)) in after.iter().enumerate() {
        assert!(*fired, "queue {q} interrupted after the reset: {after:?}");
        assert_eq!(rxs[q].resets(), 1);
        for k in flows {
            assert_eq!(queue_of_flow[k], q, "flow {k}");
        }
    }
    let received: usize = after.iter().map(|(_, f)| f.len()).sum();
    assert_eq!(received, FLOWS as usize);
    let model = model_stats(&rig.bus, A);
    assert_eq!(model.protocol_violations, 0, "{model:?}");
}

#[test]
fn interrupts_fire_on_the_same_vectors_after_an_flr() {
    interrupts_survive(ResetScope::Function, ResetKind::Flr);
}

#[test]
fn interrupts_fire_on_the_same_vectors_after_a_bus_reset() {
    interrupts_survive(ResetScope::Group, ResetKind::Bus);
}

#[test]
fn a_core_asleep_on_its_vector_through_the_reset_wakes_and_receives_again() {
    let rig = rig();
    let (to_main, from_core) = std::sync::mpsc::channel();
    let core = {
        let dev = Arc::clone(&rig.dev);
        std::thread::spawn(move || {
            let mut rx = dev.take_rx_queue(0).unwrap();
            let vector = rx.interrupt_vector().unwrap().clone();
            let reactor = Reactor::new(ReactorConfig {
                idle: IdlePolicy::AfterIterations(10),
                ..ReactorConfig::default()
            })
            .unwrap();
            let mut waiter = reactor.watch_interrupt(&vector).unwrap();
            let got = reactor
                .block_on(async {
                    let mut got = 0;
                    let mut bufs = Vec::with_capacity(32);
                    while got < 2 {
                        got += rx
                            .rx_batch_wait(&mut waiter, &mut bufs, 32, 10)
                            .await
                            .unwrap();
                        bufs.clear();
                        to_main.send(got).unwrap();
                    }
                    got
                })
                .unwrap();
            (got, rx.resets(), reactor.stats().sleeps)
        })
    };
    // A flow of queue 0 (RSS): find one by sending until the core reports a frame.
    let mut flow_of_queue_0 = None;
    for k in 0..FLOWS {
        inject(&rig.bus, k, 0);
        if from_core.recv_timeout(Duration::from_millis(200)).is_ok() {
            flow_of_queue_0 = Some(k);
            break;
        }
    }
    let k = flow_of_queue_0.expect("the core received a frame");
    // Let it go back to sleep on its vector, then reset the device under it.
    std::thread::sleep(Duration::from_millis(50));
    let report = rig
        .coordinator
        .request(ResetRequest::new(addr(A), ResetCause::Api).with_scope(ResetScope::Function))
        .unwrap()
        .report;
    assert!(report.all_recovered(), "{report:?}");
    // The wake-up lets the core restart its ring; the next frame is received. Sent until
    // it arrives: one sent before the ring is back would be dropped.
    let mut delivered = false;
    for seq in 1..50 {
        inject(&rig.bus, k, seq);
        if from_core.recv_timeout(Duration::from_millis(100)).is_ok() {
            delivered = true;
            break;
        }
    }
    assert!(delivered, "the core never received again after the reset");
    let (got, resets, sleeps) = core.join().unwrap();
    assert_eq!(got, 2);
    assert_eq!(resets, 1, "the ring restarted once");
    assert!(sleeps > 0, "the core slept on its vector");
}

#[test]
fn link_changes_are_learned_from_the_lsc_interrupt() {
    let rig = rig();
    let link = rig.dev.link_interrupt().unwrap().clone();
    link.take().unwrap();
    assert_eq!(rig.dev.poll_link_change(), None, "bring-up is not a change");
    assert!(rig.dev.link_state().up);
    let flap = |down_for: Duration| {
        rig.bus
            .with_model_ctx(addr(A), |m: &mut IxgbeModel, ctx| {
                m.link_flap(ctx, down_for)
            })
            .unwrap();
    };
    flap(Duration::from_millis(10));
    assert_eq!(link.take().unwrap(), 1, "LSC: down");
    let down = rig.dev.poll_link_change().expect("a change");
    assert!(!down.up);
    assert!(!rig.dev.link_state().up);
    assert_eq!(rig.dev.poll_link_change(), None, "the cause was cleared");
    rig.bus.clock().advance(Duration::from_millis(11));
    assert_eq!(link.take().unwrap(), 1, "LSC: up");
    assert!(rig.dev.poll_link_change().expect("a change").up);
    assert_eq!(rig.dev.link_changes(), 2);
    // Down and up again before the driver looks: LSC still tells it the link flapped.
    flap(Duration::from_millis(1));
    rig.bus.clock().advance(Duration::from_millis(2));
    assert!(link.take().unwrap() >= 1);
    let after = rig.dev.poll_link_change().expect("the flap was seen");
    assert!(after.up);
    assert_eq!(rig.dev.link_changes(), 3);
    // No RX cause was touched: the RX vectors stay quiet.
    assert_eq!(rig.dev.rx_interrupt(0).unwrap().take().unwrap(), 0);
}

#[test]
fn without_interrupts_the_link_is_polled() {
    let bus = bus_with(&[(A, MAC_A)], "");
    let dev = device(&bus, A, options(1, 1));
    assert!(dev.link_interrupt().is_none());
    assert_eq!(dev.poll_link_change(), None);
    let flap = |down_for: Duration| {
        bus.with_model_ctx(addr(A), |m: &mut IxgbeModel, ctx| {
            m.link_flap(ctx, down_for)
        })
        .unwrap();
    };
    flap(Duration::from_millis(10));
    assert!(!dev.poll_link_change().expect("LINKS changed").up);
    assert_eq!(dev.poll_link_change(), None);
    bus.clock().advance(Duration::from_millis(11));
    assert!(dev.poll_link_change().expect("LINKS changed").up);
    // A flap between two polls is invisible to polling.
    flap(Duration::from_millis(1));
    bus.clock().advance(Duration::from_millis(2));
    assert_eq!(dev.poll_link_change(), None);
    assert_eq!(dev.link_changes(), 2);
}

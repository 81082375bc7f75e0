//! TX queues when traffic stops and when the transmitter hangs (issue 12 item 4):
//! - descriptors below `TXDCTL.WTHRESH` (4), whose write-back the device holds back, are
//!   reclaimed by the idle poll (`tx_batch` with nothing to send), so `in_flight` drains to 0;
//! - a ring whose `TDH` stops moving with descriptors pending (the model's `hang_tx`) is
//!   found hung after `tx_hang_timeout` and reset through the reset coordinator; a link that
//!   is down is not a hang.

mod driver_support;

use std::sync::Arc;
use std::time::Duration;

use driver_support::*;
use userpci_framework::backend::sim::{SimBus, SimFunction};
use userpci_framework::device::ResetTarget;
use userpci_framework::reset::{
    CoordinatorConfig, ParticipantConfig, ResetCause, ResetCoordinator, ResetKind,
};
use userpci_framework::time::Clock;
use userpci_ixgbe::model::IxgbeModel;
use userpci_ixgbe::{
    IxgbeDevice, IxgbeOptions, IxgbeParticipant, IxgbeResetOptions, ResetHandler, TxQueue,
};

const HANG_TIMEOUT: Duration = Duration::from_millis(10);

fn single() -> Arc<SimBus> {
    bus_with(&[(A, MAC_A)], "")
}

fn packets(dev: &Dev, from: u64, count: u64) -> Vec<userpci_framework::dma::PoolBuffer> {
    let f = flow(0, MAC_B, MAC_A);
    (from..from + count)
        .map(|k| packet(dev, &frame(k, 100, &f)))
        .collect()
}

#[test]
fn descriptors_below_wthresh_are_reclaimed_by_the_idle_poll() {
    let bus = single();
    let dev = device(&bus, A, options(1, 1));
    let mut tx = dev.take_tx_queue(0).unwrap();
    let free_before = dev.pool().available();
    let mut p = packets(&dev, 0, 3);
    assert_eq!(tx.tx_batch(&mut p), 3);
    settle(&bus);
    assert_eq!(
        model_stats(&bus, A).tx_frames,
        3,
        "the device sent all three"
    );
    // WTHRESH 4: the device holds the three write-backs back; batch cleaning sees nothing.
    assert_eq!(tx.clean_batches(), 0);
    assert_eq!(tx.in_flight(), 3);
    // No more traffic: the idle poll reclaims them all.
    let mut nothing = Vec::new();
    assert_eq!(tx.tx_batch(&mut nothing), 0);
    assert_eq!(tx.in_flight(), 0);
    let stats = tx.stats();
    assert_eq!(stats.cleaned, 3);
    assert_eq!(
        stats.idle_flushes, 1,
        "one SWFLSH asked for the held-back write-backs"
    );
    assert_eq!(dev.pool().available(), free_before, "the buffers are back");
    // Nothing in flight: further idle polls have nothing to flush.
    for _ in 0..10 {
        assert_eq!(tx.tx_batch(&mut nothing), 0);
    }
    assert_eq!(tx.stats().idle_flushes, 1);
    assert_eq!(tx.hangs(), 0);
}

#[test]
fn the_idle_poll_drains_what_batch_cleaning_leaves_without_flushing_what_is_written_back() {
    let bus = single();
    let dev = device(&bus, A, options(1, 1));
    let mut tx = dev.take_tx_queue(0).unwrap();
    // 40 = one batch of 32 + 8 (two groups of WTHRESH, written back without a flush).
    let mut p = packets(&dev, 0, 40);
    assert_eq!(tx.tx_batch(&mut p), 40);
    settle(&bus);
    assert_eq!(tx.clean_batches(), 32);
    assert_eq!(tx.in_flight(), 8);
    let mut nothing = Vec::new();
    tx.tx_batch(&mut nothing);
    assert_eq!(tx.in_flight(), 0);
    assert_eq!(
        tx.stats().idle_flushes,
        0,
        "the device had written them back"
    );
    // 41..43: three more, below WTHRESH again: one flush.
    let mut p = packets(&dev, 40, 3);
    assert_eq!(tx.tx_batch(&mut p), 3);
    settle(&bus);
    tx.tx_batch(&mut nothing);
    assert_eq!(tx.in_flight(), 0);
    assert_eq!(tx.stats().cleaned, 43);
    assert_eq!(tx.stats().idle_flushes, 1);
    assert_eq!(model_stats(&bus, A).tx_frames, 43);
}

/// The NIC at `A` under a reset coordinator, its hung TX queues reported to it.
struct Rig {
    bus: Arc<SimBus>,
    coordinator: Arc<ResetCoordinator>,
    dev: Arc<IxgbeDevice<Arc<SimFunction>>>,
    tx: TxQueue<Arc<SimFunction>>,
}

fn rig(handler: bool) -> Rig {
    let bus = single();
    let coordinator = Arc::new(ResetCoordinator::new(
        Arc::clone(bus.clock()) as _,
        CoordinatorConfig::default(),
    ));
    let function = Arc::new(bus.open(addr(A)).unwrap());
    let options = IxgbeOptions {
        tx_hang_timeout: Some(HANG_TIMEOUT),
        reset_handler: handler.then(|| ResetHandler::coordinator(&coordinator)),
        ..options(1, 1)
    };
    let dev = Arc::new(IxgbeDevice::new(Arc::clone(&function), options).unwrap());
    let participant =
        IxgbeParticipant::new(Arc::clone(&dev), "ixgbe A", IxgbeResetOptions::default()).unwrap();
    coordinator
        .register(
            function as Arc<dyn ResetTarget>,
            Box::new(participant),
            ParticipantConfig::default(),
        )
        .expect("the first participant for this function");
    let tx = dev.take_tx_queue(0).unwrap();
    Rig {
        bus,
        coordinator,
        dev,
        tx,
    }
}

impl Rig {
    fn sink(&self) -> u64 {
        model(&self.bus, A, |m: &mut IxgbeModel| m.sink().frames_sent())
    }

    fn packets(&self, from: u64, count: u64) -> Vec<userpci_framework::dma::PoolBuffer> {
        let f = flow(0, MAC_B, MAC_A);
        (from..from + count)
            .map(|k| {
                let mut buf = self.dev.pool().get().unwrap();
                let bytes = frame(k, 100, &f);
                buf.set_len(bytes.len());
                buf.as_mut_slice().copy_from_slice(&bytes);
                buf
            })
            .collect()
    }

    /// Idle polls every millisecond of virtual time until a reset report appears (at most
    /// `ms`); returns the virtual time that took.
    fn idle_until_reset(&mut self, ms: u32) -> Option<Duration> {
        let start = self.bus.clock().now();
        let mut nothing = Vec::new();
        for _ in 0..ms {
            self.tx.tx_batch(&mut nothing);
            if self.coordinator.last_report().is_some() {
                return Some(self.bus.clock().now() - start);
            }
            self.bus.clock().advance(Duration::from_millis(1));
        }
        None
    }
}

#[test]
fn a_hung_tx_ring_asks_the_coordinator_for_a_reset_and_sends_again_after_it() {
    let mut rig = rig(true);
    let mut p = rig.packets(0, 5);
    assert_eq!(rig.tx.tx_batch(&mut p), 5);
    assert_eq!(rig.sink(), 5);
    // The transmitter stops: TDH stays where it is while descriptors are pending.
    model(&rig.bus, A, |m| m.hang_tx());
    let mut p = rig.packets(5, 10);
    assert_eq!(rig.tx.tx_batch(&mut p), 10);
    assert_eq!(rig.sink(), 5, "hung: nothing more sent");
    let waited = rig.idle_until_reset(200).expect("a reset was requested");
    // Between one and two timeouts after the head stopped, plus the reset itself (the
    // FLR's wait and the link training run on the same virtual clock).
    assert!(waited >= HANG_TIMEOUT, "{waited:?}");
    let report = rig.coordinator.last_report().unwrap();
    assert_eq!(report.request.device, addr(A));
    assert_eq!(report.request.cause, ResetCause::Timeout);
    assert_eq!(report.kind, ResetKind::Flr);
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(rig.tx.hangs(), 1);
    assert_eq!(rig.dev.reset_info().recoveries, 1);
    assert_eq!(rig.bus.stats(addr(A)).unwrap().function_resets, 1);
    // The reset ended the hang. The next call empties the ring and sends again. Dropped,
    // not re-sent: the ten handed to the hung device, and the fifth of the first five (sent,
    // but its write-back was held back below WTHRESH: not known to be sent).
    let mut p = rig.packets(15, 4);
    assert_eq!(rig.tx.tx_batch(&mut p), 4);
    assert_eq!(rig.tx.reset_dropped(), 11);
    assert_eq!(rig.sink(), 9);
    let mut nothing = Vec::new();
    rig.tx.tx_batch(&mut nothing);
    assert_eq!(rig.tx.in_flight(), 0);
    // Healthy from here on: no second reset.
    rig.bus.clock().advance(HANG_TIMEOUT * 5);
    rig.tx.tx_batch(&mut nothing);
    assert_eq!(rig.tx.hangs(), 1);
    assert_eq!(rig.dev.reset_info().recoveries, 1);
}

#[test]
fn a_full_hung_ring_is_found_by_the_sends_that_do_not_fit() {
    let mut rig = rig(true);
    model(&rig.bus, A, |m| m.hang_tx());
    // 64-descriptor ring: 63 fit, the rest wait in the vector while the ring is watched.
    let mut p = rig.packets(0, 80);
    assert_eq!(rig.tx.tx_batch(&mut p), 63);
    let mut sent = 63;
    for _ in 0..100 {
        if rig.coordinator.last_report().is_some() {
            break;
        }
        sent += rig.tx.tx_batch(&mut p);
        rig.bus.clock().advance(Duration::from_millis(1));
    }
    assert_eq!(sent, 63, "nothing fitted while hung");
    let report = rig
        .coordinator
        .last_report()
        .expect("a reset was requested");
    assert!(report.all_recovered(), "{report:?}");
    assert_eq!(p.len(), 17, "the caller kept what did not fit");
    // After the reset the rest goes out.
    while !p.is_empty() {
        rig.tx.tx_batch(&mut p);
    }
    assert_eq!(rig.tx.reset_dropped(), 63);
    assert_eq!(rig.sink(), 17);
}

#[test]
fn a_link_that_is_down_is_not_a_hang() {
    let mut rig = rig(true);
    rig.bus
        .with_model_ctx(addr(A), |m: &mut IxgbeModel, ctx| {
            m.link_flap(ctx, HANG_TIMEOUT * 10)
        })
        .unwrap();
    let mut p = rig.packets(0, 6);
    assert_eq!(rig.tx.tx_batch(&mut p), 6);
    assert_eq!(rig.sink(), 0, "no transmit DMA while the link is down");
    // Ten timeouts of pending descriptors, the link down throughout: no reset.
    assert_eq!(rig.idle_until_reset(95), None);
    assert_eq!(rig.tx.hangs(), 0);
    // The link comes back: the six go out and the ring drains.
    rig.bus.clock().advance(HANG_TIMEOUT * 2);
    assert!(rig.dev.link().up);
    assert_eq!(rig.sink(), 6);
    let mut nothing = Vec::new();
    rig.tx.tx_batch(&mut nothing);
    assert_eq!(rig.tx.in_flight(), 0);
    assert!(rig.coordinator.last_report().is_none());
}

#[test]
fn without_a_reset_handler_a_hang_is_counted_and_nothing_is_reset() {
    let mut rig = rig(false);
    model(&rig.bus, A, |m| m.hang_tx());
    let mut p = rig.packets(0, 3);
    assert_eq!(rig.tx.tx_batch(&mut p), 3);
    assert_eq!(rig.idle_until_reset(100), None);
    // Found once per two timeouts, reported each time, nothing reset.
    let hangs = rig.tx.hangs();
    assert!((3..=6).contains(&hangs), "{hangs} hangs in 100 ms");
    assert_eq!(rig.tx.stats().hangs, hangs);
    assert_eq!(rig.dev.reset_info().quiesces, 0);
    assert_eq!(rig.tx.in_flight(), 3);
}

#[test]
fn a_ring_held_full_by_the_wire_at_line_rate_is_not_a_hang() {
    // Two wired ports; A sends 1514-byte frames as fast as its 512-descriptor ring takes
    // them, so the ring stays full and the device, its packet buffer full (TXPBSIZE worth
    // of wire time, about 130 µs at 10 Gb/s), takes one descriptor per frame time: the
    // head moves at line rate, never a hang.
    let bus = pair();
    let opts = IxgbeOptions {
        tx_hang_timeout: Some(Duration::from_millis(1)),
        tx_ring_size: 512,
        ..options(1, 1)
    };
    let (a, b) = devices(&bus, opts);
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    let mut pending = Vec::with_capacity(64);
    let mut bufs = Vec::with_capacity(64);
    let mut seq = 0;
    let mut full = 0;
    let start = bus.clock().now();
    while bus.clock().now() - start < Duration::from_millis(20) {
        while pending.len() < 64 {
            pending.push(packet(&a, &frame(seq, 1514, &f)));
            seq += 1;
        }
        tx.tx_batch(&mut pending);
        full += usize::from(!pending.is_empty());
        while rx.rx_batch(&mut bufs, 64) > 0 {
            bufs.clear();
        }
        bus.clock().advance(Duration::from_micros(20));
    }
    assert!(full > 500, "the ring was full on most calls: {full}");
    assert!(tx.stats().cleaned > 10_000, "{:?}", tx.stats());
    assert!(
        model_stats(&bus, A).tx_wire_waits > 1000,
        "the device waited for the wire"
    );
    assert_eq!(tx.hangs(), 0);
    pending.clear();
}

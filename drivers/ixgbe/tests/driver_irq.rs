//! Interrupt mode: MSI-X per RX queue with ITR throttling. The last packets of a burst are
//! delivered when traffic stops (ixy issue #21): the queue re-checks its ring after arming,
//! and a throttled interrupt still fires at the end of its interval. Also the adaptive
//! receive on the framework's reactor, woken by the vector from another thread.

mod driver_support;

use std::sync::Arc;
use std::time::Duration;

use driver_support::*;
use userpci_framework::runtime::{IdlePolicy, Reactor, ReactorConfig};
use userpci_ixgbe::{InterruptOptions, IxgbeOptions, RxPoll};

fn irq_options(itr_us: u32) -> IxgbeOptions {
    IxgbeOptions {
        interrupts: Some(InterruptOptions { itr_us }),
        ..options(1, 1)
    }
}

#[test]
fn the_last_packets_of_a_burst_are_delivered_when_traffic_stops() {
    let bus = pair();
    let a = device(&bus, A, options(1, 1));
    let b = device(&bus, B, irq_options(100));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let vector = rx.interrupt_vector().expect("interrupt mode").clone();
    assert_eq!(b.rx_interrupt(0).map(|v| v.vector()), Some(vector.vector()));
    let f = flow(0, MAC_B, MAC_A);
    let mut bufs = Vec::with_capacity(4);
    let mut got = Vec::new();
    let mut wakeups = 0;
    // The driver's loop: sleep until the vector fires, then drain until armed again.
    let mut drain = |rx: &mut userpci_ixgbe::RxQueue<_>, got: &mut Vec<Vec<u8>>| {
        while let RxPoll::Received(_) = rx.rx_batch_or_arm(&mut bufs, 4) {
            got.extend(bufs.drain(..).map(|p| p.as_slice().to_vec()));
        }
    };
    drain(&mut rx, &mut got);
    assert!(got.is_empty());
    // Five chunks of ten frames, 20 µs apart: inside one 100 µs throttle interval after
    // the first interrupt.
    for chunk in 0..5u64 {
        let mut p: Vec<_> = (0..10)
            .map(|k| packet(&a, &frame(chunk * 10 + k, 80, &f)))
            .collect();
        send_all(&mut tx, &mut p);
        bus.clock().advance(Duration::from_micros(20));
        if vector.take().unwrap() > 0 {
            wakeups += 1;
            drain(&mut rx, &mut got);
        }
    }
    // Traffic stops. The throttled interrupt fires at the end of its interval and the rest
    // of the burst is delivered.
    bus.clock().advance(Duration::from_millis(1));
    if vector.take().unwrap() > 0 {
        wakeups += 1;
        drain(&mut rx, &mut got);
    }
    assert_eq!(got.len(), 50, "every frame of the burst");
    for (k, bytes) in got.iter().enumerate() {
        assert_eq!(bytes, &frame(k as u64, 80, &f));
    }
    assert!(
        (2..=4).contains(&wakeups),
        "throttled: {wakeups} wake-ups for 50 frames"
    );
    assert!(rx.stats().interrupts_armed >= wakeups);
    // Quiet now: armed, ring empty, no interrupt pending.
    bus.clock().advance(Duration::from_millis(1));
    assert_eq!(vector.take().unwrap(), 0);
}

#[test]
fn frames_that_arrive_before_arming_are_returned_by_the_arming_poll() {
    let bus = pair();
    let a = device(&bus, A, options(1, 1));
    let b = device(&bus, B, irq_options(0));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    let mut bufs = Vec::with_capacity(8);
    // Frames land while the queue is not armed (no interrupt can announce them).
    let mut p: Vec<_> = (0..3).map(|k| packet(&a, &frame(k, 64, &f))).collect();
    send_all(&mut tx, &mut p);
    settle(&bus);
    assert_eq!(rx.interrupt_vector().unwrap().take().unwrap(), 0, "masked");
    assert_eq!(rx.rx_batch_or_arm(&mut bufs, 8), RxPoll::Received(3));
    assert_eq!(rx.rx_batch_or_arm(&mut bufs, 8), RxPoll::Armed);
    // No room in `out`: nothing to wait for, so it does not arm.
    let mut full = Vec::new();
    assert_eq!(rx.rx_batch_or_arm(&mut full, 8), RxPoll::Received(0));
}

#[test]
fn adaptive_receive_on_the_reactor_sleeps_until_the_vector_fires() {
    let bus = pair();
    let a = Arc::new(device(&bus, A, options(1, 1)));
    let b = device(&bus, B, irq_options(20));
    let mut rx = b.take_rx_queue(0).unwrap();
    let vector = rx.interrupt_vector().unwrap().clone();
    let reactor = Reactor::new(ReactorConfig {
        idle: IdlePolicy::AfterIterations(10),
        ..ReactorConfig::default()
    })
    .unwrap();
    let mut waiter = reactor.watch_interrupt(&vector).unwrap();

    // Another core sends two bursts, letting virtual time run so B receives them.
    let sender = {
        let (a, bus) = (Arc::clone(&a), Arc::clone(&bus));
        std::thread::spawn(move || {
            let mut tx = a.take_tx_queue(0).unwrap();
            let f = flow(0, MAC_B, MAC_A);
            for burst in 0..2u64 {
                std::thread::sleep(Duration::from_millis(30));
                let mut p: Vec<_> = (0..8)
                    .map(|k| packet(&a, &frame(burst * 8 + k, 100, &f)))
                    .collect();
                send_all(&mut tx, &mut p);
                bus.clock().advance(Duration::from_micros(100));
            }
            // Keep the queue (and its buffers) alive until the receiver has them.
            std::thread::sleep(Duration::from_millis(100));
        })
    };
    let f = flow(0, MAC_B, MAC_A);
    let got = reactor
        .block_on(async {
            let mut got = Vec::new();
            let mut bufs = Vec::with_capacity(32);
            while got.len() < 16 {
                rx.rx_batch_wait(&mut waiter, &mut bufs, 32, 100)
                    .await
                    .unwrap();
                got.extend(bufs.drain(..).map(|p| p.as_slice().to_vec()));
            }
            got
        })
        .unwrap();
    sender.join().unwrap();
    assert_eq!(got.len(), 16);
    for (k, bytes) in got.iter().enumerate() {
        assert_eq!(bytes, &frame(k as u64, 100, &f));
    }
    assert!(
        reactor.stats().sleeps > 0,
        "the reactor slept instead of spinning"
    );
    assert!(rx.stats().interrupts_armed > 0);
}

//! The data path across a wire between two model ports: frames sent on one port arrive on
//! the other intact, across batch sizes and ring wrap-around; a received buffer is sent back
//! as is (zero copy); the TX ring is cleaned in batches and never overfills.

mod driver_support;

use driver_support::*;
use userpci_framework::device::{PciFunction, RegisterIo};
use userpci_framework::dma::PoolBuffer;
use userpci_ixgbe::spec::queue::TDT;

/// Sends `count` frames of `len` bytes from A to B in batches of `batch`, receiving in
/// batches of `batch` too, and compares every byte.
fn round_trip(count: u64, len: usize, batch: usize) {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    let mut pending = Vec::with_capacity(batch);
    let mut got = Vec::new();
    let mut seq = 0;
    let mut bufs = Vec::with_capacity(batch);
    for _ in 0..100_000 {
        if got.len() as u64 >= count {
            break;
        }
        while pending.len() < batch && seq < count {
            pending.push(packet(&a, &frame(seq, len, &f)));
            seq += 1;
        }
        tx.tx_batch(&mut pending);
        settle(&bus);
        while rx.rx_batch(&mut bufs, batch) > 0 {
            got.extend(bufs.drain(..).map(|p: PoolBuffer| p.as_slice().to_vec()));
        }
    }
    assert_eq!(got.len() as u64, count);
    for (k, bytes) in got.iter().enumerate() {
        assert_eq!(
            bytes,
            &frame(k as u64, len, &f),
            "frame {k} (batch {batch})"
        );
    }
    let s = rx.stats();
    assert_eq!((s.packets, s.dropped(), s.alloc_failures), (count, 0, 0));
    assert_eq!(s.bytes, count * len as u64);
    assert_eq!(tx.stats().packets, count);
    assert_eq!(model_stats(&bus, B).rx_delivered, count);
}

#[test]
fn frames_arrive_intact_at_batch_1() {
    round_trip(200, 60, 1);
}

#[test]
fn frames_arrive_intact_at_batch_7() {
    round_trip(500, 333, 7);
}

#[test]
fn frames_arrive_intact_at_batch_32_wrapping_the_rings_many_times() {
    // 64-descriptor rings: 1000 frames wrap both rings more than fifteen times.
    round_trip(1000, 1514, 32);
}

#[test]
fn frames_arrive_intact_at_batch_64() {
    round_trip(640, 128, 64);
}

#[test]
fn a_received_buffer_is_sent_back_as_is() {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let (mut a_tx, mut a_rx) = (a.take_tx_queue(0).unwrap(), a.take_rx_queue(0).unwrap());
    let (mut b_tx, mut b_rx) = (b.take_tx_queue(0).unwrap(), b.take_rx_queue(0).unwrap());
    let f = flow(3, MAC_B, MAC_A);
    let mut out: Vec<_> = (0..20).map(|k| packet(&a, &frame(k, 200, &f))).collect();
    send_all(&mut a_tx, &mut out);
    settle(&bus);
    let mut fwd = Vec::with_capacity(32);
    assert_eq!(b_rx.rx_batch(&mut fwd, 32), 20);
    // Forward unchanged: the same buffers go out of B's TX queue.
    assert_eq!(b_tx.tx_batch(&mut fwd), 20);
    assert!(fwd.is_empty());
    settle(&bus);
    let back = receive(&bus, &mut a_rx, 20, 32);
    for (k, bytes) in back.iter().enumerate() {
        assert_eq!(bytes, &frame(k as u64, 200, &f));
    }
    assert_eq!(b_tx.in_flight(), 20, "held until cleaned");
    assert_eq!(b_tx.reclaim(), 20);
    assert_eq!(b_tx.in_flight(), 0);
}

#[test]
fn a_full_tx_ring_keeps_the_rest_in_order_and_cleans_in_batches() {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    // Hang A's transmitter: nothing completes, so the ring fills up.
    model(&bus, A, |m| m.hang_tx());
    let mut pkts: Vec<_> = (0..100).map(|k| packet(&a, &frame(k, 64, &f))).collect();
    assert_eq!(tx.tx_batch(&mut pkts), 63, "N - 1 descriptors");
    assert_eq!(pkts.len(), 37);
    assert_eq!(tx.tx_batch(&mut pkts), 0, "ring full: nothing taken");
    assert_eq!(tx.in_flight(), 63);
    // The transmitter resumes (the model restarts on the next TDT write: rewrite the same
    // tail, as a device that resumes on its own would behave).
    model(&bus, A, |m| m.clear_faults());
    let regs = a.function().map_bar(0).unwrap();
    regs.write32(TDT(0), regs.read32(TDT(0)));
    // B's ring holds 63 frames: receive as we go (with DROP_EN, frames that find no
    // descriptor are dropped).
    let mut got = receive(&bus, &mut rx, 63, 32);
    let mut sent = 63;
    for _ in 0..100 {
        if pkts.is_empty() {
            break;
        }
        sent += tx.tx_batch(&mut pkts);
        got.extend(receive(&bus, &mut rx, 1, 32));
    }
    assert_eq!(sent, 100);
    assert!(tx.stats().cleaned >= 32, "cleaned in batches of 32");
    assert_eq!(tx.stats().cleaned % 32, 0);
    got.extend(receive(&bus, &mut rx, 100 - got.len(), 32));
    assert_eq!(got.len(), 100);
    for (k, bytes) in got.iter().enumerate() {
        assert_eq!(bytes, &frame(k as u64, 64, &f), "order kept");
    }
}

#[test]
fn invalid_tx_lengths_are_dropped_and_counted() {
    let bus = pair();
    let (a, _b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut empty = a.pool().get().unwrap();
    empty.set_len(0);
    let mut pkts = vec![empty, packet(&a, &frame(0, 60, &flow(0, MAC_B, MAC_A)))];
    assert_eq!(tx.tx_batch(&mut pkts), 1);
    assert_eq!(tx.stats().invalid_length, 1);
    assert_eq!(model_stats(&bus, A).tx_frames, 1);
}

/// Issue 11: bringing up two wired ports polled every virtual nanosecond (what `pktgen` asks
/// for, `wire_poll_ns = 1`) took seconds of wall time, because each port looked at the wire
/// every nanosecond of the tens of milliseconds bring-up waits (resets, link training), even
/// while its own link or its peer's was down. Counted in model timers, not wall time.
#[test]
fn bringing_up_two_wired_ports_costs_few_timer_events() {
    use userpci_framework::time::Clock;
    use userpci_ixgbe::model::wire::WIRE_IDLE_POLL;
    let bus = pair_with("wire_poll_ns = 1");
    let (a, b) = devices(&bus, options(1, 1));
    assert!(a.link().up && b.link().up);
    let elapsed = bus.clock().now();
    let timers = model_stats(&bus, A).timers + model_stats(&bus, B).timers;
    // Both bring-ups wait for a reset and for link training: tens of milliseconds, which
    // at one wire poll per nanosecond would be tens of millions of timers.
    assert!(
        elapsed >= std::time::Duration::from_millis(20),
        "{elapsed:?}"
    );
    // At most one wire poll per `WIRE_IDLE_POLL` while a port waits for its peer (one port
    // at a time does), plus the resets' and the links' own timers.
    let idle_polls = (elapsed.as_nanos() / WIRE_IDLE_POLL.as_nanos()) as u64;
    assert!(
        timers <= idle_polls + 200,
        "{timers} model timers in {elapsed:?} of virtual time"
    );
}

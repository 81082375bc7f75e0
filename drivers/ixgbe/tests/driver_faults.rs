//! Untrusted write-backs: a length beyond the buffer, a descriptor never written (`DD`
//! clear), `EOP` clear. Each is counted and dropped; the packets around it arrive intact; no
//! out-of-bounds read, no panic. And the link as the model flaps it.

mod driver_support;

use std::time::Duration;

use driver_support::*;
use userpci_ixgbe::model::RxCorruption;

/// Sends frames 0..5, with the write-back of frame 2 corrupted, and returns what arrived.
fn corrupted_burst(corruption: RxCorruption) -> (Vec<Vec<u8>>, userpci_ixgbe::RxQueueStats) {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    let mut got = Vec::new();
    for k in 0..5u64 {
        if k == 2 {
            model(&bus, B, |m| m.corrupt_next_rx_writeback(corruption));
        }
        let mut p = vec![packet(&a, &frame(k, 300, &f))];
        send_all(&mut tx, &mut p);
        settle(&bus);
        got.extend(receive(&bus, &mut rx, 1, 8));
    }
    (got, rx.stats())
}

fn frames(ks: &[u64]) -> Vec<Vec<u8>> {
    let f = flow(0, MAC_B, MAC_A);
    ks.iter().map(|&k| frame(k, 300, &f)).collect()
}

#[test]
fn a_length_beyond_the_buffer_is_counted_and_dropped() {
    let (got, stats) = corrupted_burst(RxCorruption::LengthBeyondBuffer);
    assert_eq!(got, frames(&[0, 1, 3, 4]));
    assert_eq!(stats.bad_length, 1);
    assert_eq!(stats.dropped(), 1);
    assert_eq!(stats.packets, 4);
}

#[test]
fn a_descriptor_never_written_is_skipped_once_a_later_one_is_done() {
    let (got, stats) = corrupted_burst(RxCorruption::NoDd);
    assert_eq!(got, frames(&[0, 1, 3, 4]));
    assert_eq!(stats.not_written, 1);
    assert_eq!(stats.dropped(), 1);
}

#[test]
fn a_packet_without_eop_is_counted_and_dropped() {
    let (got, stats) = corrupted_burst(RxCorruption::NoEop);
    // The descriptor without EOP and the next one (which the driver must take as the rest
    // of that packet) are dropped: frame 3 is lost with frame 2.
    assert_eq!(stats.multi_descriptor, 1);
    assert_eq!(got, frames(&[0, 1, 4]));
    assert_eq!(stats.packets, 3);
}

#[test]
fn the_link_follows_a_flap() {
    let bus = pair();
    let (a, _b) = devices(&bus, options(1, 1));
    assert!(a.link().up);
    bus.with_model_ctx::<userpci_ixgbe::model::IxgbeModel, _>(addr(A), |m, ctx| {
        m.link_flap(ctx, Duration::from_millis(5))
    })
    .unwrap();
    assert!(!a.link().up, "down during the flap");
    assert_eq!(a.link().to_string(), "down");
    let link = a.wait_for_link(Duration::from_secs(1)).unwrap();
    assert!(link.up);
    assert_eq!(link.to_string(), "up at 10000 Mbit/s");
}

#[test]
fn an_empty_pool_leaves_packets_in_the_ring_until_buffers_come_back() {
    let bus = pair();
    let (a, b) = devices(&bus, options(1, 1));
    let mut tx = a.take_tx_queue(0).unwrap();
    let mut rx = b.take_rx_queue(0).unwrap();
    let f = flow(0, MAC_B, MAC_A);
    // Drain B's pool (on this thread) so refills fail.
    let mut hoard = Vec::new();
    while let Some(buf) = b.pool().get() {
        hoard.push(buf);
    }
    let mut p: Vec<_> = (0..3).map(|k| packet(&a, &frame(k, 100, &f))).collect();
    send_all(&mut tx, &mut p);
    settle(&bus);
    let mut bufs = Vec::with_capacity(8);
    assert_eq!(rx.rx_batch(&mut bufs, 8), 0);
    assert_eq!(rx.stats().alloc_failures, 1);
    drop(hoard);
    assert_eq!(
        rx.rx_batch(&mut bufs, 8),
        3,
        "delivered once buffers are back"
    );
    let got: Vec<Vec<u8>> = bufs.iter().map(|b| b.as_slice().to_vec()).collect();
    assert_eq!(got, (0..3).map(|k| frame(k, 100, &f)).collect::<Vec<_>>());
}

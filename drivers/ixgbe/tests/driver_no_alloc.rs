//! After warm-up the data path allocates nothing: `tx_batch` (with its batch cleaning),
//! `rx_batch` (with its refills from the pool), zero-copy forwarding, dropping received
//! buffers back to the pool, `rx_batch_or_arm`. A counting global allocator counts the calls
//! made on this thread while counting is on; the model runs inside the register accesses
//! on this thread too and keeps its buffers allocated, so what is counted is the driver's
//! path (and the model's, which also allocates nothing when warm).

mod driver_support;

use driver_support::*;
use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_framework::backend::sim::SimFunction;
use userpci_framework::dma::PoolBuffer;
use userpci_ixgbe::{InterruptOptions, IxgbeOptions, RxQueue, TxQueue};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

struct Path {
    a_tx: TxQueue<SimFunction>,
    a_rx: RxQueue<SimFunction>,
    b_tx: TxQueue<SimFunction>,
    b_rx: RxQueue<SimFunction>,
    /// Pre-built frames, sent from A over and over.
    out: Vec<PoolBuffer>,
    fwd: Vec<PoolBuffer>,
    back: Vec<PoolBuffer>,
}

/// One round: A sends 32 frames, B forwards them back (zero copy), A receives and drops
/// them. Returns the frames that made the round trip.
fn round(bus: &userpci_framework::backend::sim::SimBus, dev_a: &Dev, p: &mut Path) -> usize {
    for _ in 0..32 {
        let mut buf = dev_a.pool().get().unwrap();
        buf.set_len(128);
        p.out.push(buf);
    }
    while !p.out.is_empty() {
        p.a_tx.tx_batch(&mut p.out);
    }
    settle(bus);
    while p.b_rx.rx_batch(&mut p.fwd, 32) > 0 {
        while !p.fwd.is_empty() {
            p.b_tx.tx_batch(&mut p.fwd);
        }
    }
    settle(bus);
    let mut n = 0;
    loop {
        let got = p.a_rx.rx_batch(&mut p.back, 32);
        if got == 0 {
            break;
        }
        n += got;
        p.back.clear(); // back to the pool
    }
    let _ = p.a_rx.rx_batch_or_arm(&mut p.back, 32);
    n
}

#[test]
fn the_rx_and_tx_path_does_not_allocate_per_packet() {
    let bus = pair_with("wire_poll_ns = 1000");
    let opts = IxgbeOptions {
        interrupts: Some(InterruptOptions::default()),
        ..options(1, 1)
    };
    let (a, b) = devices(&bus, opts);
    let mut p = Path {
        a_tx: a.take_tx_queue(0).unwrap(),
        a_rx: a.take_rx_queue(0).unwrap(),
        b_tx: b.take_tx_queue(0).unwrap(),
        b_rx: b.take_rx_queue(0).unwrap(),
        out: Vec::with_capacity(32),
        fwd: Vec::with_capacity(32),
        back: Vec::with_capacity(32),
    };
    // Warm-up: thread-local pool caches, the model's frame rings, the clock's timer heap.
    let mut warm = 0;
    for _ in 0..20 {
        warm += round(&bus, &a, &mut p);
    }
    assert_eq!(warm, 20 * 32);
    let mut moved = 0;
    let calls = allocator_calls(|| {
        for _ in 0..50 {
            moved += round(&bus, &a, &mut p);
        }
    });
    assert_eq!(moved, 50 * 32);
    assert_eq!(calls, 0, "allocator calls for {moved} packets forwarded");
    assert_eq!(p.b_rx.stats().dropped(), 0);
}

#[test]
fn the_counter_sees_allocations() {
    assert!(allocator_calls(|| drop(Vec::<u8>::with_capacity(64))) > 0);
}

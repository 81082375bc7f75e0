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

/// The idle poll (`tx_batch` with nothing to send: cleaning down to the last descriptor and
/// the `SWFLSH` of held-back write-backs) and the hang watch of a full or idle ring (clock
/// readings, the `TDH` and `LINKS` reads, a hang reported with no reset handler) allocate
/// nothing either.
#[test]
fn the_idle_poll_and_the_hang_watch_do_not_allocate() {
    use std::time::Duration;
    let bus = bus_with(&[(A, MAC_A)], "");
    let opts = IxgbeOptions {
        tx_hang_timeout: Some(Duration::from_millis(1)),
        ..options(1, 1)
    };
    let dev = device(&bus, A, opts);
    let mut tx = dev.take_tx_queue(0).unwrap();
    let mut out = Vec::with_capacity(80);
    let mut nothing = Vec::new();
    let fill = |out: &mut Vec<PoolBuffer>, n: usize| {
        for _ in 0..n {
            let mut buf = dev.pool().get().unwrap();
            buf.set_len(128);
            out.push(buf);
        }
    };
    // Warm-up, both paths once.
    fill(&mut out, 3);
    tx.tx_batch(&mut out);
    tx.tx_batch(&mut nothing);
    assert_eq!(tx.in_flight(), 0);
    let mut drained = 0;
    let calls = allocator_calls(|| {
        for _ in 0..20 {
            fill(&mut out, 3);
            tx.tx_batch(&mut out);
            tx.tx_batch(&mut nothing);
            drained += usize::from(tx.in_flight() == 0);
        }
    });
    assert_eq!(drained, 20, "each idle poll reclaimed the three");
    assert_eq!(calls, 0, "allocator calls in the idle poll");
    // Hung: a full ring and idle polls, watched until a hang is found (and only logged).
    model(&bus, A, |m| m.hang_tx());
    fill(&mut out, 80);
    let calls = allocator_calls(|| {
        for _ in 0..10 {
            tx.tx_batch(&mut out);
            bus.clock().advance(Duration::from_micros(500));
        }
        for _ in 0..10 {
            tx.tx_batch(&mut nothing);
            bus.clock().advance(Duration::from_micros(500));
        }
    });
    assert!(tx.hangs() >= 2, "hangs found: {}", tx.hangs());
    assert_eq!(calls, 0, "allocator calls in the hang watch");
    out.clear();
}

//! One queue per core: buffers received on one core's RX queue, handed to another core and
//! freed by that core's TX queue go back to the pool, none lost, none handed out twice
//! (ixy issue #30 came from freeing into a pool without synchronisation).

mod driver_support;

use std::sync::{mpsc, Arc};

use driver_support::*;
use userpci_framework::dma::PoolBuffer;

const FRAMES: u64 = 300;

#[test]
fn buffers_freed_by_another_cores_tx_return_to_the_pool() {
    let bus = pair();
    let a = device(&bus, A, options(1, 1));
    let b = Arc::new(device(&bus, B, options(1, 1)));
    let pool = Arc::clone(b.pool());
    let capacity = pool.capacity();
    let f = flow(0, MAC_B, MAC_A);
    let (to_tx, from_rx) = mpsc::channel::<Vec<PoolBuffer>>();

    // Core 1: B's RX queue, receiving and handing batches to core 2.
    let rx_core = {
        let (b, bus) = (Arc::clone(&b), Arc::clone(&bus));
        std::thread::spawn(move || {
            let mut rx = b.take_rx_queue(0).unwrap();
            let mut received = 0;
            for _ in 0..1_000_000 {
                if received >= FRAMES {
                    break;
                }
                let mut batch = Vec::with_capacity(32);
                match rx.rx_batch(&mut batch, 32) {
                    0 => {
                        settle(&bus);
                        std::thread::yield_now();
                    }
                    n => {
                        received += n as u64;
                        to_tx.send(batch).unwrap();
                    }
                }
            }
            assert_eq!(received, FRAMES);
        })
    };
    // Core 2: B's TX queue, sending the buffers back to A unchanged and freeing them.
    let tx_core = {
        let b = Arc::clone(&b);
        std::thread::spawn(move || {
            let mut tx = b.take_tx_queue(0).unwrap();
            let mut sent = 0;
            for mut batch in from_rx {
                while !batch.is_empty() {
                    sent += tx.tx_batch(&mut batch);
                }
            }
            while tx.in_flight() > 0 {
                tx.reclaim();
            }

            assert_eq!(sent as u64, FRAMES);
            tx.stats()
        })
    };

    // This thread: A sends, and receives what comes back.
    let mut a_tx = a.take_tx_queue(0).unwrap();
    let mut a_rx = a.take_rx_queue(0).unwrap();
    let mut back = Vec::new();
    let mut next = 0u64;
    let mut bufs = Vec::with_capacity(32);
    for _ in 0..1_000_000 {
        if back.len() as u64 >= FRAMES {
            break;
        }
        // At most 32 frames on their way at once, so no ring on the path can overflow.
        if next < FRAMES && next - back.len() as u64 <= 16 {
            let mut p: Vec<_> = (next..(next + 16).min(FRAMES))
                .map(|k| packet(&a, &frame(k, 256, &f)))
                .collect();
            next += p.len() as u64;
            send_all(&mut a_tx, &mut p);
        }
        if a_rx.rx_batch(&mut bufs, 32) == 0 {
            settle(&bus);
            std::thread::yield_now();
        }
        back.extend(bufs.drain(..).map(|p| p.as_slice().to_vec()));
        a_tx.reclaim();
    }
    rx_core.join().unwrap();
    let tx_stats = tx_core.join().unwrap();
    assert_eq!(back.len() as u64, FRAMES);
    for (k, bytes) in back.iter().enumerate() {
        assert_eq!(bytes, &frame(k as u64, 256, &f), "frame {k}");
    }
    assert_eq!(tx_stats.cleaned, FRAMES);

    // Every buffer of B's pool is back: the RX ring's (its queue was dropped on core 1) and
    // those core 2 freed (its cache went back to the ring when the thread exited).
    pool.flush_local_cache();
    assert_eq!(pool.available(), capacity, "no buffer lost or duplicated");
    let mut held = Vec::new();
    while let Some(buf) = pool.get() {
        held.push(buf);
    }
    let mut all: Vec<u32> = held.iter().map(PoolBuffer::index).collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(all.len(), capacity, "each buffer exactly once");
}

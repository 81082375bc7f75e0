//! The buffer pool: argument checks, and random get/put sequences on one thread and across
//! threads checked against a model of which buffers are handed out.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam::channel;
use proptest::prelude::*;
use userpci_framework::backend::sim::{SimIommu, DEFAULT_IOVA_RANGES};
use userpci_framework::dma::{BufferPool, DmaSpace, PoolBuffer};
use userpci_framework::Error;

fn space() -> Arc<DmaSpace> {
    DmaSpace::new(Arc::new(
        SimIommu::new(DEFAULT_IOVA_RANGES.to_vec()).expect("default ranges are valid"),
    ))
    .unwrap()
}

/// Fills the buffer with a pattern derived from its index and a tag.
fn stamp(buffer: &mut PoolBuffer, tag: u8) {
    let index = buffer.index();
    for (i, byte) in buffer.as_mut_slice().iter_mut().enumerate() {
        *byte = pattern(index, tag, i);
    }
}

fn pattern(index: u32, tag: u8, i: usize) -> u8 {
    (index as u8).wrapping_mul(31) ^ tag ^ (i as u8)
}

/// True if the buffer still holds what `stamp` wrote (nothing else wrote over it).
fn stamped(buffer: &PoolBuffer, tag: u8) -> bool {
    let index = buffer.index();
    buffer
        .as_slice()
        .iter()
        .enumerate()
        .all(|(i, &byte)| byte == pattern(index, tag, i))
}

fn invalid_pool_reason(result: userpci_framework::Result<Arc<BufferPool>>) -> String {
    match result {
        Err(err @ Error::InvalidPool { .. }) => {
            let text = err.to_string();
            assert!(text.contains("\"rx0\""), "the pool is named: {text}");
            text
        }
        other => panic!("expected InvalidPool, got {other:?}"),
    }
}

#[test]
fn bad_arguments_are_refused_with_the_value() {
    let space = space();
    let text = invalid_pool_reason(BufferPool::new(&space, "rx0", 0, 8, 0));
    assert!(text.contains("buffer size 0"), "{text}");
    let text = invalid_pool_reason(BufferPool::new(&space, "rx0", 2048, 0, 0));
    assert!(text.contains("buffer count 0"), "{text}");
    let text = invalid_pool_reason(BufferPool::new(&space, "rx0", 2048, 8, 9));
    assert!(
        text.contains("cache size 9") && text.contains("count 8"),
        "{text}"
    );
    let text = invalid_pool_reason(BufferPool::new(&space, "rx0", usize::MAX - 3, 1, 0));
    assert!(text.contains(&(usize::MAX - 3).to_string()), "{text}");
    let text = invalid_pool_reason(BufferPool::new(&space, "rx0", 1 << 40, 1 << 30, 0));
    assert!(text.contains(&(1u64 << 30).to_string()), "{text}");
    #[cfg(target_pointer_width = "64")]
    {
        let too_many = u32::MAX as usize + 1;
        let text = invalid_pool_reason(BufferPool::new(&space, "rx0", 64, too_many, 0));
        assert!(text.contains(&too_many.to_string()), "{text}");
    }
}

#[test]
fn geometry_is_as_asked() {
    let space = space();
    let pool = BufferPool::new(&space, "tx1", 1500, 16, 4).unwrap();
    assert_eq!(pool.name(), "tx1");
    assert_eq!(pool.capacity(), 16);
    assert_eq!(pool.buffer_size(), 1500);
    assert_eq!(pool.cache_size(), 4);
    assert_eq!(pool.available(), 16);
    let mut buffer = pool.get().unwrap();
    assert_eq!((buffer.len(), buffer.capacity()), (1500, 1500));
    assert_eq!(buffer.iova() % 64, 0);
    buffer.set_len(60);
    assert_eq!(buffer.as_slice().len(), 60);
    assert_eq!(buffer.as_mut_slice().len(), 60);
    buffer.set_len(0);
    assert!(buffer.is_empty());
    assert!(Arc::ptr_eq(buffer.pool(), &pool));
}

#[test]
fn exhaustion_returns_none_until_a_buffer_comes_back() {
    for cache_size in [0, 1, 2, 4] {
        let pool = BufferPool::new(&space(), "small", 512, 4, cache_size).unwrap();
        let held: Vec<PoolBuffer> = (0..4).map(|_| pool.get().unwrap()).collect();
        assert!(pool.get().is_none(), "cache {cache_size}");
        assert_eq!(pool.available(), 0);
        let mut batch: [Option<PoolBuffer>; 3] = Default::default();
        assert_eq!(pool.get_batch(&mut batch), 0);
        let returned = held[2].index();
        drop(held);
        let again = pool.get().unwrap();
        assert!(again.index() < 4);
        assert_eq!(
            pool.available(),
            3,
            "cache {cache_size}, returned {returned}"
        );
    }
}

#[test]
fn get_batch_fills_only_empty_slots_and_stops_when_out() {
    let pool = BufferPool::new(&space(), "batch", 64, 5, 2).unwrap();
    let mut ring: Vec<Option<PoolBuffer>> = (0..8).map(|_| None).collect();
    ring[1] = pool.get();
    let kept = ring[1].as_ref().unwrap().index();
    assert_eq!(pool.get_batch(&mut ring), 4);
    assert_eq!(
        ring[1].as_ref().unwrap().index(),
        kept,
        "a full slot is left alone"
    );
    let filled: Vec<bool> = ring.iter().map(Option::is_some).collect();
    assert_eq!(filled, [true, true, true, true, true, false, false, false]);
    let indices: BTreeSet<u32> = ring.iter().flatten().map(PoolBuffer::index).collect();
    assert_eq!(indices, (0..5).collect());
    ring[3] = None;
    assert_eq!(pool.get_batch(&mut ring), 1);
    assert!(ring[3].is_some() && ring[5].is_none());
}

#[derive(Clone, Debug)]
enum Op {
    Get,
    /// Drop the live buffer at this position (modulo the number live).
    Put(usize),
    GetBatch(usize),
    /// Drop this many live buffers, oldest first.
    PutMany(usize),
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Get),
        3 => any::<usize>().prop_map(Op::Put),
        2 => (1usize..=40).prop_map(Op::GetBatch),
        2 => (1usize..=40).prop_map(Op::PutMany),
        1 => Just(Op::Flush),
    ]
}

/// Pool shapes: (buffer_size, count, cache_size) with cache_size <= count.
fn shape() -> impl Strategy<Value = (usize, usize, usize)> {
    (1usize..=3000, 1usize..=64).prop_flat_map(|(size, count)| (Just(size), Just(count), 0..=count))
}

/// Checks a newly handed-out buffer against the buffers live, and records it.
fn take(
    live: &mut Vec<PoolBuffer>,
    buffer: PoolBuffer,
    count: usize,
    tag: u8,
) -> Result<(), TestCaseError> {
    prop_assert!((buffer.index() as usize) < count);
    prop_assert_eq!(buffer.len(), buffer.capacity());
    for other in live.iter() {
        prop_assert_ne!(other.index(), buffer.index(), "index handed out twice");
        prop_assert_ne!(other.iova(), buffer.iova(), "IOVA handed out twice");
        let distance = other.iova().abs_diff(buffer.iova());
        prop_assert!(distance >= buffer.capacity() as u64, "buffers overlap");
    }
    let mut buffer = buffer;
    stamp(&mut buffer, tag);
    live.push(buffer);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn random_get_put_sequences_never_hand_out_a_buffer_twice(
        (size, count, cache) in shape(),
        ops in prop::collection::vec(op(), 1..200),
    ) {
        let pool = BufferPool::new(&space(), "prop", size, count, cache).unwrap();
        let mut live: Vec<PoolBuffer> = Vec::new();
        let mut iovas: HashMap<u32, u64> = HashMap::new();
        let tag = (size ^ count ^ cache) as u8;
        for op in ops {
            match op {
                Op::Get => match pool.get() {
                    Some(buffer) => {
                        // A buffer keeps its IOVA for the life of the pool.
                        let iova = *iovas.entry(buffer.index()).or_insert(buffer.iova());
                        prop_assert_eq!(iova, buffer.iova());
                        take(&mut live, buffer, count, tag)?;
                    }
                    // On one thread, every free buffer is in the ring or this thread's cache.
                    None => prop_assert_eq!(live.len(), count, "None while buffers are free"),
                },
                Op::Put(pick) if !live.is_empty() => {
                    let buffer = live.swap_remove(pick % live.len());
                    prop_assert!(stamped(&buffer, tag), "buffer {} overwritten", buffer.index());
                }
                Op::Put(_) => {}
                Op::GetBatch(n) => {
                    let mut batch: Vec<Option<PoolBuffer>> = (0..n).map(|_| None).collect();
                    let got = pool.get_batch(&mut batch);
                    prop_assert_eq!(got, n.min(count - live.len()));
                    prop_assert!(batch[..got].iter().all(Option::is_some));
                    prop_assert!(batch[got..].iter().all(Option::is_none));
                    for buffer in batch.into_iter().flatten() {
                        take(&mut live, buffer, count, tag)?;
                    }
                }
                Op::PutMany(n) => {
                    let n = n.min(live.len());
                    for buffer in live.drain(..n) {
                        prop_assert!(stamped(&buffer, tag), "buffer {} overwritten", buffer.index());
                    }
                }
                Op::Flush => {
                    let before = pool.available();
                    pool.flush_local_cache();
                    prop_assert_eq!(pool.available(), before);
                }
            }
            prop_assert_eq!(pool.available(), count - live.len());
        }
        drop(live);
        prop_assert_eq!(pool.available(), count);
        pool.flush_local_cache();
        prop_assert_eq!(pool.available(), count);
        // Every buffer is reachable again, each once.
        let all: Vec<PoolBuffer> = (0..count).map(|_| pool.get().unwrap()).collect();
        let indices: BTreeSet<u32> = all.iter().map(PoolBuffer::index).collect();
        prop_assert_eq!(indices.len(), count);
        prop_assert!(pool.get().is_none());
    }

    #[test]
    fn buffers_freed_on_another_thread_are_reachable_from_a_third(
        (size, count, cache) in shape(),
        keep in any::<prop::sample::Index>(),
    ) {
        let pool = BufferPool::new(&space(), "xcore", size, count, cache).unwrap();
        let tag = 0x5a;
        let (tx, rx) = channel::unbounded::<PoolBuffer>();
        // Thread A takes every buffer, fills it and sends it to B; it keeps one for a while.
        let a = {
            let pool = pool.clone();
            thread::spawn(move || {
                let mut all = Vec::new();
                while let Some(mut buffer) = pool.get() {
                    stamp(&mut buffer, tag);
                    all.push(buffer);
                }
                assert_eq!(all.len(), count);
                let kept = all.swap_remove(keep.index(all.len()));
                for buffer in all {
                    tx.send(buffer).unwrap();
                }
                kept
            })
        };
        let kept = a.join().unwrap();
        // Thread B checks and drops them: they land in B's cache and the ring.
        let b = thread::spawn(move || {
            let mut seen = BTreeSet::new();
            for buffer in rx {
                assert!(stamped(&buffer, tag), "buffer {} changed in flight", buffer.index());
                assert!(seen.insert(buffer.index()));
            }
            seen.len()
        });
        prop_assert_eq!(b.join().unwrap(), count - 1);
        // B has exited, so its cache is back in the ring; C sees all but the one kept.
        let c = {
            let pool = pool.clone();
            let kept = kept.index();
            thread::spawn(move || {
                // Holding every handle, so a buffer handed out twice shows as a repeat.
                let mut got = Vec::new();
                while let Some(buffer) = pool.get() {
                    assert_ne!(buffer.index(), kept);
                    got.push(buffer);
                }
                got.iter().map(PoolBuffer::index).collect::<BTreeSet<u32>>().len()
            })
        };
        prop_assert_eq!(c.join().unwrap(), count - 1);
        prop_assert!(stamped(&kept, tag));
        drop(kept);
        prop_assert_eq!(pool.available(), count);
    }
}

#[test]
fn buffers_dropped_during_thread_exit_go_back_to_the_ring() {
    thread_local! {
        static HELD: RefCell<Vec<PoolBuffer>> = const { RefCell::new(Vec::new()) };
    }
    let pool = BufferPool::new(&space(), "exit", 128, 16, 8).unwrap();
    // One thread uses the pool (its cache exists), then parks buffers in another thread-local;
    // another never touched the pool: its cache would first be set up during thread exit.
    let user = {
        let pool = pool.clone();
        thread::spawn(move || {
            let buffers: Vec<PoolBuffer> = (0..6).map(|_| pool.get().unwrap()).collect();
            HELD.with(|held| held.borrow_mut().extend(buffers));
        })
    };
    user.join().unwrap();
    let parked: Vec<PoolBuffer> = (0..6).map(|_| pool.get().unwrap()).collect();
    let stranger = thread::spawn(move || HELD.with(|held| held.borrow_mut().extend(parked)));
    stranger.join().unwrap();
    pool.flush_local_cache();
    assert_eq!(pool.available(), 16);
    let all: Vec<PoolBuffer> = (0..16).map(|_| pool.get().unwrap()).collect();
    let indices: BTreeSet<u32> = all.iter().map(PoolBuffer::index).collect();
    assert_eq!(indices.len(), 16);
}

#[test]
fn concurrent_threads_passing_buffers_around_never_share_one() {
    const THREADS: usize = 4;
    const COUNT: usize = 256;
    const ROUNDS: usize = 2_000;
    let pool = BufferPool::new(&space(), "stress", 256, COUNT, 16).unwrap();
    // claimed[i] is true while some handle of buffer i exists.
    let claimed: Arc<Vec<AtomicBool>> =
        Arc::new((0..COUNT).map(|_| AtomicBool::new(false)).collect());
    let (senders, receivers): (Vec<_>, Vec<_>) = (0..THREADS)
        .map(|_| channel::unbounded::<PoolBuffer>())
        .unzip();
    let handles: Vec<_> = receivers
        .into_iter()
        .enumerate()
        .map(|(me, rx)| {
            let tx = senders[(me + 1) % THREADS].clone();
            let pool = pool.clone();
            let claimed = claimed.clone();
            thread::spawn(move || {
                let tag = me as u8;
                let from = ((me + THREADS - 1) % THREADS) as u8;
                let release = |buffer: PoolBuffer| {
                    let index = buffer.index() as usize;
                    assert!(
                        claimed[index].swap(false, Ordering::AcqRel),
                        "{index} not claimed"
                    );
                    drop(buffer);
                };
                let mut batch: Vec<Option<PoolBuffer>> = (0..8).map(|_| None).collect();
                for round in 0..ROUNDS {
                    if round.is_multiple_of(2) {
                        pool.get_batch(&mut batch);
                    } else {
                        batch[0] = pool.get();
                    }
                    for slot in &mut batch {
                        let Some(mut buffer) = slot.take() else {
                            continue;
                        };
                        let index = buffer.index() as usize;
                        assert!(
                            !claimed[index].swap(true, Ordering::AcqRel),
                            "{index} handed out twice"
                        );
                        stamp(&mut buffer, tag);
                        if index.is_multiple_of(2) {
                            tx.send(buffer).unwrap();
                        } else {
                            assert!(stamped(&buffer, tag));
                            release(buffer);
                        }
                    }
                    while let Ok(buffer) = rx.try_recv() {
                        assert!(
                            stamped(&buffer, from),
                            "buffer {} changed in flight",
                            buffer.index()
                        );
                        release(buffer);
                    }
                }
                drop(tx);
                rx
            })
        })
        .collect();
    drop(senders);
    // Every thread has stopped sending; drain what is still in flight here.
    let receivers: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    for rx in receivers {
        for buffer in rx.try_iter() {
            assert!(claimed[buffer.index() as usize].swap(false, Ordering::AcqRel));
        }
    }
    assert!(claimed.iter().all(|c| !c.load(Ordering::Acquire)));
    // All threads exited: their caches are back in the ring.
    assert_eq!(pool.available(), COUNT);
}

#[test]
fn handles_and_pools_cross_threads() {
    fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<PoolBuffer>();
    send_and_sync::<BufferPool>();
    send_and_sync::<Arc<BufferPool>>();
}

//! After warm-up, getting and returning pool buffers allocates nothing: no heap allocation,
//! reallocation or free on the data path, including the cache refill and flush paths.
//!
//! A counting global allocator counts, per thread, the calls made while that thread has counting
//! switched on, so other tests running at the same time in this binary do not disturb the count.

use std::sync::Arc;

use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_framework::backend::sim::{SimIommu, DEFAULT_IOVA_RANGES};
use userpci_framework::dma::{BufferPool, DmaSpace, PoolBuffer};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations() {
    // Only this thread's calls are counted, so this is exact.
    let calls = allocator_calls(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(&v);
    });
    assert_eq!(calls, 2, "one allocation and one free");
}

const CYCLES: usize = 100_000;

#[test]
fn get_and_put_allocate_nothing_after_warm_up() {
    let space = DmaSpace::new(Arc::new(
        SimIommu::new(DEFAULT_IOVA_RANGES.to_vec()).expect("default ranges are valid"),
    ))
    .unwrap();
    let cached = BufferPool::new(&space, "cached", 2048, 1024, 64).unwrap();
    let uncached = BufferPool::new(&space, "uncached", 512, 64, 0).unwrap();
    // Everything the loop needs, set up before counting.
    let mut slots: Vec<Option<PoolBuffer>> = (0..1024).map(|_| None).collect();
    let mut small: [Option<PoolBuffer>; 8] = Default::default();
    // Warm-up: this thread's cache of each pool (the cache table, the cache's Vec).
    drop(cached.get());
    drop(uncached.get());

    let mut batches = 0usize;
    let mut exhausted = 0usize;
    let mut checksum = 0u64;
    let calls = allocator_calls(|| {
        for cycle in 0..CYCLES {
            // Single get and put, mostly from and to the cache.
            let mut buffer = cached.get().expect("pool has free buffers");
            buffer.as_mut_slice()[0] = cycle as u8;
            buffer.set_len(60);
            checksum += buffer.iova() & 0xff;
            drop(buffer);

            // The pool without cache: straight to the ring and back.
            let buffer = uncached.get().expect("pool has free buffers");
            checksum += u64::from(buffer.index());
            drop(buffer);

            // Small batches.
            uncached.get_batch(&mut small);
            small.iter_mut().for_each(|slot| *slot = None);

            if cycle.is_multiple_of(64) {
                // A batch of four caches' worth: refills from the ring, then on return the
                // cache overflows and flushes half to the ring, again and again.
                batches += cached.get_batch(&mut slots[..256]);
                for slot in &mut slots[..256] {
                    *slot = None;
                }
            }
            if cycle.is_multiple_of(1024) {
                // Exhaustion: the whole pool out, then a get that finds nothing.
                batches += cached.get_batch(&mut slots);
                if cached.get().is_none() {
                    exhausted += 1;
                }
                slots.iter_mut().for_each(|slot| *slot = None);
                cached.flush_local_cache();
            }
        }
    });
    std::hint::black_box(checksum);
    assert_eq!(calls, 0, "allocator calls during {CYCLES} get/put cycles");
    // The paths under test really ran.
    assert_eq!(
        batches,
        CYCLES.div_ceil(64) * 256 + CYCLES.div_ceil(1024) * 1024
    );
    assert_eq!(exhausted, CYCLES.div_ceil(1024));
    assert_eq!(cached.available(), 1024);
    assert_eq!(uncached.available(), 64);
}

#[test]
fn freeing_on_another_thread_allocates_nothing_after_warm_up() {
    let space = DmaSpace::new(Arc::new(
        SimIommu::new(DEFAULT_IOVA_RANGES.to_vec()).expect("default ranges are valid"),
    ))
    .unwrap();
    let pool = BufferPool::new(&space, "remote", 256, 512, 32).unwrap();
    // Buffers taken on the main thread, freed on a worker: the worker's cache fills and flushes.
    let taken: Vec<PoolBuffer> = (0..400).map(|_| pool.get().unwrap()).collect();
    let worker = {
        let pool = pool.clone();
        std::thread::spawn(move || {
            drop(pool.get()); // warm-up of this thread's cache
            let mut taken = taken;
            let calls = allocator_calls(|| {
                while let Some(buffer) = taken.pop() {
                    drop(buffer);
                }
                for _ in 0..CYCLES / 10 {
                    drop(pool.get());
                }
            });
            (calls, taken)
        })
    };
    let (calls, taken) = worker.join().unwrap();
    assert!(taken.is_empty());
    assert_eq!(
        calls, 0,
        "allocator calls while freeing buffers of another thread"
    );
    assert_eq!(
        pool.available(),
        512,
        "the worker's cache went back to the ring at exit"
    );
}

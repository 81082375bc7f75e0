//! Fixed-size DMA buffer pools, modelled on DPDK's `rte_mempool`.
//!
//! A [`BufferPool`] is one [`DmaRegion`] (mapped [`DmaDirection::Bidirectional`]) carved into
//! `count` buffers of the same size. Buffers are handed out as [`PoolBuffer`] handles, which own
//! their buffer exclusively and give it back to the pool when dropped.
//!
//! # Ring and per-core caches
//! The free buffers are kept as indices in two places:
//!
//! - a shared, bounded, lock-free ring (`crossbeam::queue::ArrayQueue<u32>`) with room for every
//!   index of the pool, so returning a buffer can never find it full;
//! - a cache per thread and pool (DPDK's per-lcore cache), in a `thread_local!`. [`BufferPool::get`]
//!   pops from this thread's cache and, when it is empty, refills it from the ring with up to
//!   `cache_size / 2` indices at once; dropping a [`PoolBuffer`] pushes to the cache of the
//!   *dropping* thread and, when the cache is full, first moves half of it to the ring. So a
//!   buffer allocated on one core and freed on another (a TX completion, a buffer sent through a
//!   channel) simply becomes part of the other core's cache or the ring.
//!
//! Each index is in exactly one place at a time: the ring, one thread's cache, or one
//! `PoolBuffer`. That invariant is what makes [`PoolBuffer::as_mut_slice`] sound.
//!
//! There is no lock: the common case touches only the thread's own cache (no atomic at all
//! beyond the `Arc` count of the handle), and the ring is a lock-free queue. A core that stalls
//! while holding a lock could stop every other core's I/O; with the ring it cannot.
//!
//! With `cache_size == 0` there is no cache: every get and put goes to the ring.
//!
//! # What allocates, and when
//! [`BufferPool::new`] allocates (the DMA region, the ring). The first get or put of a pool on a
//! thread creates that thread's cache (one `Vec` of `cache_size` indices, plus the thread-local
//! table on the thread's first pool). After that, [`BufferPool::get`], [`BufferPool::get_batch`],
//! [`BufferPool::put_batch`] and dropping a [`PoolBuffer`] allocate nothing, including when they refill or flush the
//! cache (`tests/pool_no_alloc.rs` checks this).
//!
//! # Thread exit and pool lifetime
//! When a thread exits, its caches give their buffers back to the ring. A cache refers to its
//! pool weakly, so an idle thread does not keep a pool (and its locked memory) alive; every
//! `PoolBuffer` holds the pool strongly, so the memory outlives every handle. A cache whose pool
//! is gone is discarded the next time the thread sets up a cache for another pool, or when it
//! exits.
//!
//! Caches hold buffers the other threads cannot see: [`BufferPool::available`] counts the ring
//! and this thread's cache only, and [`BufferPool::get`] may return `None` while other threads'
//! caches still hold buffers. Size the pool for `count >= in-flight + threads * cache_size`, as
//! with DPDK, or call [`BufferPool::flush_local_cache`] on a thread that goes idle.
//!
//! # Buffers and devices
//! A driver hands a buffer to a device by moving the `PoolBuffer` into its own ring array
//! (for example `Vec<Option<PoolBuffer>>` indexed by descriptor slot) and takes it back out on
//! completion. There is deliberately no way to turn a buffer into a bare index and back: an index
//! that outlives its handle is how a buffer ends up handed out twice.
//!
//! Buffer `i` starts at byte `i * stride` of the region, where `stride` is the buffer size
//! rounded up to 64 bytes (a cache line). The region starts on a page boundary, so every buffer's
//! IOVA is 64-byte aligned, and page aligned when the stride is a multiple of the page size.
//!
//! # Panics
//! [`BufferPool::new`] never panics: bad arguments are [`Error::InvalidPool`] errors.
//! [`PoolBuffer::set_len`] panics when asked for more than the capacity, as slice indexing does.

use std::cell::RefCell;
use std::fmt;
use std::mem::ManuallyDrop;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use crossbeam::queue::ArrayQueue;

use super::region::DmaRegion;
use super::space::{DmaDirection, DmaSpace};
use crate::error::{Error, Result};

/// Buffers are laid out on cache-line boundaries, so two cores never share a line.
const CACHE_LINE: usize = 64;

/// Pool ids are never reused, so a stale cache of a dropped pool never matches a new pool.
static NEXT_POOL_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's caches, one per pool it has used. Few pools per thread: a linear search.
    static CACHES: RefCell<Vec<LocalCache>> = const { RefCell::new(Vec::new()) };
}

/// One thread's cache of free indices of one pool.
struct LocalCache {
    pool_id: u64,
    pool: Weak<BufferPool>,
    /// Capacity `cache_size`, never exceeded, so pushes never reallocate.
    indices: Vec<u32>,
}

impl Drop for LocalCache {
    /// On thread exit (or when pruned), the cached buffers go back to the ring.
    fn drop(&mut self) {
        if let Some(pool) = self.pool.upgrade() {
            for index in self.indices.drain(..) {
                pool.ring_push(index);
            }
        }
    }
}

/// A fixed number of equal-size DMA buffers with lock-free get and put.
///
/// See the [module documentation](self) for the design.
pub struct BufferPool {
    id: u64,
    name: String,
    region: DmaRegion,
    /// Bytes a buffer offers.
    buffer_size: usize,
    /// Distance between buffers: `buffer_size` rounded up to a cache line.
    stride: usize,
    count: u32,
    cache_size: usize,
    /// Free indices not in any thread's cache. Capacity `count`, so a push never fails.
    ring: ArrayQueue<u32>,
}

impl BufferPool {
    /// A pool of `count` buffers of `buffer_size` bytes in `space`, with a per-thread cache of up
    /// to `cache_size` buffers (0: no cache).
    ///
    /// Every argument is checked: zero sizes, a cache larger than the pool, more than `u32::MAX`
    /// buffers and sizes that overflow are [`Error::InvalidPool`] naming the pool and the value.
    pub fn new(
        space: &Arc<DmaSpace>,
        name: &str,
        buffer_size: usize,
        count: usize,
        cache_size: usize,
    ) -> Result<Arc<BufferPool>> {
        let invalid = |reason: String| Error::InvalidPool {
            pool: name.to_string(),
            reason,
        };
        if buffer_size == 0 {
            return Err(invalid(
                "buffer size 0: buffers must hold at least one byte".into(),
            ));
        }
        if count == 0 {
            return Err(invalid(
                "buffer count 0: a pool needs at least one buffer".into(),
            ));
        }
        let count32 = u32::try_from(count).map_err(|_| {
            invalid(format!(
                "buffer count {count} exceeds the maximum of {}",
                u32::MAX
            ))
        })?;
        if cache_size > count {
            return Err(invalid(format!(
                "cache size {cache_size} is larger than the buffer count {count}"
            )));
        }
        let stride = buffer_size
            .checked_next_multiple_of(CACHE_LINE)
            .ok_or_else(|| {
                invalid(format!(
                    "buffer size {buffer_size} overflows when rounded up to {CACHE_LINE} bytes"
                ))
            })?;
        let total = stride
            .checked_mul(count)
            .filter(|&total| isize::try_from(total).is_ok())
            .ok_or_else(|| {
                invalid(format!(
                    "{count} buffers of {stride} bytes (size {buffer_size} rounded up to \
                     {CACHE_LINE}) overflow the address space"
                ))
            })?;
        // The region first: for absurd sizes it fails cleanly, where the ring's allocation of
        // `count` slots would abort the process.
        let region = space.allocate(total, DmaDirection::Bidirectional)?;
        let ring = ArrayQueue::new(count);
        for index in 0..count32 {
            // Cannot fail: the ring has room for `count` indices and is filled with exactly that.
            let _ = ring.push(index);
        }
        let pool = Arc::new(BufferPool {
            id: NEXT_POOL_ID.fetch_add(1, Ordering::Relaxed),
            name: name.to_string(),
            region,
            buffer_size,
            stride,
            count: count32,
            cache_size,
            ring,
        });
        tracing::debug!(
            pool = %pool.name,
            buffer_size,
            stride,
            count,
            cache_size,
            iova = pool.region.iova(),
            "buffer pool created"
        );
        Ok(pool)
    }

    /// The name given at creation, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The number of buffers in the pool.
    pub fn capacity(&self) -> usize {
        self.count as usize
    }

    /// Bytes each buffer holds (as asked; buffers are laid out 64-byte aligned).
    pub fn buffer_size(&self) -> usize {
        self.buffer_size
    }

    /// The per-thread cache size (0: no cache).
    pub fn cache_size(&self) -> usize {
        self.cache_size
    }

    /// Free buffers in the shared ring plus this thread's cache. Approximate while other
    /// threads use the pool, and blind to the buffers in their caches.
    pub fn available(&self) -> usize {
        let cached = if self.cache_size == 0 {
            0
        } else {
            CACHES
                .try_with(|caches| {
                    caches.try_borrow().map_or(0, |caches| {
                        caches
                            .iter()
                            .find(|c| c.pool_id == self.id)
                            .map_or(0, |c| c.indices.len())
                    })
                })
                .unwrap_or(0)
        };
        self.ring.len() + cached
    }

    /// Takes a buffer, or `None` when none is free (backpressure: it never blocks).
    ///
    /// The buffer's data length starts at its capacity; its content is whatever the last user
    /// or device left there (zero for a buffer never used).
    #[inline]
    pub fn get(self: &Arc<Self>) -> Option<PoolBuffer> {
        let index = self
            .with_local_cache(|cache| {
                if cache.is_empty() {
                    self.refill(cache);
                }
                cache.pop()
            })
            .unwrap_or_else(|| self.ring.pop())?;
        Some(self.handle(index))
    }

    /// Fills the empty (`None`) slots of `out`, in order, until the pool runs out; slots that
    /// hold a buffer already are left alone. Returns the number of buffers taken.
    ///
    /// Meant for refilling a receive ring kept as `[Option<PoolBuffer>]`.
    pub fn get_batch(self: &Arc<Self>, out: &mut [Option<PoolBuffer>]) -> usize {
        let cached = self.with_local_cache(|cache| {
            self.fill(out, || {
                if cache.is_empty() {
                    self.refill(cache);
                }
                cache.pop()
            })
        });
        cached.unwrap_or_else(|| self.fill(out, || self.ring.pop()))
    }

    /// Returns every buffer in `slots` to its pool and leaves the slots empty (`None`);
    /// returns the number of buffers returned. The same as dropping them one by one, with one
    /// look-up of this thread's cache per run of consecutive buffers of the same pool instead
    /// of one per buffer. Buffers of different pools may be mixed (a TX ring cleaning
    /// forwarded packets holds the receiving port's buffers).
    ///
    /// Meant for cleaning a transmit ring kept as `[Option<PoolBuffer>]`.
    pub fn put_batch(slots: &mut [Option<PoolBuffer>]) -> usize {
        let mut returned = 0;
        let mut i = 0;
        while i < slots.len() {
            let Some(first) = slots[i].take() else {
                i += 1;
                continue;
            };
            i += 1;
            // The run of buffers of `first`'s pool that follows it.
            let mut end = i;
            while end < slots.len()
                && slots[end]
                    .as_ref()
                    .is_some_and(|b| Arc::ptr_eq(&b.pool, &first.pool))
            {
                end += 1;
            }
            returned += 1 + (end - i);
            let (pool, index) = first.into_parts();
            pool.put_run(index, &mut slots[i..end]);
            i = end;
        }
        returned
    }

    /// Moves every buffer in this thread's cache to the shared ring, where all threads see it
    /// (DPDK's `rte_mempool_cache_flush`). For a thread that stops using the pool for a while.
    pub fn flush_local_cache(&self) {
        if self.cache_size == 0 {
            return;
        }
        let _ = CACHES.try_with(|caches| {
            if let Ok(mut caches) = caches.try_borrow_mut() {
                if let Some(cache) = caches.iter_mut().find(|c| c.pool_id == self.id) {
                    for index in cache.indices.drain(..) {
                        self.ring_push(index);
                    }
                }
            }
        });
    }

    /// Puts a buffer from `next` into each empty slot of `out` until `next` runs dry.
    #[inline]
    fn fill(
        self: &Arc<Self>,
        out: &mut [Option<PoolBuffer>],
        mut next: impl FnMut() -> Option<u32>,
    ) -> usize {
        let mut taken = 0;
        for slot in out.iter_mut().filter(|slot| slot.is_none()) {
            let Some(index) = next() else { break };
            *slot = Some(self.handle(index));
            taken += 1;
        }
        taken
    }

    fn handle(self: &Arc<Self>, index: u32) -> PoolBuffer {
        PoolBuffer {
            pool: Arc::clone(self),
            index,
            len: self.buffer_size,
        }
    }

    /// Runs `f` on this thread's cache of this pool, creating it on first use. `None` when the
    /// pool has no cache or the thread's caches cannot be used (the thread is exiting, or this
    /// is a re-entrant call from a cache's own drop): the caller then uses the ring directly.
    #[inline]
    fn with_local_cache<R>(self: &Arc<Self>, f: impl FnOnce(&mut Vec<u32>) -> R) -> Option<R> {
        if self.cache_size == 0 {
            return None;
        }
        CACHES
            .try_with(|caches| {
                let mut caches = caches.try_borrow_mut().ok()?;
                let slot = match caches.iter().position(|c| c.pool_id == self.id) {
                    Some(slot) => slot,
                    None => self.create_local_cache(&mut caches),
                };
                Some(f(&mut caches[slot].indices))
            })
            .ok()
            .flatten()
    }

    /// Setup on a thread's first use of the pool: the only allocation on the get/put path.
    #[cold]
    fn create_local_cache(self: &Arc<Self>, caches: &mut Vec<LocalCache>) -> usize {
        // Caches of dropped pools hold nothing anyone can use; discard them now that we
        // allocate anyway. Their drop finds the pool gone and does nothing.
        caches.retain(|c| c.pool.strong_count() > 0);
        caches.push(LocalCache {
            pool_id: self.id,
            pool: Arc::downgrade(self),
            indices: Vec::with_capacity(self.cache_size),
        });
        caches.len() - 1
    }

    /// Moves up to half a cache (at least one index) from the ring into `cache`.
    fn refill(&self, cache: &mut Vec<u32>) {
        let target = (self.cache_size / 2).max(1);
        while cache.len() < target {
            match self.ring.pop() {
                Some(index) => cache.push(index),
                None => break,
            }
        }
    }

    /// Returns a buffer: to this thread's cache, flushing half of it first if it is full.
    #[inline]
    fn put(self: &Arc<Self>, index: u32) {
        let cached = self.with_local_cache(|cache| self.push_local(cache, index));
        if cached.is_none() {
            self.ring_push(index);
        }
    }

    /// Returns buffer `index` and every buffer in `run` (all of this pool), with one look-up
    /// of this thread's cache.
    fn put_run(self: &Arc<Self>, index: u32, run: &mut [Option<PoolBuffer>]) {
        let cached = self.with_local_cache(|cache| {
            self.push_local(cache, index);
            for slot in run.iter_mut() {
                if let Some(buf) = slot.take() {
                    self.push_local(cache, buf.into_parts().1);
                }
            }
        });
        if cached.is_none() {
            self.ring_push(index);
            for slot in run.iter_mut() {
                if let Some(buf) = slot.take() {
                    self.ring_push(buf.into_parts().1);
                }
            }
        }
    }

    /// Pushes `index` to `cache`, first moving half of a full cache to the ring.
    #[inline(always)]
    fn push_local(&self, cache: &mut Vec<u32>, index: u32) {
        if cache.len() >= self.cache_size {
            let keep = self.cache_size / 2;
            for index in cache.drain(keep..) {
                self.ring_push(index);
            }
        }
        cache.push(index);
    }

    fn ring_push(&self, index: u32) {
        if self.ring.push(index).is_err() {
            // Only possible if an index were returned twice, which the handles rule out.
            debug_assert!(
                false,
                "pool {}: ring full returning buffer {index}",
                self.name
            );
            tracing::error!(pool = %self.name, index, "buffer pool ring full; buffer leaked");
        }
    }

    /// Pointer to buffer `index` (bounds-checked by the region).
    #[inline]
    fn buffer_ptr(&self, index: u32) -> *mut u8 {
        self.region
            .slice_raw(index as usize * self.stride, self.buffer_size)
    }
}

impl fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BufferPool")
            .field("name", &self.name)
            .field("buffer_size", &self.buffer_size)
            .field("stride", &self.stride)
            .field("count", &self.count)
            .field("cache_size", &self.cache_size)
            .field("in_ring", &self.ring.len())
            .field("iova", &format_args!("{:#x}", self.region.iova()))
            .finish()
    }
}

/// One buffer of a [`BufferPool`], owned exclusively while software holds it.
///
/// Dropping it returns the buffer to the pool, on the cache of the dropping thread, so it may be
/// freed on a different core from the one that took it. It keeps its pool (and so the DMA
/// memory) alive.
pub struct PoolBuffer {
    pool: Arc<BufferPool>,
    index: u32,
    len: usize,
}

impl PoolBuffer {
    /// Device address of the first byte.
    #[inline]
    pub fn iova(&self) -> u64 {
        self.pool
            .region
            .iova_at(self.index as usize * self.pool.stride)
    }

    /// The buffer's number in its pool (`0..capacity`), for messages and statistics.
    #[inline]
    pub fn index(&self) -> u32 {
        self.index
    }

    /// Length of the data (a packet's length, a transfer's size); starts at the capacity.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the data length is zero.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Sets the data length: after a receive, or before a send.
    ///
    /// # Panics
    /// If `len` is larger than [`PoolBuffer::capacity`].
    #[inline]
    pub fn set_len(&mut self, len: usize) {
        assert!(
            len <= self.pool.buffer_size,
            "pool {}: data length {len} exceeds the {}-byte buffer",
            self.pool.name,
            self.pool.buffer_size
        );
        self.len = len;
    }

    /// Bytes the buffer can hold (the pool's buffer size).
    #[inline]
    pub fn capacity(&self) -> usize {
        self.pool.buffer_size
    }

    /// The first [`PoolBuffer::len`] bytes.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        let ptr = self.pool.buffer_ptr(self.index);
        // SAFETY: `buffer_ptr` checked that `capacity >= len` bytes at `ptr` lie inside the
        // region, which `self.pool` keeps alive and mapped (zero-initialised memory). This handle
        // is the only holder of buffer `index` (each index is in one place: ring, one cache or
        // one handle), buffers do not overlap (stride >= buffer size), and the device only
        // touches buffers a driver moved into its ring, so nothing writes these bytes while the
        // borrow of `self` lasts.
        unsafe { std::slice::from_raw_parts(ptr, self.len) }
    }

    /// The first [`PoolBuffer::len`] bytes, to fill.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let ptr = self.pool.buffer_ptr(self.index);
        // SAFETY: as in `as_slice`; `&mut self` makes this the only access to the bytes for the
        // borrow's lifetime.
        unsafe { std::slice::from_raw_parts_mut(ptr, self.len) }
    }

    /// The pool the buffer belongs to.
    pub fn pool(&self) -> &Arc<BufferPool> {
        &self.pool
    }

    /// Takes the handle apart without returning its index to the pool (the caller does):
    /// the pool reference and the index.
    #[inline(always)]
    fn into_parts(self) -> (Arc<BufferPool>, u32) {
        let this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and its destructor never runs (`ManuallyDrop`),
        // so the `Arc` is moved out of it exactly once and its count stays right.
        let pool = unsafe { std::ptr::read(&this.pool) };
        (pool, this.index)
    }
}

impl Drop for PoolBuffer {
    #[inline]
    fn drop(&mut self) {
        self.pool.put(self.index);
    }
}

impl fmt::Debug for PoolBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuffer")
            .field("pool", &self.pool.name)
            .field("index", &self.index)
            .field("iova", &format_args!("{:#x}", self.iova()))
            .field("len", &self.len)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::sim::{SimIommu, DEFAULT_IOVA_RANGES};
    use crate::pci::PciAddress;

    fn setup() -> (Arc<SimIommu>, Arc<DmaSpace>) {
        let iommu = Arc::new(
            SimIommu::new(DEFAULT_IOVA_RANGES.to_vec()).expect("default ranges are valid"),
        );
        let space = DmaSpace::new(iommu.clone()).unwrap();
        (iommu, space)
    }

    fn device() -> PciAddress {
        PciAddress::new(0, 1, 0, 0).unwrap()
    }

    #[test]
    fn the_device_sees_at_iova_what_software_wrote_and_back() {
        let (iommu, space) = setup();
        let pool = BufferPool::new(&space, "rx", 1000, 8, 2).unwrap();
        let mut buffers: Vec<PoolBuffer> = (0..8).map(|_| pool.get().unwrap()).collect();
        for buffer in &mut buffers {
            let tag = buffer.index() as u8;
            for (i, byte) in buffer.as_mut_slice().iter_mut().enumerate() {
                *byte = tag ^ i as u8;
            }
        }
        for buffer in &buffers {
            let mut seen = vec![0u8; 1000];
            iommu.dma_read(device(), buffer.iova(), &mut seen).unwrap();
            assert_eq!(seen, buffer.as_slice(), "buffer {}", buffer.index());
        }
        let packet = [0xabu8; 60];
        iommu
            .dma_write(device(), buffers[3].iova(), &packet)
            .unwrap();
        buffers[3].set_len(60);
        assert_eq!(buffers[3].as_slice(), &packet);
        // Its neighbours are untouched.
        assert_eq!(buffers[2].as_slice()[999], 2 ^ (999 % 256) as u8);
        assert_eq!(buffers[4].as_slice()[0], 4);
        assert!(iommu.faults().is_empty(), "{:?}", iommu.faults());
    }

    #[test]
    fn buffers_sit_on_cache_lines_inside_the_mapping() {
        let (iommu, space) = setup();
        let pool = BufferPool::new(&space, "tx", 100, 5, 0).unwrap();
        assert_eq!(pool.stride, 128);
        let buffers: Vec<PoolBuffer> = (0..5).map(|_| pool.get().unwrap()).collect();
        let base = pool.region.iova();
        for buffer in &buffers {
            assert_eq!(buffer.iova(), base + u64::from(buffer.index()) * 128);
            assert_eq!(buffer.iova() % 64, 0);
            assert_eq!(buffer.capacity(), 100);
        }
        // The last byte of the last buffer is mapped; the device can reach every buffer.
        let last = buffers.iter().map(PoolBuffer::iova).max().unwrap();
        iommu.dma_write(device(), last + 99, &[1]).unwrap();
        assert!(iommu.faults().is_empty());
    }

    #[test]
    fn dropping_the_last_handle_unmaps_the_pool() {
        let (iommu, space) = setup();
        let pool = BufferPool::new(&space, "short", 64, 4, 2).unwrap();
        let buffer = pool.get().unwrap();
        let iova = buffer.iova();
        drop(pool);
        // The handle keeps the memory mapped.
        iommu.dma_write(device(), iova, &[7]).unwrap();
        assert_eq!(buffer.as_slice()[0], 7);
        assert_eq!(iommu.mapping_count(), 1);
        drop(buffer);
        assert_eq!(iommu.mapping_count(), 0);
        assert!(iommu.dma_write(device(), iova, &[7]).is_err());
    }

    #[test]
    fn a_stale_cache_of_a_dropped_pool_is_pruned_on_the_next_setup() {
        let (_iommu, space) = setup();
        let first = BufferPool::new(&space, "first", 64, 4, 2).unwrap();
        drop(first.get());
        let before = CACHES.with(|c| c.borrow().len());
        drop(first);
        let second = BufferPool::new(&space, "second", 64, 4, 2).unwrap();
        drop(second.get());
        let after = CACHES.with(|c| c.borrow().len());
        assert_eq!(
            after, before,
            "the dead pool's cache was replaced, not kept"
        );
        assert!(CACHES.with(|c| c.borrow().iter().all(|c| c.pool.strong_count() > 0)));
    }

    #[test]
    fn put_batch_returns_mixed_pools_and_empties_the_slots() {
        let (_iommu, space) = setup();
        for cache in [0, 4] {
            let a = BufferPool::new(&space, "a", 64, 8, cache).unwrap();
            let b = BufferPool::new(&space, "b", 64, 8, cache).unwrap();
            let mut slots: Vec<Option<PoolBuffer>> = vec![
                a.get(),
                a.get(),
                None,
                b.get(),
                a.get(),
                b.get(),
                b.get(),
                None,
            ];
            a.flush_local_cache();
            b.flush_local_cache();
            let (a_before, b_before) = (a.available(), b.available());
            assert_eq!(BufferPool::put_batch(&mut slots), 6);
            assert!(slots.iter().all(Option::is_none));
            a.flush_local_cache();
            b.flush_local_cache();
            assert_eq!(a.available(), a_before + 3, "cache {cache}");
            assert_eq!(b.available(), b_before + 3, "cache {cache}");
            // Every buffer can be taken again exactly once.
            let all: Vec<PoolBuffer> = std::iter::from_fn(|| a.get()).collect();
            let mut seen: Vec<u32> = all.iter().map(PoolBuffer::index).collect();
            seen.sort_unstable();
            assert_eq!(seen, (0..8).collect::<Vec<_>>());
            // The handles' pool references were released: only `a` itself and `all` remain.
            assert_eq!(Arc::strong_count(&a), 1 + all.len());
        }
    }

    #[test]
    #[should_panic(expected = "data length 65 exceeds the 64-byte buffer")]
    fn set_len_past_the_capacity_panics() {
        let (_iommu, space) = setup();
        let pool = BufferPool::new(&space, "p", 64, 1, 0).unwrap();
        pool.get().unwrap().set_len(65);
    }
}

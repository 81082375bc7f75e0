//! A counting global allocator, for the tests and benches that prove a path allocates
//! nothing (the data path must not allocate: buffer pools, the reactor, the NVMe raw API).
//!
//! It counts, per thread, the allocator calls (alloc, alloc_zeroed, realloc, dealloc) made
//! while that thread has counting switched on, so other tests running in the same binary do not
//! disturb the count. Install it in a test binary and measure a closure:
//!
//! ```
//! use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
//!
//! #[global_allocator]
//! static ALLOCATOR: CountingAllocator = CountingAllocator;
//!
//! fn main() {
//!     let mut ring = Vec::with_capacity(8);
//!     // The hot path: pushes within capacity allocate nothing.
//!     assert_eq!(allocator_calls(|| ring.extend_from_slice(&[1u8, 2, 3])), 0);
//!     // Growing past it does, and the counter sees it.
//!     assert!(allocator_calls(|| ring.extend_from_slice(&[0u8; 64])) > 0);
//! }
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// The system allocator, counting this thread's calls while [`allocator_calls`] runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct CountingAllocator;

thread_local! {
    // Const-initialised and without destructors: using them never allocates.
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static CALLS: Cell<u64> = const { Cell::new(0) };
}

fn note_call() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = CALLS.try_with(|calls| calls.set(calls.get() + 1));
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged, so the
// `GlobalAlloc` contract is `System`'s; counting touches neither the memory nor the layout.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note_call();
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note_call();
        // SAFETY: forwarded unchanged; the caller upholds `alloc_zeroed`'s contract.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note_call();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, which is `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note_call();
        // SAFETY: forwarded unchanged; `ptr` came from this allocator, which is `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Runs `f` with counting on for this thread and returns the allocator calls it made. Only
/// meaningful in a binary whose `#[global_allocator]` is [`CountingAllocator`]; elsewhere it
/// returns 0.
pub fn allocator_calls(f: impl FnOnce()) -> u64 {
    let before = CALLS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    CALLS.with(Cell::get) - before
}

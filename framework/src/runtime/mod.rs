//! The per-core runtime: a reactor thread per pinned core, a small executor of our own, and
//! adaptive polling that sleeps in io_uring when there is nothing to do.
//!
//! # The loop
//!
//! A [`Reactor`] owns one core (or, unpinned, the current thread). Each iteration:
//!
//! 1. handles messages from other threads (closures to run, futures to spawn, task wakes,
//!    stop), at most [`ReactorConfig::message_budget`] of them;
//! 2. wakes the tasks whose [`sleep`] deadline passed (the clock is read only while timers
//!    exist);
//! 3. polls the tasks that were ready when the iteration began (a task that wakes itself runs
//!    again next iteration, after the pollers);
//! 4. calls every registered [`Poller`] once (queue completions, link watch, watchdogs); each
//!    says whether it did work;
//! 5. looks at the watched eventfds without blocking: with io_uring that is a read of the
//!    completion ring, since each eventfd carries a multishot `POLL_ADD` that the kernel
//!    completes even while the thread spins (no system call); with the `ppoll` fallback, a
//!    zero-timeout `ppoll` every 64 iterations.
//!
//! # Adaptive idle policy
//!
//! An iteration in which no message, timer, task, poller or eventfd had anything to do is
//! *empty*. After the [`IdlePolicy`] threshold of consecutive empty iterations (a count, or a
//! duration), the reactor announces that it sleeps (so senders ring its doorbell), looks at its
//! queues a last time, and sleeps in `io_uring_enter` until one of the eventfds fires (device
//! interrupt vectors registered through [`InterruptWaiter`] / [`Reactor::watch_interrupt`], and
//! the reactor's own doorbell that other threads signal), or a `TIMEOUT` at the nearest timer
//! deadline capped by [`ReactorConfig::max_sleep`] ends. On waking it goes back to busy
//! polling and the count starts over. [`IdlePolicy::BusyPoll`] never sleeps (SPDK-style);
//! `AfterIterations(0)` sleeps as soon as there is nothing to do (interrupt-driven).
//!
//! If io_uring is unavailable (kernel, seccomp, `kernel.io_uring_disabled`), the reactor logs
//! it once at info level and sleeps in `ppoll(2)` on the same eventfds instead
//! ([`SleepBackend`]).
//!
//! # Allocation
//!
//! A steady-state iteration does not allocate: running pollers, waking a task on its own core
//! (wakers are `Arc` clones made at spawn; the ready queue's capacity follows the task count),
//! firing and re-arming timers, awaiting a [`Slot`] or an [`InterruptWaiter`], and io_uring
//! completions. Spawning a task, registering a poller, timer growth beyond the previous peak
//! and cross-core messages allocate (the channel allocates a block per 31 messages; a closure
//! is boxed). `framework/tests/runtime_no_alloc.rs` checks this with a counting allocator.
//!
//! # Tasks, wakers and cores
//!
//! Tasks are `!Send` futures in a slab; waking one on its own core pushes its key onto a local
//! queue, waking it from another thread sends the key through the reactor's crossbeam channel
//! and rings the doorbell if the reactor sleeps. Work for another core goes through a
//! [`CoreHandle`] or a [`RuntimeHandle`]; [`Runtime`] starts one pinned reactor thread per core.
//!
//! A queue pair or ring belongs to one core: drivers embed a [`CoreLocal`] marker so that moving
//! one to another thread does not compile.
//!
//! [`tokio_uring_bridge`] drives pollers from an application's own tokio-uring runtime.

pub mod affinity;
mod config;
mod core_handle;
mod cross_core;
mod current;
mod delay;
mod executor;
mod irq;
mod mailbox;
mod poller;
mod reactor;
mod sleep;
mod sources;
mod sync;
mod timer;
pub mod tokio_uring_bridge;

use std::fmt;
use std::marker::PhantomData;

pub use config::{IdlePolicy, ReactorConfig, ReactorStats};
pub use core_handle::CoreHandle;
pub use cross_core::{Runtime, RuntimeHandle};
pub use current::{add_poller, current_core, remove_poller, spawn_local, stop};
pub use delay::{sleep, sleep_until, Sleep};
pub use executor::JoinHandle;
pub use irq::{wait_interrupt, InterruptWaiter, WaitInterrupt};
pub use poller::{Poller, PollerId};
pub use reactor::{block_on, Reactor};
pub use sleep::SleepBackend;
pub use sync::{yield_now, Slot, SlotWait, YieldNow};

/// A zero-size marker that makes the type embedding it `!Send` and `!Sync`: a queue pair or
/// ring that belongs to one core cannot be handed to another thread.
///
/// Moving a core-local queue to another core is a type error, not a runtime check:
///
/// ```compile_fail
/// use userpci_framework::runtime::CoreLocal;
///
/// struct QueuePair {
///     sq_tail: u16,
///     _core: CoreLocal,
/// }
///
/// let qp = QueuePair { sq_tail: 0, _core: CoreLocal::new() };
/// std::thread::spawn(move || drop(qp)); // error: `*const ()` cannot be sent between threads
/// ```
///
/// The same struct without the marker compiles, so it is the marker that refuses:
///
/// ```
/// struct QueuePair {
///     sq_tail: u16,
/// }
///
/// let qp = QueuePair { sq_tail: 0 };
/// std::thread::spawn(move || drop(qp)).join().unwrap();
/// ```
///
/// To give a core a queue pair, send what builds it (a `Send` factory) with
/// [`CoreHandle::spawn`] or [`CoreHandle::run`] and create the queue pair there.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreLocal(PhantomData<*const ()>);

impl CoreLocal {
    /// The marker.
    pub const fn new() -> Self {
        CoreLocal(PhantomData)
    }
}

impl fmt::Debug for CoreLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CoreLocal")
    }
}

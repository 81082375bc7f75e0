//! A steady-state reactor iteration allocates nothing: running pollers, waking tasks on their
//! own core (through a `Slot` a poller fills, and by `yield_now`), arming and firing timers,
//! and waking a task on an interrupt (eventfd signalled, completion reaped, waiter woken).
//!
//! A counting global allocator counts, per thread, the calls (alloc, realloc and free) made
//! while that thread has counting switched on, so the test harness's own threads do not
//! disturb the count.

use std::cell::Cell;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use userpci_framework::alloc_count::{allocator_calls, CountingAllocator};
use userpci_framework::device::{EventFd, InterruptVector};
use userpci_framework::runtime::{
    sleep, yield_now, IdlePolicy, Reactor, ReactorConfig, SleepBackend, Slot,
};

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

#[test]
fn the_counter_sees_allocations() {
    let calls = allocator_calls(|| {
        let v: Vec<u8> = Vec::with_capacity(100);
        std::hint::black_box(&v);
    });
    assert_eq!(calls, 2, "one allocation and one free");
}

const WARM_UP: usize = 20_000;
const ITERATIONS: usize = 50_000;

#[derive(Default)]
struct Progress {
    polls: Cell<u64>,
    slot_wakes: Cell<u64>,
    yields: Cell<u64>,
    timers: Cell<u64>,
    interrupts: Cell<u64>,
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

fn steady_state_iterations_allocate_nothing(backend: SleepBackend) {
    let reactor = match Reactor::new(ReactorConfig {
        idle: IdlePolicy::BusyPoll,
        backend,
        ..ReactorConfig::default()
    }) {
        Ok(reactor) => reactor,
        Err(err) => {
            eprintln!("{backend:?} unavailable here, not tested: {err}");
            return;
        }
    };
    let progress = Rc::new(Progress::default());
    let slot = Rc::new(Slot::new());
    let vector = InterruptVector::new(0, Arc::new(EventFd::new().unwrap()));

    // A completion poller: "finds" a completion every iteration and hands it to the waiting
    // task through the slot; every 16th poll it also raises the interrupt.
    {
        let (progress, slot, vector) = (Rc::clone(&progress), Rc::clone(&slot), vector.clone());
        reactor.add_poller(move || {
            bump(&progress.polls);
            slot.set(progress.polls.get());
            if progress.polls.get() % 16 == 0 {
                vector.event().signal().unwrap();
            }
            true
        });
    }
    // A poller that never has work.
    reactor.add_poller(|| false);
    // The task waiting on the poller's completions.
    {
        let (progress, slot) = (Rc::clone(&progress), Rc::clone(&slot));
        reactor.spawn(async move {
            loop {
                slot.wait().await;
                bump(&progress.slot_wakes);
            }
        });
    }
    // A task that yields.
    {
        let progress = Rc::clone(&progress);
        reactor.spawn(async move {
            loop {
                yield_now().await;
                bump(&progress.yields);
            }
        });
    }
    // A task on a short timer.
    {
        let progress = Rc::clone(&progress);
        reactor.spawn(async move {
            loop {
                sleep(Duration::from_micros(1)).await;
                bump(&progress.timers);
            }
        });
    }
    // A task waiting on the interrupt vector.
    {
        let progress = Rc::clone(&progress);
        let mut waiter = reactor.watch_interrupt(&vector).unwrap();
        reactor.spawn(async move {
            loop {
                waiter.wait().await.unwrap();
                bump(&progress.interrupts);
            }
        });
    }

    for _ in 0..WARM_UP {
        reactor.run_once().unwrap();
    }
    let before = (
        progress.slot_wakes.get(),
        progress.yields.get(),
        progress.timers.get(),
        progress.interrupts.get(),
    );
    let calls = allocator_calls(|| {
        for _ in 0..ITERATIONS {
            reactor.run_once().unwrap();
        }
    });
    assert_eq!(
        calls, 0,
        "{backend:?}: allocator calls in {ITERATIONS} steady-state iterations"
    );
    // Every path under test ran during the counted iterations.
    let wakes = progress.slot_wakes.get() - before.0;
    let yields = progress.yields.get() - before.1;
    let timers = progress.timers.get() - before.2;
    let interrupts = progress.interrupts.get() - before.3;
    assert!(
        wakes >= ITERATIONS as u64 - 1,
        "{backend:?}: {wakes} slot wakes"
    );
    assert!(
        yields >= ITERATIONS as u64 - 1,
        "{backend:?}: {yields} yields"
    );
    assert!(timers > 0, "{backend:?}: no timer fired");
    assert!(interrupts > 0, "{backend:?}: no interrupt seen");
    eprintln!(
        "{backend:?}: {ITERATIONS} iterations, {wakes} slot wakes, {yields} yields, \
         {timers} timers, {interrupts} interrupts, 0 allocations"
    );
}

#[test]
fn steady_state_iterations_allocate_nothing_with_io_uring() {
    steady_state_iterations_allocate_nothing(SleepBackend::IoUring);
}

#[test]
fn steady_state_iterations_allocate_nothing_with_ppoll() {
    steady_state_iterations_allocate_nothing(SleepBackend::Poll);
}

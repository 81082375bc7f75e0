//! Costs of the per-core runtime's hot paths:
//!
//! - one empty reactor iteration (no work anywhere), bare and with an idle poller;
//! - a poller filling a `Slot`, which wakes the waiting task, and the task running (the
//!   async driver path);
//! - a task that `yield_now`s (wake on its own core, run next iteration);
//! - a wake through the cross-thread path (channel), drained by the next iteration.
//!
//! Run with `cargo bench --bench runtime` (`-- --quick` for a short run).

use std::cell::Cell;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use criterion::{criterion_group, criterion_main, Criterion};
use userpci::framework::runtime::{yield_now, IdlePolicy, Reactor, ReactorConfig, Slot};

fn busy_reactor() -> Reactor {
    Reactor::new(ReactorConfig {
        idle: IdlePolicy::BusyPoll,
        ..ReactorConfig::default()
    })
    .expect("reactor")
}

fn empty_iteration(c: &mut Criterion) {
    let mut group = c.benchmark_group("reactor_iteration");
    let reactor = busy_reactor();
    group.bench_function("empty", |b| b.iter(|| reactor.run_once().unwrap()));
    let reactor = busy_reactor();
    reactor.add_poller(|| false);
    group.bench_function("one_idle_poller", |b| {
        b.iter(|| reactor.run_once().unwrap())
    });
    group.finish();
}

fn wake_and_run(c: &mut Criterion) {
    let mut group = c.benchmark_group("task");

    // The driver path: each iteration a completion poller "finds" a completion and fills the
    // slot (waking the waiting task on its own core); the task runs in the next iteration.
    // One iteration = poller + wake + task run.
    let reactor = busy_reactor();
    let slot = Rc::new(Slot::new());
    let runs = Rc::new(Cell::new(0u64));
    {
        let (slot, runs) = (Rc::clone(&slot), Rc::clone(&runs));
        reactor.spawn(async move {
            loop {
                slot.wait().await;
                runs.set(runs.get() + 1);
            }
        });
    }
    reactor.add_poller(move || {
        slot.set(());
        true
    });
    group.bench_function("slot_wake_and_run", |b| {
        b.iter(|| reactor.run_once().unwrap())
    });
    assert!(runs.get() > 0);

    // A task that yields: each iteration wakes it on its own core and runs it.
    let reactor = busy_reactor();
    reactor.spawn(async {
        loop {
            yield_now().await;
        }
    });
    group.bench_function("yield_now_round", |b| {
        b.iter(|| reactor.run_once().unwrap())
    });

    // The cross-thread wake path (channel send, drained by the next iteration), measured on
    // one thread so it excludes the cache-line transfer between cores.
    let reactor = busy_reactor();
    let stored: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
    {
        let stored = Arc::clone(&stored);
        reactor.spawn(std::future::poll_fn(move |cx| {
            *stored.lock().unwrap() = Some(cx.waker().clone());
            Poll::<()>::Pending
        }));
    }
    reactor.run_once().unwrap();
    let waker = stored.lock().unwrap().clone().unwrap();
    group.bench_function("remote_path_wake_and_run", |b| {
        b.iter(|| {
            waker.wake_by_ref();
            reactor.run_once().unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, empty_iteration, wake_and_run);
criterion_main!(benches);

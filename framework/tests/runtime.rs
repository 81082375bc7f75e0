//! The per-core runtime: pinning, tasks, pollers, idle sleep and its wake-ups, cross-core work,
//! timers and the tokio-uring bridge.
//!
//! Nothing here decides pass or fail by sleeping: threads meet through channels and eventfds,
//! and the generous timeouts only turn a hang into a failure.

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam::channel::{self, RecvTimeoutError};
use userpci_framework::device::{EventFd, InterruptVector};
use userpci_framework::runtime::affinity::{allowed_cpus, current_cpu, format_cpu_list};
use userpci_framework::runtime::tokio_uring_bridge::{Bridge, BridgeConfig, BridgeHandle};
use userpci_framework::runtime::{
    self, sleep, spawn_local, wait_interrupt, yield_now, CoreHandle, IdlePolicy, Reactor,
    ReactorConfig, ReactorStats, Runtime, RuntimeHandle, SleepBackend, Slot,
};
use userpci_framework::Error;

/// Only a guard against hangs; never reached when things work.
const GUARD: Duration = Duration::from_secs(30);

/// Runs `f` on its own thread and fails the test if it does not finish within [`GUARD`].
fn guarded<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = channel::bounded(1);
    let thread = thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = tx.send(f());
        })
        .unwrap();
    match rx.recv_timeout(GUARD) {
        Ok(value) => {
            thread.join().unwrap();
            value
        }
        Err(RecvTimeoutError::Disconnected) => match thread.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => unreachable!("{name} ended without a result"),
        },
        Err(RecvTimeoutError::Timeout) => panic!("{name} did not finish within {GUARD:?}"),
    }
}

/// Waits (bounded by [`GUARD`]) until `cond` holds.
fn wait_until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// The sleep backends that work here: both when io_uring is available, else only `ppoll`.
fn backends() -> Vec<SleepBackend> {
    let mut backends = vec![SleepBackend::Poll];
    match Reactor::new(config(SleepBackend::IoUring, IdlePolicy::BusyPoll, None)) {
        Ok(_) => backends.push(SleepBackend::IoUring),
        Err(err) => eprintln!("io_uring unavailable, testing the ppoll backend only: {err}"),
    }
    backends
}

fn config(backend: SleepBackend, idle: IdlePolicy, max_sleep: Option<Duration>) -> ReactorConfig {
    ReactorConfig {
        idle,
        max_sleep,
        backend,
        ..ReactorConfig::default()
    }
}

/// A reactor that goes to sleep after a few empty iterations and only wakes for an event.
fn sleepy(backend: SleepBackend) -> ReactorConfig {
    config(backend, IdlePolicy::AfterIterations(8), None)
}

fn vector() -> InterruptVector {
    InterruptVector::new(3, Arc::new(EventFd::new().unwrap()))
}

#[test]
fn io_uring_availability_is_reported() {
    let reactor = Reactor::new(ReactorConfig::default()).unwrap();
    eprintln!("default sleep backend here: {:?}", reactor.backend());
    assert_ne!(reactor.backend(), SleepBackend::Auto);
}

#[test]
fn pinning_to_core_0_runs_the_reactor_there() {
    let (cpu, mask, core) = guarded("pin-0", || {
        let reactor = Reactor::pinned(0, ReactorConfig::default()).unwrap();
        let cpu = reactor.block_on(async { current_cpu() }).unwrap();
        (cpu, allowed_cpus().unwrap(), reactor.core())
    });
    assert_eq!(cpu, Some(0));
    assert_eq!(mask, vec![0]);
    assert_eq!(core, Some(0));
}

#[test]
fn pinning_to_a_missing_core_names_the_core_and_the_allowed_cpus() {
    let allowed = format_cpu_list(&allowed_cpus().unwrap());
    let check = |err: Error| match err {
        Error::CoreUnavailable { core, allowed: a } => {
            assert_eq!(core, 4096);
            assert_eq!(a, allowed);
            let text = Error::CoreUnavailable { core, allowed: a }.to_string();
            assert!(text.contains("core 4096"), "{text}");
            assert!(text.contains(&allowed), "{text}");
        }
        other => panic!("expected CoreUnavailable, got {other:?}"),
    };
    check(Reactor::pinned(4096, ReactorConfig::default()).unwrap_err());
    check(Runtime::start(&[0, 4096], ReactorConfig::default()).unwrap_err());
}

#[test]
fn tasks_run_to_completion() {
    let reactor = Reactor::new(ReactorConfig::default()).unwrap();
    let log = Rc::new(RefCell::new(Vec::new()));
    let early = {
        let log = Rc::clone(&log);
        reactor.spawn(async move {
            log.borrow_mut().push("spawned before block_on");
            7
        })
    };
    let total = reactor
        .block_on(async {
            let mut handles = Vec::new();
            for i in 0..10u64 {
                handles.push(spawn_local(async move {
                    for _ in 0..i {
                        yield_now().await;
                    }
                    // A task can spawn tasks.
                    spawn_local(async move { i * 2 }).await
                }));
            }
            let mut total = 0;
            for h in handles {
                total += h.await;
            }
            total + early.await
        })
        .unwrap();
    assert_eq!(total, 90 + 7);
    assert_eq!(*log.borrow(), vec!["spawned before block_on"]);
    assert!(reactor.stats().tasks_polled > 20);
}

#[test]
fn pollers_run_each_iteration_and_can_be_removed() {
    let reactor = Reactor::new(config(SleepBackend::Auto, IdlePolicy::BusyPoll, None)).unwrap();
    let runs = Rc::new(Cell::new(0u32));
    let done = Rc::new(Slot::new());
    let id = {
        let (runs, done) = (Rc::clone(&runs), Rc::clone(&done));
        reactor.add_poller(move || {
            runs.set(runs.get() + 1);
            if runs.get() == 100 {
                done.set(runs.get());
            }
            true
        })
    };
    assert_eq!(reactor.block_on(done.wait()).unwrap(), 100);
    reactor.remove_poller(id);
    let before = runs.get();
    for _ in 0..10 {
        reactor.run_once().unwrap();
    }
    assert_eq!(runs.get(), before);

    // A poller can add another one and remove itself from inside the loop.
    let seen = Rc::new(Slot::new());
    let seen2 = Rc::clone(&seen);
    let first = Rc::new(Cell::new(None));
    let first2 = Rc::clone(&first);
    let id = reactor.add_poller(move || {
        if let Some(id) = first2.get() {
            runtime::remove_poller(id);
            let seen = Rc::clone(&seen2);
            runtime::add_poller(move || {
                seen.set(());
                false
            });
        }
        false
    });
    first.set(Some(id));
    reactor.block_on(seen.wait()).unwrap();
}

#[test]
fn idle_reactor_sleeps_until_an_interrupt_fires() {
    for backend in backends() {
        let vector = vector();
        let v = vector.clone();
        let (count, stats) = signal_while_asleep(backend, vector, move |_| {
            Box::pin(async move { wait_interrupt(&v).await.unwrap() })
        });
        assert_eq!(count, 1, "{backend:?}");
        assert!(stats.sleeps >= 1, "{backend:?}: {stats:?}");
    }
}

/// Starts a reactor thread running `setup`'s future, signals `vector` once the reactor is
/// asleep, and returns what the future produced and the reactor's counters.
fn signal_while_asleep<T: Send + 'static>(
    backend: SleepBackend,
    vector: InterruptVector,
    setup: impl FnOnce(&Reactor) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
        + Send
        + 'static,
) -> (T, ReactorStats) {
    signal_while_asleep_with(sleepy(backend), vector, setup)
}

fn signal_while_asleep_with<T: Send + 'static>(
    config: ReactorConfig,
    vector: InterruptVector,
    setup: impl FnOnce(&Reactor) -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>>
        + Send
        + 'static,
) -> (T, ReactorStats) {
    let (handle_tx, handle_rx) = channel::bounded::<CoreHandle>(1);
    let (out_tx, out_rx) = channel::bounded(1);
    let backend = config.backend;
    let thread = thread::spawn(move || {
        let reactor = Reactor::new(config).unwrap();
        let future = setup(&reactor);
        handle_tx.send(reactor.handle()).unwrap();
        let out = reactor.block_on(future).unwrap();
        out_tx.send((out, reactor.stats())).unwrap();
    });
    let handle = handle_rx.recv_timeout(GUARD).unwrap();
    wait_until("the reactor sleeps", || handle.is_sleeping());
    vector.event().signal().unwrap();
    let out = out_rx
        .recv_timeout(GUARD)
        .unwrap_or_else(|e| panic!("{backend:?}: the interrupt did not wake the reactor: {e}"));
    thread.join().unwrap();
    out
}

#[test]
fn the_duration_idle_policy_sleeps_too() {
    for backend in backends() {
        let vector = vector();
        let v = vector.clone();
        let config = config(
            backend,
            IdlePolicy::AfterDuration(Duration::from_millis(1)),
            None,
        );
        let (count, stats) = signal_while_asleep_with(config, vector, move |_| {
            Box::pin(async move { wait_interrupt(&v).await.unwrap() })
        });
        assert_eq!(count, 1, "{backend:?}");
        assert!(stats.sleeps >= 1, "{backend:?}: {stats:?}");
        assert!(stats.idle_iterations > 0, "{backend:?}: {stats:?}");
    }
}

#[test]
fn an_interrupt_wakes_a_sleeping_task() {
    for backend in backends() {
        let vector = vector();
        let v = vector.clone();
        let (count, stats) = signal_while_asleep(backend, vector, move |reactor| {
            let mut waiter = reactor.watch_interrupt(&v).unwrap();
            Box::pin(async move { waiter.wait().await.unwrap() })
        });
        assert_eq!(count, 1, "{backend:?}");
        assert!(stats.sleeps >= 1, "{backend:?}: {stats:?}");
    }
}

#[test]
fn an_interrupt_wakes_a_poller_driven_device() {
    for backend in backends() {
        let vector = vector();
        let v = vector.clone();
        let (count, stats) = signal_while_asleep(backend, vector, move |reactor| {
            // The device's poller owns the count; the watch only makes the reactor wake up.
            let watch = reactor.watch_interrupt(&v).unwrap();
            let done = Rc::new(Slot::new());
            let done2 = Rc::clone(&done);
            reactor.add_poller(move || match v.take().unwrap() {
                0 => false,
                n => {
                    done2.set(n);
                    true
                }
            });
            Box::pin(async move {
                let n = done.wait().await;
                drop(watch);
                n
            })
        });
        assert_eq!(count, 1, "{backend:?}");
        assert!(stats.sleeps >= 1, "{backend:?}: {stats:?}");
    }
}

#[test]
fn a_busy_reactor_notices_an_interrupt_without_sleeping() {
    for backend in backends() {
        let vector = vector();
        let (ready_tx, ready_rx) = channel::bounded(1);
        let v = vector.clone();
        let waiter = thread::spawn(move || {
            let reactor = Reactor::new(config(backend, IdlePolicy::BusyPoll, None)).unwrap();
            reactor.add_poller(|| true); // always busy
            let out = reactor
                .block_on(async move {
                    let mut waiter = runtime::InterruptWaiter::new(&v).unwrap();
                    ready_tx.send(()).unwrap();
                    waiter.wait().await.unwrap()
                })
                .unwrap();
            (out, reactor.stats())
        });
        ready_rx.recv_timeout(GUARD).unwrap();
        vector.event().signal().unwrap();
        let (out_tx, out_rx) = channel::bounded(1);
        thread::spawn(move || out_tx.send(waiter.join().unwrap()).unwrap());
        let (count, stats) = out_rx.recv_timeout(GUARD).expect("interrupt not noticed");
        assert_eq!(count, 1, "{backend:?}");
        assert_eq!(stats.sleeps, 0, "{backend:?}");
    }
}

#[test]
fn a_task_woken_from_another_thread_wakes_the_sleeping_reactor() {
    for backend in backends() {
        struct Remote {
            fired: AtomicBool,
            waker: Mutex<Option<Waker>>,
        }
        let remote = Arc::new(Remote {
            fired: AtomicBool::new(false),
            waker: Mutex::new(None),
        });
        let (handle_tx, handle_rx) = channel::bounded::<CoreHandle>(1);
        let (out_tx, out_rx) = channel::bounded(1);
        let r = Arc::clone(&remote);
        let thread = thread::spawn(move || {
            let reactor = Reactor::new(sleepy(backend)).unwrap();
            handle_tx.send(reactor.handle()).unwrap();
            let task = reactor.spawn(std::future::poll_fn(move |cx| {
                if r.fired.load(Ordering::SeqCst) {
                    return Poll::Ready("woken");
                }
                *r.waker.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            }));
            let out = reactor.block_on(task).unwrap();
            out_tx.send((out, reactor.stats())).unwrap();
        });
        let handle = handle_rx.recv_timeout(GUARD).unwrap();
        wait_until("the task registered its waker", || {
            remote.waker.lock().unwrap().is_some()
        });
        wait_until("the reactor sleeps", || handle.is_sleeping());
        remote.fired.store(true, Ordering::SeqCst);
        remote.waker.lock().unwrap().take().unwrap().wake();
        let (out, stats) = out_rx.recv_timeout(GUARD).expect("remote wake lost");
        thread.join().unwrap();
        assert_eq!(out, "woken");
        assert!(stats.sleeps >= 1, "{backend:?}: {stats:?}");
        assert!(stats.messages >= 1, "{backend:?}: {stats:?}");
    }
}

#[test]
fn work_is_spawned_across_cores() {
    let allowed = allowed_cpus().unwrap();
    let cores: Vec<usize> = allowed.iter().copied().take(2).collect();
    let runtime = Runtime::start(&cores, ReactorConfig::default()).unwrap();
    let handle: RuntimeHandle = runtime.handle();
    assert_eq!(handle.core_ids(), cores);

    // A closure runs on the core it was sent to.
    for &core in &cores {
        let (tx, rx) = channel::bounded(1);
        runtime
            .spawn_on(core, move || {
                tx.send((current_cpu(), runtime::current_core())).unwrap()
            })
            .unwrap();
        assert_eq!(rx.recv_timeout(GUARD).unwrap(), (Some(core), Some(core)));
    }

    // A !Send future is built on its core; it asks the other core for work and awaits the
    // reply, which comes back through the first core's handle.
    let (first, last) = (cores[0], *cores.last().unwrap());
    let (tx, rx) = channel::bounded(1);
    let h = handle.clone();
    runtime
        .spawn_future_on(first, move || async move {
            let local = Rc::new(Cell::new(0u32)); // !Send state, fine on one core
            let reply = Arc::new(Mutex::new(None));
            let here = CoreHandle::current().unwrap();
            let r = Arc::clone(&reply);
            h.spawn_on(last, move || {
                let cpu = current_cpu();
                *r.lock().unwrap() = cpu;
                here.run(|| {}).unwrap(); // wakes the first core if it sleeps
            })
            .unwrap();
            loop {
                if let Some(cpu) = *reply.lock().unwrap() {
                    local.set(local.get() + 1);
                    tx.send((cpu, current_cpu(), local.get())).unwrap();
                    break;
                }
                sleep(Duration::from_millis(1)).await;
            }
        })
        .unwrap();
    assert_eq!(rx.recv_timeout(GUARD).unwrap(), (last, Some(first), 1));

    assert!(matches!(
        handle.spawn_on(4096, || {}),
        Err(Error::CoreUnavailable { core: 4096, .. })
    ));
    runtime.shutdown().unwrap();
    // Every core is gone now.
    assert!(matches!(
        handle.spawn_on(first, || {}),
        Err(Error::RuntimeGone { .. })
    ));
}

#[test]
fn timers_wake_a_sleeping_reactor_in_deadline_order() {
    for backend in backends() {
        let reactor = Reactor::new(sleepy(backend)).unwrap();
        let order = Rc::new(RefCell::new(Vec::new()));
        let start = Instant::now();
        reactor
            .block_on(async {
                let mut handles = Vec::new();
                for ms in [30u64, 10, 20] {
                    let order = Rc::clone(&order);
                    handles.push(spawn_local(async move {
                        sleep(Duration::from_millis(ms)).await;
                        order.borrow_mut().push(ms);
                    }));
                }
                for h in handles {
                    h.await;
                }
            })
            .unwrap();
        assert!(start.elapsed() >= Duration::from_millis(30));
        assert_eq!(*order.borrow(), vec![10, 20, 30], "{backend:?}");
        // max_sleep is None: only the timers could have ended these sleeps.
        assert!(reactor.stats().sleeps >= 1, "{backend:?}");
    }
}

#[test]
fn a_stopped_reactor_returns_from_run_and_a_dropped_one_is_gone() {
    let (handle_tx, handle_rx) = channel::bounded::<CoreHandle>(1);
    let thread = thread::spawn(move || {
        let reactor = Reactor::new(sleepy(SleepBackend::Auto)).unwrap();
        handle_tx.send(reactor.handle()).unwrap();
        reactor.run().unwrap();
    });
    let handle = handle_rx.recv_timeout(GUARD).unwrap();
    wait_until("the reactor sleeps", || handle.is_sleeping());
    handle.stop().unwrap();
    let (tx, rx) = channel::bounded(1);
    thread::spawn(move || tx.send(thread.join().is_ok()).unwrap());
    assert!(rx.recv_timeout(GUARD).unwrap());
    assert!(matches!(handle.run(|| {}), Err(Error::RuntimeGone { .. })));
}

#[test]
fn handles_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<CoreHandle>();
    send_sync::<RuntimeHandle>();
    send_sync::<BridgeHandle>();
}

#[test]
fn the_tokio_uring_bridge_drives_pollers() {
    let (done, stats) = guarded("bridge-pollers", || {
        tokio_uring::start(async {
            let done = Rc::new(Slot::new());
            let from_poller = Rc::clone(&done);
            let mut rounds = 0u32;
            let mut bridge = Bridge::new(BridgeConfig::default()).unwrap();
            bridge.add_poller(move || {
                rounds += 1;
                if rounds == 50 {
                    from_poller.set(rounds);
                }
                true
            });
            let handle = bridge.handle();
            let driver = tokio_uring::spawn(bridge.run());
            let done = done.wait().await;
            handle.stop();
            (done, driver.await.unwrap().unwrap())
        })
    });
    assert_eq!(done, 50);
    assert!(stats.rounds >= 50, "{stats:?}");
}

#[test]
fn the_tokio_uring_bridge_sleeps_until_an_eventfd_fires() {
    let (count, stats) = guarded("bridge-sleep", || {
        tokio_uring::start(async {
            let vector = vector();
            let done = Rc::new(Slot::new());
            let from_poller = Rc::clone(&done);
            let v = vector.clone();
            let mut bridge = Bridge::new(BridgeConfig {
                idle: IdlePolicy::AfterIterations(8),
                max_sleep: None,
            })
            .unwrap();
            bridge
                .wake_on(&vector)
                .add_poller(move || match v.take().unwrap() {
                    0 => false,
                    n => {
                        from_poller.set(n);
                        true
                    }
                });
            let handle = bridge.handle();
            let driver = tokio_uring::spawn(bridge.run());
            let h = handle.clone();
            let signaller = thread::spawn(move || {
                wait_until("the bridge sleeps", || h.is_sleeping());
                vector.event().signal().unwrap();
            });
            let count = done.wait().await;
            handle.stop();
            let stats = driver.await.unwrap().unwrap();
            signaller.join().unwrap();
            (count, stats)
        })
    });
    assert_eq!(count, 1);
    assert!(stats.sleeps >= 1, "{stats:?}");
}

#[test]
fn a_bridge_aborted_while_asleep_is_cancelled_cleanly() {
    guarded("bridge-drop", || {
        tokio_uring::start(async {
            let bridge = Bridge::new(BridgeConfig {
                idle: IdlePolicy::AfterIterations(0),
                max_sleep: None,
            })
            .unwrap();
            let handle = bridge.handle();
            let driver = tokio_uring::spawn(bridge.run());
            while !handle.is_sleeping() {
                yield_now().await;
            }
            driver.abort();
            assert!(driver.await.unwrap_err().is_cancelled());
        })
    });
}

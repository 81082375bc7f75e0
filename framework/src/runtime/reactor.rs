//! The reactor: one loop per core that runs tasks and pollers and sleeps when idle. Its state
//! and the thread-local that finds it are in `current.rs`; this file is the loop on top.
//!
//! See the [module documentation](super) for the loop and the idle policy.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use crossbeam::channel;

use super::affinity;
use super::config::{IdlePolicy, ReactorConfig, ReactorStats};
use super::core_handle::CoreHandle;
use super::current::{bump, reserve, Counters, Enter, Inner};
use super::executor::{JoinHandle, TaskWaker, Tasks, MAIN_KEY};
use super::irq::InterruptWaiter;
use super::mailbox::{Message, Shared};
use super::poller::{self, Poller, PollerId, Pollers};
use super::sleep::{Backend, SleepBackend};
use super::sources::Sources;
use super::timer::Timers;
use crate::device::{EventFd, InterruptVector};
use crate::error::{Error, Result};

impl Inner {
    /// One iteration: messages, timers, ready tasks, pollers, eventfds; then maybe sleep.
    fn turn(&self, may_sleep: bool) -> Result<bool> {
        let mut work = self.drain_messages();
        {
            let mut timers = self.timers.borrow_mut();
            if !timers.is_empty() {
                work |= timers.fire_expired(Instant::now());
            }
        }
        work |= self.run_ready();
        work |= self.run_pollers();
        work |= self
            .sources
            .borrow_mut()
            .check()
            .map_err(|source| Error::Runtime {
                op: "check eventfds",
                source,
            })?;
        bump(&self.counters.iterations, 1);
        if !work {
            bump(&self.counters.idle_iterations, 1);
        }
        if self.idle_long_enough(work) && may_sleep {
            self.sleep()?;
        }
        Ok(work)
    }

    fn drain_messages(&self) -> bool {
        // The common case, nothing sent: two loads instead of a `try_recv`. A message sent
        // meanwhile waits for the next iteration (or the last look before sleeping).
        if self.rx.is_empty() {
            return false;
        }
        let mut handled = 0;
        while handled < self.config.message_budget {
            let Ok(msg) = self.rx.try_recv() else {
                break;
            };
            handled += 1;
            match msg {
                Message::Wake(key) => self.queue_remote_wake(key),
                Message::Run(f) => f(),
                Message::Stop => self.stop.set(true),
            }
        }
        bump(&self.counters.messages, handled as u64);
        handled > 0
    }

    /// A wake from another thread (or from outside the running reactor) arrived.
    fn queue_remote_wake(&self, key: u64) {
        if key == MAIN_KEY {
            self.main_ready.set(true);
            return;
        }
        if let Some(task) = self.tasks.borrow().get(key) {
            task.queue(&self.ready);
        } // else finished since
    }

    fn run_ready(&self) -> bool {
        // Only what was queued before this round: a task that wakes itself runs next round,
        // after the pollers. Wakes during the round go to `ready`, which nothing else
        // borrows meanwhile; `running` stays borrowed for the round.
        let mut running = self.running.borrow_mut();
        {
            let mut ready = self.ready.borrow_mut();
            if ready.is_empty() {
                return false;
            }
            std::mem::swap(&mut *ready, &mut *running);
            reserve(&mut ready, self.queue_capacity.get());
        }
        let polled = running.len() as u64;
        for key in running.drain(..) {
            if key == MAIN_KEY {
                self.main_ready.set(true);
                continue;
            }
            // Polled in place: the slab is not borrowed during the poll, so the task may
            // spawn; the `Rc` keeps it alive if it completes.
            let Some(task) = self.tasks.borrow().get(key).cloned() else {
                continue; // finished since it was queued
            };
            if task.poll() {
                let slab_ref = self.tasks.borrow_mut().remove(key);
                drop(slab_ref);
            }
            drop(task); // outside the borrow: a finished task's drop may touch the reactor
        }
        bump(&self.counters.tasks_polled, polled);
        true
    }

    fn run_pollers(&self) -> bool {
        if self.pollers.borrow().len() == 0 {
            return false;
        }
        let mut list = self.pollers.borrow_mut().begin();
        let work = poller::run_round(&mut list);
        let removed = self.pollers.borrow_mut().end(list);
        drop(removed);
        work
    }

    /// Applies the idle policy to this iteration's outcome.
    fn idle_long_enough(&self, work: bool) -> bool {
        if work {
            self.empty_iterations.set(0);
            self.idle_since.set(None);
            return false;
        }
        let empty = self.empty_iterations.get().saturating_add(1);
        self.empty_iterations.set(empty);
        match self.config.idle {
            IdlePolicy::BusyPoll => false,
            IdlePolicy::AfterIterations(n) => empty > n,
            IdlePolicy::AfterDuration(d) => {
                let now = Instant::now();
                let since = self.idle_since.get().unwrap_or(now);
                self.idle_since.set(Some(since));
                now.duration_since(since) >= d
            }
        }
    }

    fn sleep(&self) -> Result<()> {
        self.shared.announce_sleep();
        let pending = !self.rx.is_empty()
            || !self.ready.borrow().is_empty()
            || self.main_ready.get()
            || self.stop.get();
        let mut timeout = self.config.max_sleep;
        if let Some(deadline) = self.timers.borrow().next_deadline() {
            let until = deadline.saturating_duration_since(Instant::now());
            timeout = Some(timeout.map_or(until, |t| t.min(until)));
        }
        if pending || timeout == Some(Duration::ZERO) {
            self.shared.end_sleep();
            return Ok(());
        }
        let slept = self.sources.borrow_mut().sleep(timeout);
        self.shared.end_sleep();
        bump(&self.counters.sleeps, 1);
        // Back to busy polling.
        self.empty_iterations.set(0);
        self.idle_since.set(None);
        slept.map_err(|source| Error::Runtime {
            op: "idle sleep",
            source,
        })
    }
}

/// A reactor on the current thread. `!Send`: it and its tasks stay on this thread.
///
/// [`Runtime`](super::Runtime) runs one per pinned core; tests, benches and single-core
/// applications create one directly.
pub struct Reactor {
    inner: Rc<Inner>,
}

impl Reactor {
    /// A reactor on the current thread, which stays unpinned.
    pub fn new(config: ReactorConfig) -> Result<Reactor> {
        Self::build(None, config)
    }

    /// Pins the current thread to `core`, then creates a reactor on it.
    ///
    /// Fails with [`Error::CoreUnavailable`] (naming the core and the allowed CPUs) if the
    /// core does not exist or is not in this process's affinity mask.
    pub fn pinned(core: usize, config: ReactorConfig) -> Result<Reactor> {
        affinity::pin_current_thread(core)?;
        Self::build(Some(core), config)
    }

    fn build(core: Option<usize>, config: ReactorConfig) -> Result<Reactor> {
        let doorbell = Arc::new(EventFd::new()?);
        let backend = Backend::new(config.backend, config.ring_entries)?;
        let sources =
            Sources::new(backend, Arc::clone(&doorbell)).map_err(|source| Error::Runtime {
                op: "watch reactor doorbell",
                source,
            })?;
        let (tx, rx) = channel::unbounded();
        let shared = Arc::new(Shared::new(core, tx, doorbell));
        let inner = Inner {
            id: shared.id(),
            shared,
            rx,
            config,
            tasks: RefCell::new(Tasks::default()),
            ready: RefCell::new(Vec::with_capacity(16)),
            running: RefCell::new(Vec::with_capacity(16)),
            queue_capacity: Cell::new(16),
            main_ready: Cell::new(false),
            pollers: RefCell::new(Pollers::default()),
            timers: RefCell::new(Timers::default()),
            sources: RefCell::new(sources),
            stop: Cell::new(false),
            empty_iterations: Cell::new(0),
            idle_since: Cell::new(None),
            counters: Counters::default(),
        };
        Ok(Reactor {
            inner: Rc::new(inner),
        })
    }

    /// A `Send` handle for other threads to submit work, wake or stop this reactor.
    pub fn handle(&self) -> CoreHandle {
        CoreHandle::new(Arc::clone(&self.inner.shared))
    }

    /// The core this reactor's thread is pinned to, if it is.
    pub fn core(&self) -> Option<usize> {
        self.inner.shared.core()
    }

    /// The sleep mechanism in use: [`SleepBackend::IoUring`] or [`SleepBackend::Poll`].
    pub fn backend(&self) -> SleepBackend {
        self.inner.sources.borrow().backend().kind()
    }

    /// The reactor's counters.
    pub fn stats(&self) -> ReactorStats {
        let c = &self.inner.counters;
        ReactorStats {
            iterations: c.iterations.get(),
            idle_iterations: c.idle_iterations.get(),
            sleeps: c.sleeps.get(),
            tasks_polled: c.tasks_polled.get(),
            messages: c.messages.get(),
        }
    }

    /// Spawns a (possibly `!Send`) task; it first runs at the next iteration.
    pub fn spawn<F>(&self, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
    {
        self.inner.spawn(future)
    }

    /// Registers a poller, called once per iteration from the next one on.
    pub fn add_poller<P: Poller + 'static>(&self, poller: P) -> PollerId {
        self.inner.pollers.borrow_mut().add(Box::new(poller))
    }

    /// Unregisters a poller (after the current round, if called from a poller).
    pub fn remove_poller(&self, id: PollerId) {
        let removed = self.inner.pollers.borrow_mut().remove(id);
        drop(removed);
    }

    /// Registers `vector` so this reactor wakes from idle sleep when it fires, and returns a
    /// waiter that tasks can await. Unregistered when the waiter is dropped.
    pub fn watch_interrupt(&self, vector: &InterruptVector) -> Result<InterruptWaiter> {
        InterruptWaiter::register(&self.inner, vector)
    }

    /// Runs one iteration without sleeping. Returns whether anything had work.
    pub fn run_once(&self) -> Result<bool> {
        let _enter = Enter::new(&self.inner);
        self.inner.turn(false)
    }

    /// Runs the loop until [`CoreHandle::stop`] or [`stop`](super::stop) is called.
    pub fn run(&self) -> Result<()> {
        let _enter = Enter::new(&self.inner);
        while !self.inner.stop.get() {
            self.inner.turn(true)?;
        }
        self.inner.stop.set(false);
        Ok(())
    }

    /// Runs the loop until `future` completes, and returns its output.
    ///
    /// # Panics
    ///
    /// If a reactor is already running on this thread.
    pub fn block_on<F: Future>(&self, future: F) -> Result<F::Output> {
        let _enter = Enter::new(&self.inner);
        let mut future = pin!(future);
        let state = TaskWaker::new(MAIN_KEY, Arc::clone(&self.inner.shared));
        let waker = Waker::from(Arc::clone(&state));
        let mut cx = Context::from_waker(&waker);
        self.inner.main_ready.set(true);
        loop {
            if self.inner.main_ready.replace(false) {
                state.unschedule();
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    state.finish();
                    return Ok(out);
                }
            }
            self.inner.turn(true)?;
        }
    }
}

impl Drop for Reactor {
    fn drop(&mut self) {
        // Drop the tasks and pollers while the reactor still exists, so their destructors can
        // unregister timers and interrupt watches.
        let tasks = self.inner.tasks.borrow_mut().drain();
        drop(tasks);
        let pollers = self.inner.pollers.borrow_mut().begin();
        drop(pollers);
    }
}

impl fmt::Debug for Reactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reactor")
            .field("core", &self.core())
            .field("backend", &self.backend())
            .field("tasks", &self.inner.tasks.borrow().len())
            .field("stats", &self.stats())
            .finish()
    }
}

/// Runs `future` to completion on a new reactor on the current thread (default config).
pub fn block_on<F: Future>(future: F) -> Result<F::Output> {
    Reactor::new(ReactorConfig::default())?.block_on(future)
}

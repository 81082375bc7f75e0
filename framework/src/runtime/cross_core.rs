//! Talking to a core from elsewhere: [`CoreHandle`] (one reactor), [`Runtime`] (one pinned
//! reactor thread per core) and [`RuntimeHandle`] (all of them, `Send + Clone`).
//!
//! Everything goes through the reactor's crossbeam channel: closures to run, futures to spawn
//! (sent as `Send` factories, since the futures themselves are `!Send`), task wakes from other
//! threads, and stop requests. A sender rings the reactor's doorbell eventfd only when the
//! reactor is asleep (the `sleeping` flag, checked after the send with a `SeqCst` fence that
//! pairs with the reactor's fence between setting the flag and its last look at the channel),
//! so messages to a busy core cost no system call.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{fence, AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;

use crossbeam::channel::{self, Sender};

use super::affinity::{self, format_cpu_list};
use super::config::ReactorConfig;
use super::reactor::{self, Reactor};
use crate::device::EventFd;
use crate::error::{Error, Result};

pub(crate) enum Message {
    /// A task of this reactor was woken from another thread.
    Wake(u64),
    /// Run this on the reactor's thread.
    Run(Box<dyn FnOnce() + Send>),
    /// Return from `Reactor::run`.
    Stop,
}

/// The part of a reactor that other threads hold.
pub(crate) struct Shared {
    id: u64,
    core: Option<usize>,
    label: usize,
    tx: Sender<Message>,
    doorbell: Arc<EventFd>,
    sleeping: AtomicBool,
}

impl Shared {
    pub(crate) fn new(core: Option<usize>, tx: Sender<Message>, doorbell: Arc<EventFd>) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Shared {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            core,
            label: core.or_else(affinity::current_cpu).unwrap_or(0),
            tx,
            doorbell,
            sleeping: AtomicBool::new(false),
        }
    }

    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    pub(crate) fn core(&self) -> Option<usize> {
        self.core
    }

    /// The pinned core, or for an unpinned reactor the CPU it was created on (for messages).
    pub(crate) fn label(&self) -> usize {
        self.label
    }

    pub(crate) fn send(&self, msg: Message) -> Result<()> {
        self.tx
            .send(msg)
            .map_err(|_| Error::RuntimeGone { core: self.label })?;
        // Pairs with the fence in `announce_sleep`: either the reactor sees the message in its
        // last look, or we see it sleeping here and ring.
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::Relaxed) {
            self.ring();
        }
        Ok(())
    }

    /// Wakes the reactor if it is asleep (only the first of several concurrent callers rings).
    pub(crate) fn ring(&self) {
        if self.sleeping.swap(false, Ordering::AcqRel) {
            if let Err(err) = self.doorbell.signal() {
                tracing::warn!(core = self.label, error = %err, "cannot ring reactor doorbell");
            }
        }
    }

    /// Called by the reactor before its last look at its queues ahead of sleeping.
    pub(crate) fn announce_sleep(&self) {
        self.sleeping.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
    }

    pub(crate) fn end_sleep(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
    }

    pub(crate) fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::Relaxed)
    }
}

/// A `Send + Sync` handle to one core's reactor: submit work to it, wake it, stop it.
#[derive(Clone)]
pub struct CoreHandle {
    shared: Arc<Shared>,
}

impl CoreHandle {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        CoreHandle { shared }
    }

    /// The handle of the reactor running on this thread, if any.
    pub fn current() -> Option<CoreHandle> {
        reactor::with_current(|inner| CoreHandle::new(Arc::clone(&inner.shared)))
    }

    /// The core the reactor is pinned to; `None` for a reactor on an unpinned thread.
    pub fn core(&self) -> Option<usize> {
        self.shared.core()
    }

    /// Runs `f` on the reactor's thread, between two loop iterations.
    pub fn run<F>(&self, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        self.shared.send(Message::Run(Box::new(f)))
    }

    /// Spawns the future that `factory` builds, on the reactor's thread.
    ///
    /// The future may be `!Send` (hold queue pairs, `Rc`s): only the factory crosses threads.
    pub fn spawn<F, Fut>(&self, factory: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.run(move || {
            reactor::spawn_local(factory());
        })
    }

    /// Wakes the reactor if it sleeps.
    pub fn wake(&self) {
        self.shared.ring();
    }

    /// Whether the reactor is in (or about to enter) its idle sleep.
    pub fn is_sleeping(&self) -> bool {
        self.shared.is_sleeping()
    }

    /// Makes [`Reactor::run`] return after its current iteration.
    pub fn stop(&self) -> Result<()> {
        self.shared.send(Message::Stop)
    }
}

impl fmt::Debug for CoreHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CoreHandle")
            .field("core", &self.shared.core)
            .field("sleeping", &self.is_sleeping())
            .finish()
    }
}

/// Handles to every core of a [`Runtime`]. `Send + Sync + Clone`.
#[derive(Clone, Debug)]
pub struct RuntimeHandle {
    cores: Arc<[CoreHandle]>,
}

impl RuntimeHandle {
    /// The handle of `core`, or [`Error::CoreUnavailable`] if the runtime does not run it.
    pub fn core(&self, core: usize) -> Result<&CoreHandle> {
        self.cores
            .iter()
            .find(|h| h.core() == Some(core))
            .ok_or_else(|| Error::CoreUnavailable {
                core,
                allowed: format_cpu_list(&self.core_ids()),
            })
    }

    /// The cores of the runtime, in the order given to [`Runtime::start`].
    pub fn core_ids(&self) -> Vec<usize> {
        self.cores.iter().filter_map(CoreHandle::core).collect()
    }

    /// Runs `f` on `core`.
    pub fn spawn_on<F>(&self, core: usize, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        self.core(core)?.run(f)
    }

    /// Spawns the future built by `factory` on `core`. See [`CoreHandle::spawn`].
    pub fn spawn_future_on<F, Fut>(&self, core: usize, factory: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.core(core)?.spawn(factory)
    }
}

struct CoreThread {
    core: usize,
    thread: Option<thread::JoinHandle<Result<()>>>,
}

/// One reactor thread per core, each pinned to its core. Stops and joins them when dropped.
///
/// A panic in a task, poller or closure on a core ends that core's thread: its handles then
/// answer [`Error::RuntimeGone`] and [`shutdown`](Runtime::shutdown) reports the panic.
pub struct Runtime {
    handle: RuntimeHandle,
    threads: Vec<CoreThread>,
}

impl Runtime {
    /// Starts a pinned reactor thread (`userpci-core-N`) on each of `cores`.
    ///
    /// Fails with [`Error::CoreUnavailable`] before starting anything if a core is not in this
    /// process's affinity mask.
    pub fn start(cores: &[usize], config: ReactorConfig) -> Result<Runtime> {
        for &core in cores {
            affinity::check_core(core)?;
        }
        let mut runtime = Runtime {
            handle: RuntimeHandle {
                cores: Arc::from(Vec::new()),
            },
            threads: Vec::new(),
        };
        let mut handles = Vec::with_capacity(cores.len());
        for &core in cores {
            let (init_tx, init_rx) = channel::bounded::<Result<CoreHandle>>(1);
            let config = config.clone();
            let thread = thread::Builder::new()
                .name(format!("userpci-core-{core}"))
                .spawn(move || {
                    let reactor = match Reactor::pinned(core, config) {
                        Ok(reactor) => reactor,
                        Err(err) => {
                            let _ = init_tx.send(Err(err));
                            return Ok(());
                        }
                    };
                    let _ = init_tx.send(Ok(reactor.handle()));
                    reactor.run()
                })
                .map_err(|source| Error::Runtime {
                    op: "spawn core thread",
                    source,
                })?;
            runtime.threads.push(CoreThread {
                core,
                thread: Some(thread),
            });
            let handle = init_rx.recv().map_err(|_| Error::RuntimeGone { core })??;
            handles.push(handle);
            // Keep the handles so far, so a later failure stops these threads on drop.
            runtime.handle.cores = Arc::from(handles.clone());
        }
        Ok(runtime)
    }

    /// A `Send + Clone` handle to every core.
    pub fn handle(&self) -> RuntimeHandle {
        self.handle.clone()
    }

    /// The handle of `core`.
    pub fn core(&self, core: usize) -> Result<&CoreHandle> {
        self.handle.core(core)
    }

    /// Runs `f` on `core`.
    pub fn spawn_on<F>(&self, core: usize, f: F) -> Result<()>
    where
        F: FnOnce() + Send + 'static,
    {
        self.handle.spawn_on(core, f)
    }

    /// Spawns the future built by `factory` on `core`.
    pub fn spawn_future_on<F, Fut>(&self, core: usize, factory: F) -> Result<()>
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + 'static,
    {
        self.handle.spawn_future_on(core, factory)
    }

    /// Stops every core and joins its thread; returns the first reactor error.
    pub fn shutdown(mut self) -> Result<()> {
        self.stop_and_join()
    }

    fn stop_and_join(&mut self) -> Result<()> {
        for handle in self.handle.cores.iter() {
            let _ = handle.stop(); // a core that is gone already is fine
        }
        let mut first = Ok(());
        for t in &mut self.threads {
            let Some(thread) = t.thread.take() else {
                continue;
            };
            let result = match thread.join() {
                Ok(result) => result,
                Err(_) => Err(Error::Runtime {
                    op: "join core thread",
                    source: std::io::Error::other(format!("core {} thread panicked", t.core)),
                }),
            };
            if first.is_ok() {
                first = result;
            }
        }
        first
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if let Err(err) = self.stop_and_join() {
            tracing::error!(error = %err, "userpci runtime shut down with an error");
        }
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("cores", &self.handle.core_ids())
            .finish()
    }
}

//! Many cores: [`Runtime`] (one pinned reactor thread per core) and [`RuntimeHandle`] (all of
//! them, `Send + Clone`), on top of the [`Reactor`] and the [`CoreHandle`] of each core.
//! How a message reaches a core is in `mailbox.rs`.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::thread;

use crossbeam::channel;

use super::affinity::{self, format_cpu_list};
use super::config::ReactorConfig;
use super::core_handle::CoreHandle;
use super::reactor::Reactor;
use crate::error::{Error, Result};

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

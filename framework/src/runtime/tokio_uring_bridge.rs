//! Driving userpci pollers from an application's own tokio-uring runtime.
//!
//! An application that already lives on tokio-uring (say, copying a namespace into a file
//! with tokio-uring's file I/O) runs a [`Bridge`] as one of its tasks instead of a userpci
//! reactor thread. Each round polls every poller, then yields to tokio so the application's
//! tasks and tokio-uring's completions run. After the idle threshold the bridge sleeps until
//! one of its eventfds fires (or `max_sleep` passes), without blocking tokio:
//!
//! - the bridge keeps a small io_uring of its own with a multishot `POLL_ADD` on each eventfd
//!   (and a `TIMEOUT` while sleeping), and registers a *blocking* eventfd as that ring's
//!   completion notifier (`IORING_REGISTER_EVENTFD`);
//! - sleeping is an 8-byte read of that notifier through tokio-uring: the kernel completes the
//!   read as soon as the bridge's ring posts a completion, and tokio wakes the bridge.
//!
//! (tokio-uring reads a non-blocking eventfd with `EAGAIN`, and it has no poll operation of its
//! own, hence the notifier.) If the bridge cannot create its ring, it never sleeps: it polls
//! and yields.
//!
//! The bridge's pollers run inside tokio, so userpci's [`sleep`](super::sleep) and
//! [`wait_interrupt`](super::wait_interrupt) are not available to them: use tokio's.
//!
//! ```no_run
//! use std::rc::Rc;
//! use userpci_framework::runtime::tokio_uring_bridge::{Bridge, BridgeConfig};
//! use userpci_framework::runtime::Slot;
//!
//! tokio_uring::start(async {
//!     let done = Rc::new(Slot::new());
//!     let from_poller = Rc::clone(&done);
//!     let mut bridge = Bridge::new(BridgeConfig::default()).unwrap();
//!     bridge.add_poller(move || {
//!         from_poller.set(()); // e.g. a queue pair's completion poller
//!         true
//!     });
//!     let handle = bridge.handle();
//!     let driver = tokio_uring::spawn(bridge.run());
//!     done.wait().await;
//!     handle.stop();
//!     driver.await.unwrap().unwrap();
//! });
//! ```

use std::fmt;
use std::fs::File;
use std::future::Future;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use super::config::IdlePolicy;
use super::poller::Poller;
use super::sleep::UringSleeper;
use super::sync::yield_now;
use crate::device::{EventFd, InterruptVector};
use crate::error::{Error, Result};

/// How a [`Bridge`] polls and sleeps.
#[derive(Clone, Debug)]
pub struct BridgeConfig {
    /// When to stop polling and sleep. Default: after 256 empty rounds.
    pub idle: IdlePolicy,
    /// Longest sleep, so pollers without an eventfd still run. Default: 10 ms.
    pub max_sleep: Option<Duration>,
}

impl Default for BridgeConfig {
    fn default() -> Self {
        BridgeConfig {
            idle: IdlePolicy::AfterIterations(256),
            max_sleep: Some(Duration::from_millis(10)),
        }
    }
}

/// Counters of a finished [`Bridge::run`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Rounds over the pollers.
    pub rounds: u64,
    /// Idle sleeps.
    pub sleeps: u64,
}

struct Shared {
    stop: AtomicBool,
    sleeping: AtomicBool,
    /// Watched by the bridge: signalled by `stop` and `wake`.
    wake: Arc<EventFd>,
}

/// A `Send + Sync` handle to stop or wake a running bridge.
#[derive(Clone)]
pub struct BridgeHandle {
    shared: Arc<Shared>,
}

impl BridgeHandle {
    /// Makes [`Bridge::run`] return after its current round.
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        self.wake();
    }

    /// Ends the bridge's idle sleep, if it sleeps.
    pub fn wake(&self) {
        if let Err(err) = self.shared.wake.signal() {
            tracing::warn!(error = %err, "cannot wake tokio-uring bridge");
        }
    }

    /// Whether the bridge is in (or about to enter) its idle sleep.
    pub fn is_sleeping(&self) -> bool {
        self.shared.sleeping.load(Ordering::SeqCst)
    }
}

impl fmt::Debug for BridgeHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BridgeHandle")
            .field("sleeping", &self.is_sleeping())
            .finish()
    }
}

/// A set of pollers and the eventfds to sleep on, to run as a tokio-uring task.
pub struct Bridge {
    pollers: Vec<Box<dyn Poller>>,
    fds: Vec<Arc<EventFd>>,
    config: BridgeConfig,
    shared: Arc<Shared>,
}

impl Bridge {
    /// A bridge with no pollers yet.
    pub fn new(config: BridgeConfig) -> Result<Bridge> {
        let wake = Arc::new(EventFd::new()?);
        Ok(Bridge {
            pollers: Vec::new(),
            fds: vec![Arc::clone(&wake)],
            config,
            shared: Arc::new(Shared {
                stop: AtomicBool::new(false),
                sleeping: AtomicBool::new(false),
                wake,
            }),
        })
    }

    /// Adds a poller, called once per round.
    pub fn add_poller<P: Poller + 'static>(&mut self, poller: P) -> &mut Self {
        self.pollers.push(Box::new(poller));
        self
    }

    /// Wakes the bridge from idle sleep when `vector` fires. Its poller takes the count.
    pub fn wake_on(&mut self, vector: &InterruptVector) -> &mut Self {
        self.wake_on_eventfd(Arc::clone(vector.event()))
    }

    /// Wakes the bridge from idle sleep when `eventfd` is signalled.
    pub fn wake_on_eventfd(&mut self, eventfd: Arc<EventFd>) -> &mut Self {
        if !self.fds.iter().any(|f| Arc::ptr_eq(f, &eventfd)) {
            self.fds.push(eventfd);
        }
        self
    }

    /// A handle to stop or wake the bridge from anywhere.
    pub fn handle(&self) -> BridgeHandle {
        BridgeHandle {
            shared: Arc::clone(&self.shared),
        }
    }

    /// Polls until [`BridgeHandle::stop`]. Must run inside a tokio-uring runtime
    /// (`tokio_uring::start`, `tokio_uring::spawn`).
    pub async fn run(mut self) -> Result<BridgeStats> {
        let mut idle = match UringIdle::new(&self.fds) {
            Ok(idle) => Some(idle),
            Err(err) => {
                static LOGGED: Once = Once::new();
                LOGGED.call_once(|| {
                    tracing::info!(
                        error = %err,
                        "tokio-uring bridge cannot create its io_uring; it polls without sleeping"
                    );
                });
                None
            }
        };
        let mut stats = BridgeStats::default();
        let mut empty_rounds = 0u32;
        let mut idle_since: Option<Instant> = None;
        while !self.shared.stop.load(Ordering::SeqCst) {
            let mut work = false;
            for poller in &mut self.pollers {
                work |= poller.poll();
            }
            stats.rounds += 1;
            if let Some(idle) = &mut idle {
                work |= idle.check();
            }
            if work {
                empty_rounds = 0;
                idle_since = None;
            } else {
                empty_rounds = empty_rounds.saturating_add(1);
            }
            let sleepy = !work
                && match self.config.idle {
                    IdlePolicy::BusyPoll => false,
                    IdlePolicy::AfterIterations(n) => empty_rounds > n,
                    IdlePolicy::AfterDuration(d) => {
                        let now = Instant::now();
                        now.duration_since(*idle_since.get_or_insert(now)) >= d
                    }
                };
            match &mut idle {
                Some(idle) if sleepy => {
                    self.shared.sleeping.store(true, Ordering::SeqCst);
                    let slept = if self.shared.stop.load(Ordering::SeqCst) {
                        Ok(())
                    } else {
                        idle.sleep(self.config.max_sleep).await
                    };
                    self.shared.sleeping.store(false, Ordering::SeqCst);
                    slept.map_err(|source| Error::Runtime {
                        op: "tokio-uring bridge sleep",
                        source,
                    })?;
                    let _ = self.shared.wake.take();
                    stats.sleeps += 1;
                    empty_rounds = 0;
                    idle_since = None;
                }
                _ => yield_now().await,
            }
        }
        Ok(stats)
    }
}

impl fmt::Debug for Bridge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bridge")
            .field("pollers", &self.pollers.len())
            .field("eventfds", &self.fds.len())
            .field("config", &self.config)
            .finish()
    }
}

/// Polls `pollers` with the default [`BridgeConfig`], sleeping on `wake_on` when idle, until
/// the returned future is dropped. Run it with `tokio_uring::spawn`.
pub fn drive_pollers(
    pollers: Vec<Box<dyn Poller>>,
    wake_on: Vec<Arc<EventFd>>,
) -> impl Future<Output = Result<BridgeStats>> {
    let bridge = Bridge::new(BridgeConfig::default()).map(|mut bridge| {
        bridge.pollers = pollers;
        for fd in wake_on {
            bridge.wake_on_eventfd(fd);
        }
        bridge
    });
    async move { bridge?.run().await }
}

/// The bridge's own ring and the notifier tokio-uring waits on.
struct UringIdle {
    sleeper: UringSleeper,
    notifier: tokio_uring::fs::File,
    /// A second fd of the notifier, to end a read still in flight when the bridge is dropped.
    kick: File,
    buf: Option<Vec<u8>>,
}

impl UringIdle {
    fn new(fds: &[Arc<EventFd>]) -> io::Result<UringIdle> {
        let mut sleeper = UringSleeper::new(16)?;
        for (index, fd) in fds.iter().enumerate() {
            let index = u32::try_from(index).map_err(io::Error::other)?;
            sleeper.add(index, 0, fd.as_raw_fd())?;
        }
        sleeper.submit()?;
        // Blocking on purpose: tokio-uring's read must wait for a count, not fail with EAGAIN.
        // SAFETY: eventfd takes no pointers; a negative return is an error, checked below.
        let raw = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let notifier = unsafe { OwnedFd::from_raw_fd(raw) };
        sleeper.register_eventfd(notifier.as_raw_fd())?;
        let kick = File::from(notifier.try_clone()?);
        Ok(UringIdle {
            sleeper,
            notifier: tokio_uring::fs::File::from_std(File::from(notifier)),
            kick,
            buf: Some(vec![0; 8]),
        })
    }

    /// Reaps the bridge ring without blocking. Returns whether an eventfd fired.
    fn check(&mut self) -> bool {
        let mut fired = false;
        self.sleeper.reap(&mut |_, _| fired = true);
        fired
    }

    async fn sleep(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        self.sleeper.prepare_sleep(timeout)?;
        self.sleeper.submit()?;
        let buf = self.buf.take().unwrap_or_else(|| vec![0; 8]);
        let (read, buf) = self.notifier.read_at(buf, 0).await;
        self.buf = Some(buf);
        read?;
        self.sleeper.reap(&mut |_, _| {});
        Ok(())
    }
}

impl Drop for UringIdle {
    fn drop(&mut self) {
        // If the bridge is dropped mid-sleep, tokio-uring still owns a read of the notifier,
        // which nothing would complete once our ring is gone (tokio-uring would only cancel it
        // at shutdown): complete it now.
        let _ = (&self.kick).write(&1u64.to_ne_bytes());
    }
}

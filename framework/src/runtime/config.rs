//! How a reactor runs ([`ReactorConfig`], [`IdlePolicy`]) and what it counts
//! ([`ReactorStats`]).

use std::time::Duration;

use super::sleep::SleepBackend;

/// When an idle reactor stops polling and sleeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdlePolicy {
    /// Never sleep: poll continuously (lowest latency, one CPU at 100 %).
    BusyPoll,
    /// Sleep after this many consecutive iterations that found no work (0: as soon as one
    /// iteration finds none, i.e. interrupt-driven).
    AfterIterations(u32),
    /// Sleep once no work has been found for this long.
    AfterDuration(Duration),
}

/// How a reactor runs.
#[derive(Clone, Debug)]
pub struct ReactorConfig {
    /// When to stop polling and sleep. Default: after 1,000 empty iterations (tens of µs).
    pub idle: IdlePolicy,
    /// Longest idle sleep when no timer is due earlier, so pollers without an interrupt
    /// (link watch) still run. `None`: sleep until an eventfd, a timer or a message.
    /// Default: 10 ms.
    pub max_sleep: Option<Duration>,
    /// The sleep mechanism. Default: io_uring, falling back to `ppoll`.
    pub backend: SleepBackend,
    /// Submission-queue size of the reactor's io_uring. Default: 64.
    pub ring_entries: u32,
    /// Most cross-core messages handled per iteration, so a flood cannot starve the pollers.
    /// Default: 256.
    pub message_budget: usize,
}

impl Default for ReactorConfig {
    fn default() -> Self {
        ReactorConfig {
            idle: IdlePolicy::AfterIterations(1000),
            max_sleep: Some(Duration::from_millis(10)),
            backend: SleepBackend::Auto,
            ring_entries: 64,
            message_budget: 256,
        }
    }
}

/// Counters of a reactor since it was created.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReactorStats {
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations in which no task, poller, timer, message or eventfd had anything to do.
    pub idle_iterations: u64,
    /// Idle sleeps entered.
    pub sleeps: u64,
    /// Task polls.
    pub tasks_polled: u64,
    /// Cross-core messages handled.
    pub messages: u64,
}

//! Clocks and deadlines.
//!
//! Drivers never read the system time directly: they ask their function's [`Clock`]. On real
//! hardware that is the monotonic clock; on the simulated bus it is a clock the test controls,
//! where sleeping advances virtual time, so a 7.5 s CAP.TO timeout is tested in microseconds.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::pci::PciAddress;

/// A monotonic clock.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Time since the clock's epoch.
    fn now(&self) -> Duration;
    /// Lets `duration` pass: a real sleep, or an advance of virtual time.
    fn sleep(&self, duration: Duration);
}

/// The host's monotonic clock.
#[derive(Debug)]
pub struct SystemClock {
    epoch: Instant,
}

impl SystemClock {
    /// A clock whose epoch is now.
    pub fn new() -> Self {
        SystemClock {
            epoch: Instant::now(),
        }
    }

    /// A shared handle to a new system clock.
    pub fn shared() -> Arc<dyn Clock> {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    fn now(&self) -> Duration {
        self.epoch.elapsed()
    }

    fn sleep(&self, duration: Duration) {
        std::thread::sleep(duration);
    }
}

/// Exponential backoff for register polls: short waits first, capped.
#[derive(Clone, Copy, Debug)]
pub struct Backoff {
    next: Duration,
    max: Duration,
}

impl Backoff {
    /// Starts at `first`, doubling up to `max`.
    pub fn new(first: Duration, max: Duration) -> Self {
        Backoff { next: first, max }
    }

    /// The next wait.
    pub fn step(&mut self) -> Duration {
        let wait = self.next;
        self.next = (self.next * 2).min(self.max);
        wait
    }
}

impl Default for Backoff {
    /// 10 µs doubling to 10 ms: fast for registers that settle at once, cheap for slow resets.
    fn default() -> Self {
        Backoff::new(Duration::from_micros(10), Duration::from_millis(10))
    }
}

/// Polls `check` until it returns `Some`, or fails with [`Error::Timeout`] after `timeout`.
///
/// `check` runs at least once, and once more after the deadline has passed, so a condition
/// that became true during the last sleep is not reported as a timeout.
pub fn poll_until<T>(
    clock: &dyn Clock,
    device: PciAddress,
    what: &'static str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<Option<T>>,
) -> Result<T> {
    let start = clock.now();
    let mut backoff = Backoff::default();
    loop {
        if let Some(value) = check()? {
            return Ok(value);
        }
        let waited = clock.now().saturating_sub(start);
        if waited >= timeout {
            return Err(Error::Timeout {
                device,
                what,
                waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
            });
        }
        clock.sleep(backoff.step().min(timeout - waited));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A clock whose sleep only advances a counter.
    #[derive(Debug, Default)]
    struct FakeClock(Mutex<Duration>);
    impl Clock for FakeClock {
        fn now(&self) -> Duration {
            *self.0.lock().unwrap()
        }
        fn sleep(&self, d: Duration) {
            *self.0.lock().unwrap() += d;
        }
    }

    fn addr() -> PciAddress {
        "01:00.0".parse().unwrap()
    }

    #[test]
    fn times_out_at_the_deadline_without_real_sleeping() {
        let clock = FakeClock::default();
        let err = poll_until::<()>(
            &clock,
            addr(),
            "CSTS.RDY=1",
            Duration::from_millis(7500),
            || Ok(None),
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::Timeout {
                    waited_ms: 7500,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(clock.now(), Duration::from_millis(7500));
        assert!(err.to_string().contains("0000:01:00.0"), "{err}");
        assert!(err.to_string().contains("CSTS.RDY=1"), "{err}");
    }

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let clock = FakeClock::default();
        let mut calls = 0;
        let value = poll_until(&clock, addr(), "x", Duration::from_secs(1), || {
            calls += 1;
            Ok((calls == 3).then_some(42))
        })
        .unwrap();
        assert_eq!(value, 42);
        assert_eq!(
            clock.now(),
            Duration::from_micros(30),
            "10 µs then 20 µs of backoff"
        );
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let mut b = Backoff::new(Duration::from_millis(4), Duration::from_millis(10));
        let steps: Vec<u128> = (0..4).map(|_| b.step().as_millis()).collect();
        assert_eq!(steps, vec![4, 8, 10, 10]);
    }
}

//! Virtual time for the simulated bus.
//!
//! Tests and drivers see the same [`SimClock`]: reading it never moves it; `sleep` (what a
//! driver's register poll does between tries) advances it, firing the device models' timers
//! that fall due on the way, in time order. Nothing waits for real time, so timeouts of seconds
//! are tested in microseconds and every run takes the same path.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use crate::time::Clock;

/// Something that owns timers: the simulated bus, which routes them to device models.
pub(crate) trait TimerTarget: Send + Sync {
    /// Called with no clock lock held when timer `(function, token)` falls due.
    fn fire(&self, function: usize, token: u64);
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Timer {
    at: Duration,
    /// Insertion order: timers due at the same instant fire in the order they were set.
    sequence: u64,
    function: usize,
    token: u64,
}

#[derive(Default)]
struct State {
    now: Duration,
    sequence: u64,
    timers: BinaryHeap<Reverse<Timer>>,
}

/// The controlled clock of a simulated bus.
pub struct SimClock {
    state: Mutex<State>,
    target: Mutex<Option<Weak<dyn TimerTarget>>>,
}

impl fmt::Debug for SimClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("SimClock")
            .field("now", &state.now)
            .field("pending_timers", &state.timers.len())
            .finish()
    }
}

impl SimClock {
    /// A clock at time zero with no timers.
    pub fn new() -> Arc<Self> {
        Arc::new(SimClock {
            state: Mutex::new(State::default()),
            target: Mutex::new(None),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("sim clock lock poisoned")
    }

    pub(crate) fn set_target(&self, target: Weak<dyn TimerTarget>) {
        *self.target.lock().expect("sim clock lock poisoned") = Some(target);
    }

    /// Sets a timer `after` from now for `function`'s model.
    pub(crate) fn schedule(&self, after: Duration, function: usize, token: u64) {
        let mut state = self.lock();
        let at = state.now + after;
        state.sequence += 1;
        let sequence = state.sequence;
        state.timers.push(Reverse(Timer {
            at,
            sequence,
            function,
            token,
        }));
    }

    /// Time of the earliest pending timer.
    pub fn next_timer(&self) -> Option<Duration> {
        self.lock().timers.peek().map(|Reverse(t)| t.at)
    }

    /// Advances time by `by`, firing every timer that falls due, in order.
    pub fn advance(&self, by: Duration) {
        let end = self.lock().now + by;
        self.advance_to(end);
    }

    /// Advances time to `end` (no-op if it is in the past), firing due timers in order.
    pub fn advance_to(&self, end: Duration) {
        loop {
            let due = {
                let mut state = self.lock();
                match state.timers.peek() {
                    Some(Reverse(t)) if t.at <= end => {
                        let Reverse(timer) = state.timers.pop().expect("peeked");
                        state.now = state.now.max(timer.at);
                        Some(timer)
                    }
                    _ => {
                        state.now = state.now.max(end);
                        None
                    }
                }
            };
            let Some(timer) = due else { return };
            let target = self
                .target
                .lock()
                .expect("sim clock lock poisoned")
                .as_ref()
                .and_then(Weak::upgrade);
            if let Some(target) = target {
                target.fire(timer.function, timer.token);
            }
        }
    }

    /// Drops every pending timer of `function` (its device was reset).
    pub(crate) fn cancel_function(&self, function: usize) {
        let mut state = self.lock();
        let kept: Vec<_> = state
            .timers
            .drain()
            .filter(|Reverse(t)| t.function != function)
            .collect();
        state.timers.extend(kept);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Duration {
        self.lock().now
    }

    fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Recorder(Mutex<Vec<(usize, u64)>>);
    impl TimerTarget for Recorder {
        fn fire(&self, function: usize, token: u64) {
            self.0.lock().unwrap().push((function, token));
        }
    }

    #[test]
    fn fires_due_timers_in_time_then_insertion_order() {
        let clock = SimClock::new();
        let recorder = Arc::new(Recorder::default());
        let weak: Weak<dyn TimerTarget> =
            Arc::downgrade(&(recorder.clone() as Arc<dyn TimerTarget>));
        clock.set_target(weak);
        clock.schedule(Duration::from_millis(5), 0, 1);
        clock.schedule(Duration::from_millis(2), 1, 2);
        clock.schedule(Duration::from_millis(2), 0, 3);
        clock.schedule(Duration::from_millis(9), 0, 4);
        clock.advance(Duration::from_millis(5));
        assert_eq!(*recorder.0.lock().unwrap(), vec![(1, 2), (0, 3), (0, 1)]);
        assert_eq!(clock.now(), Duration::from_millis(5));
        assert_eq!(clock.next_timer(), Some(Duration::from_millis(9)));
        clock.cancel_function(0);
        assert_eq!(clock.next_timer(), None);
    }

    #[test]
    fn sleeping_moves_time_and_reading_does_not() {
        let clock = SimClock::new();
        assert_eq!(clock.now(), Duration::ZERO);
        assert_eq!(clock.now(), Duration::ZERO);
        clock.sleep(Duration::from_secs(7));
        assert_eq!(clock.now(), Duration::from_secs(7));
    }
}

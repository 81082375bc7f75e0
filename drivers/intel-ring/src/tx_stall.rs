//! Hung TX rings: descriptors pending while the device's head (`TDH`) stops moving. The rule
//! as a small state machine over clock readings and the ring's cleaned counter, apart from
//! the ring so it can be tested on its own (a leaf: no register access of its own).
//!
//! # The rule
//! A *window* opens when the ring is looked at with descriptors in flight and nothing cleaned
//! since the last look; cleaning anything, or having nothing in flight, closes it. When a
//! window has lasted `timeout`, the head is read once (the only register read, so a stalled
//! ring costs one read per `timeout`):
//! - the device may not send (link down: the 82599 stops transmit DMA), or the read failed:
//!   [`HeadReading::Excused`], the watch starts over;
//! - a head different from the one read at the end of the previous window, or the first one:
//!   the device moved (or may have), a new window opens;
//! - the same head as at the end of the previous window: the head did not move over a whole
//!   window of at least `timeout` with descriptors pending and none cleaned: **hung**.
//!
//! So a hang is reported between one and two `timeout`s after the head stopped (Linux's
//! `ixgbe_check_tx_hang` likewise wants two failed checks before it resets, to avoid races).
//! A head equal to the tail counts too: the device processed every descriptor, yet none was
//! cleaned over a whole window although the idle poll asked for held-back write-backs, so
//! they were lost and the ring would never drain (as Linux, which judges by its own clean
//! and use indices, not by the head register).

use std::time::Duration;

/// The device's head as read when a window ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HeadReading {
    /// The device holds descriptors it has not processed; its head register reads this.
    Pending(u32),
    /// Nothing to blame the device for: it may not send now (link down), or the register
    /// did not give a usable value.
    Excused,
}

/// What a look at a ring found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StallCheck {
    /// Progress, nothing pending, no watch configured, or a window still running.
    Fine,
    /// The head stayed at `head` over a window of at least the timeout, descriptors pending
    /// and none cleaned; `stalled` is the time since the first window of the stall opened.
    Hung {
        /// The head register's value at both ends of the window.
        head: u32,
        /// Since the stall was first seen.
        stalled: Duration,
    },
}

/// The watch of one ring. `timeout` `None`: never reports a hang.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StallWatch {
    timeout: Option<Duration>,
    /// When the current window opened (`None`: no window).
    window: Option<Duration>,
    /// When the first window of this stall opened.
    stall_start: Duration,
    /// The cleaned counter at the last look.
    cleaned: u64,
    /// The head read at the end of the previous window.
    head: Option<u32>,
}

impl StallWatch {
    /// A watch reporting hangs after `timeout` (none with `None`).
    pub const fn new(timeout: Option<Duration>) -> Self {
        StallWatch {
            timeout,
            window: None,
            stall_start: Duration::ZERO,
            cleaned: 0,
            head: None,
        }
    }

    /// The timeout.
    pub const fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Forgets the stall in progress (after the ring was emptied by a reset).
    pub fn restart(&mut self) {
        *self = StallWatch {
            cleaned: self.cleaned,
            ..StallWatch::new(self.timeout)
        };
    }

    /// One look at time `now`: the ring's cleaned counter and its descriptors in flight;
    /// `read_head` is called only when a window ends (see the module documentation).
    /// After a hang is reported the watch starts over.
    pub fn observe(
        &mut self,
        now: Duration,
        cleaned: u64,
        in_flight: usize,
        read_head: impl FnOnce() -> HeadReading,
    ) -> StallCheck {
        let Some(timeout) = self.timeout else {
            return StallCheck::Fine;
        };
        if in_flight == 0 || cleaned != self.cleaned {
            self.cleaned = cleaned;
            self.head = None;
            self.window = None;
            return StallCheck::Fine;
        }
        let Some(opened) = self.window else {
            self.window = Some(now);
            self.stall_start = now;
            return StallCheck::Fine;
        };
        if now.saturating_sub(opened) < timeout {
            return StallCheck::Fine;
        }
        self.window = Some(now);
        match read_head() {
            HeadReading::Excused => {
                self.head = None;
                self.stall_start = now;
                StallCheck::Fine
            }
            HeadReading::Pending(head) if self.head == Some(head) => {
                let stalled = now.saturating_sub(self.stall_start);
                self.restart();
                StallCheck::Hung { head, stalled }
            }
            HeadReading::Pending(head) => {
                self.head = Some(head);
                StallCheck::Fine
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    /// Looks every millisecond for `ms` milliseconds with `in_flight` pending and the cleaned
    /// counter at `cleaned`, the head reading `head`; returns the first hang (time, check)
    /// and the number of head reads.
    fn run(
        watch: &mut StallWatch,
        from_ms: u32,
        ms: u32,
        cleaned: u64,
        in_flight: usize,
        head: HeadReading,
    ) -> (Option<(u32, StallCheck)>, u32) {
        let mut reads = 0;
        for t in from_ms..from_ms + ms {
            let check = watch.observe(MS * t, cleaned, in_flight, || {
                reads += 1;
                head
            });
            if check != StallCheck::Fine {
                return (Some((t, check)), reads);
            }
        }
        (None, reads)
    }

    #[test]
    fn a_head_that_stops_is_reported_after_two_windows_with_one_read_each() {
        let mut watch = StallWatch::new(Some(MS * 10));
        let (hang, reads) = run(&mut watch, 0, 100, 0, 3, HeadReading::Pending(7));
        let (at, check) = hang.expect("hung");
        assert_eq!(
            at, 20,
            "window 0..10 reads the head, window 10..20 confirms it"
        );
        assert_eq!(
            check,
            StallCheck::Hung {
                head: 7,
                stalled: MS * 20
            }
        );
        assert_eq!(reads, 2, "one register read per window");
    }

    #[test]
    fn a_moving_head_is_not_a_hang() {
        let mut watch = StallWatch::new(Some(MS * 10));
        let mut head = 0;
        for t in 0..200u32 {
            let check = watch.observe(MS * t, 0, 5, || {
                head += 1;
                HeadReading::Pending(head)
            });
            assert_eq!(check, StallCheck::Fine, "at {t} ms");
        }
        assert!(head >= 10, "the head was read once per window");
    }

    #[test]
    fn cleaning_or_an_empty_ring_closes_the_window() {
        let mut watch = StallWatch::new(Some(MS * 10));
        let mut reads = 0;
        for t in 0..100u32 {
            // Something is cleaned every 5 ms.
            let check = watch.observe(MS * t, u64::from(t / 5), 3, || {
                reads += 1;
                HeadReading::Pending(1)
            });
            assert_eq!(check, StallCheck::Fine);
        }
        assert_eq!(reads, 0, "no window lasted the timeout");
        let (hang, reads) = run(&mut watch, 100, 100, 0, 0, HeadReading::Pending(1));
        assert_eq!(
            (hang, reads),
            (None, 0),
            "nothing in flight: nothing to watch"
        );
    }

    #[test]
    fn an_excused_device_is_never_hung() {
        let mut watch = StallWatch::new(Some(MS * 10));
        let (hang, reads) = run(&mut watch, 0, 200, 0, 4, HeadReading::Excused);
        assert_eq!(hang, None);
        assert!(reads >= 15, "still looked once per window: {reads}");
    }

    #[test]
    fn without_a_timeout_nothing_is_read_or_reported() {
        let mut watch = StallWatch::new(None);
        let (hang, reads) = run(&mut watch, 0, 1000, 0, 9, HeadReading::Pending(3));
        assert_eq!((hang, reads), (None, 0));
    }

    #[test]
    fn after_a_hang_the_watch_starts_over() {
        let mut watch = StallWatch::new(Some(MS * 10));
        let (first, _) = run(&mut watch, 0, 100, 0, 2, HeadReading::Pending(4));
        assert_eq!(first.map(|(t, _)| t), Some(20));
        let (second, _) = run(&mut watch, 21, 100, 0, 2, HeadReading::Pending(4));
        assert_eq!(second.map(|(t, _)| t), Some(41), "a full new stall");
    }
}

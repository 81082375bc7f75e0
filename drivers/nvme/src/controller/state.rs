//! The small state a queue pair shares with its controller, so that a reset can stop every
//! queue without a lock on the data path.
//!
//! One `AtomicU32` per queue pair holds its [`QpairState`] (low byte) and a `BUSY` bit. The
//! queue pair sets `BUSY` with one read-modify-write at the start of every submit and poll,
//! and looks at the state it got back: if the queue is not enabled it clears `BUSY` and
//! touches nothing. The controller changes the state with a read-modify-write on the same
//! word, then waits for `BUSY` to clear. Both sides operate on one location, so their updates
//! are totally ordered: either the queue pair's `fetch_or` came first (the controller then
//! sees `BUSY` and waits for the critical section to end), or the state change came first (the
//! queue pair sees it and stays out). No fence beyond acquire/release is needed.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};

/// What a queue pair may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum QpairState {
    /// Normal operation.
    Enabled = 0,
    /// Stopped for a controller reset: no doorbell, no queue memory access.
    Disabled = 1,
    /// The controller was reset and this pair's queues recreated: on its next call the queue
    /// pair resets its indices and re-issues what was in flight.
    NeedsReconnect = 2,
    /// The controller could not be brought back (or this pair's queues could not be
    /// recreated): in-flight commands fail, new ones are refused.
    Failed = 3,
    /// The device is gone (surprise removal).
    Gone = 4,
    /// The controller was shut down (`CC.SHN`): its queues are deleted, new work is refused.
    ShutDown = 5,
}

impl QpairState {
    fn from_bits(bits: u32) -> Self {
        match bits & STATE_MASK {
            0 => Self::Enabled,
            1 => Self::Disabled,
            2 => Self::NeedsReconnect,
            3 => Self::Failed,
            5 => Self::ShutDown,
            _ => Self::Gone,
        }
    }
}

const STATE_MASK: u32 = 0xff;
const BUSY: u32 = 1 << 8;
/// With `Failed`: the controller was disabled (`CSTS.RDY` 0) by the reset that failed this
/// pair, and its queues were not recreated, so nothing it held can be fetched or
/// transferred any more: its buffers can go back to the caller.
const RELEASED: u32 = 1 << 9;

/// The shared word of one queue pair.
#[derive(Debug)]
pub(crate) struct QpairShared {
    word: AtomicU32,
}

impl QpairShared {
    pub(crate) fn new() -> Self {
        QpairShared {
            word: AtomicU32::new(QpairState::Enabled as u32),
        }
    }

    /// Enters the critical section if the queue may run (`Enabled` or `NeedsReconnect`);
    /// otherwise returns the state and stays out.
    #[inline]
    pub(crate) fn enter(&self) -> Result<BusyGuard<'_>, QpairState> {
        // Acquire: what the controller did before publishing `NeedsReconnect` (queues
        // recreated, completion memory zeroed) is visible inside the critical section.
        let prev = self.word.fetch_or(BUSY, Ordering::AcqRel);
        debug_assert_eq!(prev & BUSY, 0, "queue pair critical sections do not nest");
        match QpairState::from_bits(prev) {
            state @ (QpairState::Enabled | QpairState::NeedsReconnect) => Ok(BusyGuard {
                shared: self,
                state,
            }),
            state => {
                self.word.fetch_and(!BUSY, Ordering::Release);
                Err(state)
            }
        }
    }

    /// The current state (advisory: it may change right after).
    pub(crate) fn state(&self) -> QpairState {
        QpairState::from_bits(self.word.load(Ordering::Acquire))
    }

    /// Sets the state, keeping `BUSY`.
    pub(crate) fn set(&self, state: QpairState) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some((w & !(STATE_MASK | RELEASED)) | state as u32)
            });
    }

    /// Sets `Failed` for a pair whose queues a reset could not recreate after the
    /// controller was disabled: the controller dropped its commands (see `RELEASED`).
    pub(crate) fn fail_released(&self) {
        let _ = self
            .word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                Some((w & !STATE_MASK) | QpairState::Failed as u32 | RELEASED)
            });
    }

    /// True when the pair failed with its commands dropped by the controller.
    pub(crate) fn released(&self) -> bool {
        self.word.load(Ordering::Acquire) & RELEASED != 0
    }

    /// Sets `to` if the state is `from`; returns whether it did.
    pub(crate) fn transition(&self, from: QpairState, to: QpairState) -> bool {
        self.word
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |w| {
                (QpairState::from_bits(w) == from).then_some((w & !STATE_MASK) | to as u32)
            })
            .is_ok()
    }

    /// Waits until no critical section is running. Critical sections are short and never
    /// block, so this spins, yielding the CPU after a while.
    pub(crate) fn wait_idle(&self) {
        let mut spins = 0u32;
        while self.word.load(Ordering::Acquire) & BUSY != 0 {
            spins += 1;
            if spins < 128 {
                std::hint::spin_loop();
            } else {
                std::thread::yield_now();
            }
        }
    }
}

/// Proof of being inside the critical section; leaving it (drop, also on unwind) clears
/// `BUSY`.
#[derive(Debug)]
pub(crate) struct BusyGuard<'a> {
    shared: &'a QpairShared,
    state: QpairState,
}

impl BusyGuard<'_> {
    /// The state seen on entry (`Enabled` or `NeedsReconnect`).
    pub(crate) fn state(&self) -> QpairState {
        self.state
    }

    /// Completes a reconnect: `NeedsReconnect` becomes `Enabled`, unless a new reset changed
    /// the state meanwhile.
    pub(crate) fn reconnected(&mut self) {
        if self
            .shared
            .transition(QpairState::NeedsReconnect, QpairState::Enabled)
        {
            self.state = QpairState::Enabled;
        }
    }
}

impl Drop for BusyGuard<'_> {
    fn drop(&mut self) {
        // Release: every queue access of the critical section happens before a controller
        // that sees `BUSY` clear goes on with the reset.
        self.shared.word.fetch_and(!BUSY, Ordering::Release);
    }
}

/// The controller's own state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum ControllerState {
    /// Enabled and serving I/O.
    Enabled = 0,
    /// Quiesced or being reset.
    Resetting = 1,
    /// A reset failed: out of service.
    Failed = 2,
    /// The device is gone.
    Gone = 3,
    /// Shut down on request or on drop (`CC.SHN` = 01b, then disabled).
    ShutDown = 4,
}

/// An atomic [`ControllerState`].
#[derive(Debug)]
pub(crate) struct AtomicControllerState(AtomicU8);

impl AtomicControllerState {
    pub(crate) fn new(state: ControllerState) -> Self {
        AtomicControllerState(AtomicU8::new(state as u8))
    }

    pub(crate) fn get(&self) -> ControllerState {
        match self.0.load(Ordering::Acquire) {
            0 => ControllerState::Enabled,
            1 => ControllerState::Resetting,
            2 => ControllerState::Failed,
            4 => ControllerState::ShutDown,
            _ => ControllerState::Gone,
        }
    }

    pub(crate) fn set(&self, state: ControllerState) {
        self.0.store(state as u8, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn released_goes_with_failed_until_the_next_state() {
        let shared = QpairShared::new();
        shared.set(QpairState::Failed);
        assert!(!shared.released());
        shared.fail_released();
        assert_eq!(shared.state(), QpairState::Failed);
        assert!(shared.released());
        assert!(shared.enter().is_err());
        shared.set(QpairState::NeedsReconnect);
        assert!(!shared.released());
    }

    #[test]
    fn enter_refuses_a_disabled_queue_and_leaves_it_idle() {
        let shared = QpairShared::new();
        {
            let guard = shared.enter().unwrap();
            assert_eq!(guard.state(), QpairState::Enabled);
        }
        shared.set(QpairState::Disabled);
        assert_eq!(shared.enter().unwrap_err(), QpairState::Disabled);
        shared.wait_idle();
        shared.set(QpairState::NeedsReconnect);
        let mut guard = shared.enter().unwrap();
        assert_eq!(guard.state(), QpairState::NeedsReconnect);
        guard.reconnected();
        assert_eq!(guard.state(), QpairState::Enabled);
        drop(guard);
        assert_eq!(shared.state(), QpairState::Enabled);
        assert!(!shared.transition(QpairState::NeedsReconnect, QpairState::Enabled));
    }

    #[test]
    fn the_controller_waits_for_a_running_critical_section() {
        let shared = Arc::new(QpairShared::new());
        let guard = shared.enter().unwrap();
        let other = Arc::clone(&shared);
        let waiter = std::thread::spawn(move || {
            other.set(QpairState::Disabled);
            other.wait_idle();
            other.state()
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        assert!(
            !waiter.is_finished(),
            "the reset waits for the busy queue pair"
        );
        drop(guard);
        assert_eq!(waiter.join().unwrap(), QpairState::Disabled);
        assert!(shared.enter().is_err());
    }
}

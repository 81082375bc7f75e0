//! The gate between the data path and coordinated resets, and what the reset participant
//! ([`crate::IgbParticipant`]) records. A leaf: the queues, the device handle and the
//! participant all use it, it uses none of them.

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

const RUNNING: u8 = 0;
const STOPPED: u8 = 1;
const FAILED: u8 = 2;

/// Where a device stands with respect to coordinated resets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResetState {
    /// Serving I/O.
    Running,
    /// Quiesced or recovering: the data path does nothing.
    Stopped,
    /// A reset failed for this device: the data path does nothing, for good.
    Failed(String),
}

/// What the participant did so far, readable through [`crate::IgbDevice::reset_info`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResetInfo {
    /// Quiesces begun.
    pub quiesces: u64,
    /// Recoveries completed (link back up, gate open).
    pub recoveries: u64,
    /// From `begin_recover` to the link being up, in the last recovery.
    pub last_link_up: Option<Duration>,
    /// The link budget of the last recovery.
    pub link_budget: Option<Duration>,
    /// Why the participant was abandoned, if it was.
    pub failed: Option<String>,
}

/// One per device, in the shared state.
#[derive(Debug)]
pub(crate) struct ResetGate {
    state: AtomicU8,
    /// Cores inside the data path.
    active: AtomicUsize,
    /// Bumped by every completed recovery; queue handles compare it with their own.
    generation: AtomicU64,
    /// `RCTL.UPE | RCTL.MPE` as last set: restored by a recovery.
    filter_bits: AtomicU32,
    info: Mutex<ResetInfo>,
}

impl ResetGate {
    pub(crate) fn new(filter_bits: u32) -> Self {
        ResetGate {
            state: AtomicU8::new(RUNNING),
            active: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            filter_bits: AtomicU32::new(filter_bits),
            info: Mutex::new(ResetInfo::default()),
        }
    }

    /// Enters the data path: the generation to be at, or `None` while the device is being
    /// reset (or failed). Pair a `Some` with [`ResetGate::exit`].
    ///
    /// `SeqCst` on both sides: the participant stores `STOPPED` then reads `active`; a core
    /// increments `active` then reads the state. One of the two sees the other.
    #[inline(always)]
    pub(crate) fn enter(&self) -> Option<u64> {
        self.active.fetch_add(1, Ordering::SeqCst);
        if self.state.load(Ordering::SeqCst) == RUNNING {
            Some(self.generation.load(Ordering::Acquire))
        } else {
            self.active.fetch_sub(1, Ordering::Release);
            None
        }
    }

    /// Leaves the data path.
    #[inline(always)]
    pub(crate) fn exit(&self) {
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// The current generation (for paths that touch only memory).
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Cores inside the data path now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Closes the gate (quiesce). Fails if a reset failed for this device before.
    pub(crate) fn close(&self) -> Result<(), ()> {
        if self.state.load(Ordering::SeqCst) == FAILED {
            return Err(());
        }
        self.state.store(STOPPED, Ordering::SeqCst);
        self.info().quiesces += 1;
        Ok(())
    }

    /// Opens the gate with a new generation (recovery done).
    pub(crate) fn open(&self, waited: Duration, budget: Duration) {
        let mut info = self.info();
        info.recoveries += 1;
        info.last_link_up = Some(waited);
        info.link_budget = Some(budget);
        drop(info);
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    /// Fails the device for good.
    pub(crate) fn fail(&self, reason: &str) {
        self.info().failed = Some(reason.to_string());
        self.state.store(FAILED, Ordering::SeqCst);
    }

    pub(crate) fn set_filter_bits(&self, bits: u32, on: bool) {
        if on {
            self.filter_bits.fetch_or(bits, Ordering::Relaxed);
        } else {
            self.filter_bits.fetch_and(!bits, Ordering::Relaxed);
        }
    }

    pub(crate) fn filter_bits(&self) -> u32 {
        self.filter_bits.load(Ordering::Relaxed)
    }

    fn info(&self) -> MutexGuard<'_, ResetInfo> {
        // A panic while holding the lock leaves plain counters behind: still usable.
        self.info.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn state(&self) -> ResetState {
        match self.state.load(Ordering::SeqCst) {
            RUNNING => ResetState::Running,
            STOPPED => ResetState::Stopped,
            _ => ResetState::Failed(self.info().failed.clone().unwrap_or_default()),
        }
    }

    pub(crate) fn snapshot(&self) -> ResetInfo {
        self.info().clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_gate_lets_no_core_in_and_a_reopened_one_moves_the_generation() {
        let gate = ResetGate::new(0);
        assert_eq!(gate.enter(), Some(0));
        assert_eq!(gate.active(), 1);
        gate.exit();
        gate.close().unwrap();
        assert_eq!(gate.enter(), None);
        assert_eq!(gate.active(), 0, "a refused core does not stay counted");
        assert_eq!(gate.state(), ResetState::Stopped);
        gate.open(Duration::from_millis(3), Duration::from_secs(1));
        assert_eq!(gate.enter(), Some(1));
        gate.exit();
        let info = gate.snapshot();
        assert_eq!((info.quiesces, info.recoveries), (1, 1));
        assert_eq!(info.last_link_up, Some(Duration::from_millis(3)));
    }

    #[test]
    fn a_failed_gate_stays_shut() {
        let gate = ResetGate::new(0);
        gate.fail("link never came back");
        assert_eq!(gate.enter(), None);
        assert!(gate.close().is_err());
        assert_eq!(
            gate.state(),
            ResetState::Failed("link never came back".to_string())
        );
    }

    #[test]
    fn filter_bits_are_remembered() {
        let gate = ResetGate::new(0b1000);
        gate.set_filter_bits(0b1_0000, true);
        assert_eq!(gate.filter_bits(), 0b1_1000);
        gate.set_filter_bits(0b1000, false);
        assert_eq!(gate.filter_bits(), 0b1_0000);
    }
}

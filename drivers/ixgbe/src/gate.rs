//! The gate between the data path and coordinated resets (see [`crate::IxgbeParticipant`]):
//! one per device, in the shared state. A leaf: it imports no other file of the crate.

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

/// What the participant did so far, readable through [`crate::IxgbeDevice::reset_info`].
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

/// The gate between the data path and coordinated resets, and the filter settings a
/// recovery restores.
#[derive(Debug)]
pub(crate) struct ResetGate {
    state: AtomicU8,
    /// Cores inside the data path.
    active: AtomicUsize,
    /// Bumped by every completed recovery; queue handles compare it with their own.
    generation: AtomicU64,
    /// `FCTRL.UPE | FCTRL.MPE` as last set.
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

    #[inline(always)]
    pub(crate) fn exit(&self) {
        self.active.fetch_sub(1, Ordering::Release);
    }

    /// The current generation (for paths that only touch memory).
    #[inline(always)]
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Cores inside the data path now.
    pub(crate) fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// Closes the gate for a quiesce; false when the device failed in an earlier reset.
    pub(crate) fn close(&self) -> bool {
        if self.state.load(Ordering::SeqCst) == FAILED {
            return false;
        }
        self.state.store(STOPPED, Ordering::SeqCst);
        self.info().quiesces += 1;
        true
    }

    /// Opens the gate after a recovery, with a new generation.
    pub(crate) fn open_next_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.state.store(RUNNING, Ordering::SeqCst);
    }

    /// Closes the gate for good.
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

    pub(crate) fn info(&self) -> MutexGuard<'_, ResetInfo> {
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

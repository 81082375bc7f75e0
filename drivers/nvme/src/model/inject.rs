//! The fault-injection API on the model (the faults themselves are in `faults.rs`).

use super::controller::NvmeModel;
use super::faults::{CommandClass, Corruption, Faults, NvmeModelStats, Recovery};
use super::hostile::HostileHook;
use crate::spec::Status;

impl NvmeModel {
    /// Fails the `nth` command of `class` from now (1 for the next one) with `status`: it
    /// completes with that status and has no other effect.
    pub fn fail_command(&mut self, class: CommandClass, nth: u32, status: Status) {
        self.faults.fail = Some((class, nth.max(1), status));
    }

    /// Stops fetching, executing and completing commands; doorbell writes are still accepted
    /// and counted. Lasts until `until` (or [`NvmeModel::clear_faults`]).
    pub fn hang(&mut self, until: Recovery) {
        self.faults.hang = Some(until);
    }

    /// Sets `CSTS.CFS` and stops all processing until `until` (or
    /// [`NvmeModel::clear_faults`]).
    pub fn fatal(&mut self, until: Recovery) {
        self.faults.fatal = Some(until);
    }

    /// Corrupts the next completion posted for a command of `class`.
    pub fn corrupt_next_completion(&mut self, class: CommandClass, corruption: Corruption) {
        self.faults.corrupt = Some((class, corruption));
    }

    /// Clears every injected fault (not a fatal state the controller reached by itself, such
    /// as a completion it could not write).
    pub fn clear_faults(&mut self) {
        self.faults = Faults::default();
    }

    /// The model's counters.
    pub fn stats(&self) -> NvmeModelStats {
        self.stats
    }
}

impl NvmeModel {
    /// Sets (or with `None` removes) the hostile hook; see [`super::hostile`]. It stays set
    /// across resets.
    pub fn set_hostile(&mut self, hook: Option<HostileHook>) {
        self.hostile.set_hook(hook);
    }

    /// How many writes the hostile hook was offered since construction.
    pub fn hostile_writes(&self) -> u64 {
        self.hostile.offered()
    }
}

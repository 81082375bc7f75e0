//! The fault soak (issue 12): NVMe controllers (and optionally an 82599 port with traffic)
//! in one reset group on the simulated bus, a write-verify workload with a ledger of every
//! acknowledged write on each controller, and many faults in a row drawn from every class
//! the drivers and the reset coordinator must survive. At the end every slot is read back
//! and checked against its ledger. Deterministic: the seed decides everything, time is the
//! bus's virtual clock, and the report is a function of the configuration (wall time aside).
//!
//! ```
//! let report = userpci::soak::run(userpci::soak::SoakConfig {
//!     faults: 13,
//!     ..Default::default()
//! })?;
//! assert_eq!((report.writes_lost, report.writes_duplicated), (0, 0));
//! assert!(report.faults_injected.values().all(|&n| n == 1));
//! # Ok::<(), userpci::soak::SoakError>(())
//! ```
//!
//! Files, leaves first: `config` (parameters, timing, the seeded generator), `error`,
//! `counts` (the report's counters),
//! `fault` (the classes and the schedule), `ledger` (what each slot must hold), `inject`
//! (putting faults into the bus and the model), `participant` (a participant that
//! misbehaves on request), `workload` (queue pair and ledger), `nic`, `report`, `group`
//! (the bus, its members, bringing controllers up and back), and `runner` on top.

mod config;
mod counts;
mod error;
mod fault;
mod group;
mod inject;
mod ledger;
mod nic;
mod participant;
mod report;
mod runner;
mod workload;

#[cfg(test)]
mod tests;

pub use config::{Rng, SoakConfig};
pub use counts::{DriverCounts, FailureCounts, VerifyCounts};
pub use error::{Result, SoakError};
pub use fault::{schedule, FaultClass, FaultEvent};
pub use ledger::{pattern, Answer, Ledger, LedgerCounts, SlotRecord, Verdict};
pub use report::{SoakReport, WorstRecovery, SCHEMA_VERSION};
pub use runner::{run, Soak};
pub use workload::{Workload, SLOTS, WRITE_BLOCKS};

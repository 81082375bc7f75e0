//! The record of a coordinated reset: every phase of every member with start, end, deadline
//! and outcome, on the function's clock (virtual time on the simulated bus).

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// A step of the reset sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Choosing FLR or bus reset and checking ownership.
    Plan,
    /// Stopping the driver and taking back in-flight work.
    Quiesce,
    /// Clearing Bus Master and Memory Space Enable, masking interrupts.
    Disable,
    /// The reset itself (FLR or secondary bus reset, with its mandated wait).
    Reset,
    /// Waiting for the function to answer config reads.
    WaitReady,
    /// Re-initialising the driver and re-issuing what was taken back.
    Recover,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Plan => "plan",
            Phase::Quiesce => "quiesce",
            Phase::Disable => "disable",
            Phase::Reset => "reset",
            Phase::WaitReady => "wait-ready",
            Phase::Recover => "recover",
        })
    }
}

/// How a phase ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result", content = "reason")]
pub enum Outcome {
    /// Finished in time.
    Ok,
    /// Failed or missed its deadline; the reason says which.
    Failed(String),
    /// Not run, because an earlier phase of this member failed.
    Skipped(String),
}

impl Outcome {
    /// True for [`Outcome::Ok`].
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok)
    }
}

/// One phase of one member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhaseRecord {
    /// The member (participant name, or the function address when it has no driver).
    pub member: String,
    /// Which step.
    pub phase: Phase,
    /// Start, in ns since the request.
    pub start_ns: u64,
    /// End, in ns since the request.
    pub end_ns: u64,
    /// When the phase had to be done by, in ns since the request.
    pub deadline_ns: Option<u64>,
    /// How it ended.
    pub outcome: Outcome,
}

/// All phases of one coordinated reset, in the order they ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Timeline {
    /// The records.
    pub phases: Vec<PhaseRecord>,
}

impl Timeline {
    pub(crate) fn record(
        &mut self,
        member: &str,
        phase: Phase,
        start: Duration,
        end: Duration,
        deadline: Option<Duration>,
        outcome: Outcome,
    ) {
        self.phases.push(PhaseRecord {
            member: member.to_string(),
            phase,
            start_ns: nanos(start),
            end_ns: nanos(end.max(start)),
            deadline_ns: deadline.map(nanos),
            outcome,
        });
    }

    /// Members in order of first appearance.
    pub fn members(&self) -> Vec<&str> {
        let mut seen: Vec<&str> = Vec::new();
        for record in &self.phases {
            if !seen.contains(&record.member.as_str()) {
                seen.push(&record.member);
            }
        }
        seen
    }

    /// The end of the last phase.
    pub fn end_ns(&self) -> u64 {
        self.phases.iter().map(|p| p.end_ns).max().unwrap_or(0)
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

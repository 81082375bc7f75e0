//! The demo's scenarios, below the demo and its report.

use clap::ValueEnum;

/// Which fault the demo injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// 01:00.0's link goes down: a bus reset of the three-function group.
    Bus,
    /// 01:00.1's controller goes fatal: an FLR of that function alone.
    Flr,
    /// As `bus`, but 01:00.2 is held by another process: the reset is refused.
    Refused,
}

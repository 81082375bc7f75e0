//! `userpci net pktgen` and `userpci net fwd` (and the examples `pktgen`, `fwd`,
//! `tests/ixgbe_examples.rs` and `benches/ixgbe.rs`, which run the same code).
//!
//! # Where the ports come from
//! By default a simulated PCI bus with 82599 model ports (`userpci_ixgbe::model`):
//!
//! - `pktgen`: port A (`01:00.0`) transmits; its frames cross a model wire to port B
//!   (`01:00.1`), whose RX queue counts and frees them (`--sink`: port A alone, its frames
//!   counted by the model's transmit sink);
//! - `fwd`: ports A and B, each fed by the model's traffic generator; what arrives on A goes
//!   out of B and the other way round, zero copy; what the ports transmit ends in their sinks.
//!
//! The model runs on virtual time, which the loop moves along with the wall clock (from its
//! value at the start); the model's wire and generators pace frames at line rate in virtual
//! time (preamble, start delimiter, FCS and inter-frame gap included), so a loop that keeps
//! up reports line rate, and one that does not reports its own speed, **the model's work
//! included** (`benches/ixgbe.rs` measures the model's share apart). With `--device BDF`
//! (`--devices BDF BDF`) real ports bound to vfio-pci are opened through the framework's
//! VFIO backend, and the driver is chosen by the function's PCI ids ([`hw`]): an 82599 runs
//! on `userpci-ixgbe`, an 82576 on `userpci-igb`. The loops are written once, generic over
//! the framework's `NetPort` traits.
//!
//! | module | contents |
//! |---|---|
//! | this file | command lines, errors, constants, the examples' `main` |
//! | [`report`] | what a run reports, rates, progress lines |
//! | [`sim`] | the simulated 82599 ports |
//! | [`hw`] | real ports: open, pick the driver, run a [`hw::PortJob`] |
//! | [`pktgen`], [`fwd`] | the two tools' loops |
//!
//! # Cycles
//! `cycles_per_packet` is `ns_per_packet` × the "cpu MHz" of `/proc/cpuinfo` (an estimate:
//! reading the TSC needs `unsafe` in Rust 1.95, and the TSC rate is not the core clock
//! anyway); `null` where `/proc/cpuinfo` has no such line.

mod args;
mod fwd;
pub mod hw;
mod pktgen;
mod report;
pub mod sim;

pub use crate::tools::error::{parse_bdf, Result, ToolError};
pub use args::*;
pub use fwd::{run_fwd, Forwarder};
pub use pktgen::{effective_rate_pps, line_rate_pps, pktgen_frame, run_pktgen};
pub use report::{cpu_mhz, Drops, NetReport, PortReport};
pub use sim::{addr, fwd_sim, sim_bus, sim_options, start_generators};

pub use super::run::{request_stop, show_progress, stop_requested};

/// The whole `main` of `pktgen` and `fwd`: see [`super::run::tool_main`].
pub fn example_main(
    name: &str,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<NetReport>,
) -> std::process::ExitCode {
    super::run::tool_main(name, json, run)
}

/// `userpci net pktgen` (and the `pktgen` example).
pub fn pktgen_main(args: &PktgenArgs) -> std::process::ExitCode {
    super::run::tool_main("net pktgen", args.json, |progress| {
        run_pktgen(args, progress)
    })
}

/// `userpci net fwd` (and the `fwd` example).
pub fn fwd_main(args: &FwdArgs) -> std::process::ExitCode {
    super::run::tool_main("net fwd", args.json, |progress| run_fwd(args, progress))
}

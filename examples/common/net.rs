//! What `pktgen` and `fwd` share, kept out of their `main`s so that `tests/ixgbe_examples.rs`
//! and `benches/ixgbe.rs` run the same code (they include this file by `#[path]`).
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
//! The model runs on virtual time, advanced by the loop itself (`pktgen`: one wire poll per
//! round; `fwd`: `batch` frames per port per round, the generators sending one frame per
//! virtual nanosecond), so every figure is wall time of the whole loop, **the model's work
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

#![allow(dead_code)]

use std::fmt;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};

use userpci::framework::pci::PciAddress;
use userpci::output::OutputError;

#[path = "net/fwd.rs"]
mod fwd;
#[path = "net/hw.rs"]
pub mod hw;
#[path = "net/pktgen.rs"]
mod pktgen;
#[path = "net/report.rs"]
mod report;
#[path = "net/sim.rs"]
pub mod sim;

// Each example, test and bench that includes this file uses part of it.
#[allow(unused_imports)]
pub use fwd::{run_fwd, Forwarder};
#[allow(unused_imports)]
pub use pktgen::{pktgen_frame, run_pktgen};
#[allow(unused_imports)]
pub use report::{cpu_mhz, Drops, NetReport, PortReport};
#[allow(unused_imports)]
pub use sim::{addr, fwd_sim, sim_bus, sim_options, start_generators};

/// The simulated ports.
pub const SIM_A: &str = "01:00.0";
pub const SIM_B: &str = "01:00.1";
/// Their MACs.
pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
/// Preamble, start delimiter, inter-frame gap and FCS: what a frame costs on the wire
/// beyond the bytes the driver sees.
pub const WIRE_OVERHEAD: u64 = 8 + 12 + 4;
/// Frame sizes without FCS, as ixy-pktgen takes them.
pub const SIZES: std::ops::RangeInclusive<usize> = 60..=1514;
/// Batch sizes.
pub const BATCHES: std::ops::RangeInclusive<usize> = 1..=512;
/// Longest run.
pub const MAX_SECONDS: f64 = 86_400.0;
/// Rounds between two looks at the wall clock (when no rate is set).
pub(crate) const CLOCK_EVERY: u32 = 64;

/// What the examples fail with: every message names the value at fault.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The command line did not parse (clap's message, or help / version output).
    #[error("{0}")]
    Usage(#[from] clap::Error),
    /// A value that parsed but is out of range.
    #[error("invalid argument {name} = {value}: expected {expected}")]
    InvalidArgument {
        name: &'static str,
        value: String,
        expected: String,
    },
    /// Opening the device, DMA memory.
    #[error(transparent)]
    Framework(#[from] userpci::framework::Error),
    /// Bring-up or queue errors.
    #[error(transparent)]
    Ixgbe(#[from] userpci::ixgbe::Error),
    /// Bring-up or queue errors of an 82576.
    #[error(transparent)]
    Igb(#[from] userpci::igb::Error),
    /// The simulated topology was refused.
    #[error("simulated ports: {0}")]
    Model(String),
    /// `--device` names a function no NIC driver of userpci drives.
    #[error(
        "{address}: vendor {vendor:#06x} device {device:#06x} is not a NIC userpci drives \
         (expected an Intel 82599 for ixgbe or an Intel 82576 for igb)"
    )]
    UnsupportedNic {
        address: PciAddress,
        vendor: u16,
        device: u16,
    },
    /// `--devices` names ports of two different drivers.
    #[error(
        "{first} is driven by {first_driver} but {other} by {other_driver}: \
         the ports of one run must have the same driver"
    )]
    MixedDrivers {
        first: PciAddress,
        first_driver: &'static str,
        other: PciAddress,
        other_driver: &'static str,
    },
}

/// Shorthand for the examples' results.
pub type Result<T, E = NetError> = std::result::Result<T, E>;

fn invalid(name: &'static str, value: impl fmt::Display, expected: &str) -> NetError {
    NetError::InvalidArgument {
        name,
        value: value.to_string(),
        expected: expected.to_string(),
    }
}

/// Parses a PCI address for clap, naming the text on failure.
pub fn parse_bdf(text: &str) -> std::result::Result<PciAddress, String> {
    text.parse::<PciAddress>()
        .map_err(|err| format!("{err} (expected DDDD:BB:DD.F or BB:DD.F, e.g. 0000:01:00.0)"))
}

fn check_common(size: usize, batch: usize, seconds: f64) -> Result<()> {
    if !SIZES.contains(&size) {
        return Err(invalid("--size", size, "60..=1514 (bytes without FCS)"));
    }
    if !BATCHES.contains(&batch) {
        return Err(invalid("--batch", batch, "1..=512"));
    }
    if !(seconds.is_finite() && seconds > 0.0 && seconds <= MAX_SECONDS) {
        return Err(invalid("--seconds", seconds, "a number in (0, 86400]"));
    }
    Ok(())
}

/// `pktgen`'s command line.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "pktgen",
    about = "ixy-pktgen for userpci: transmit at full speed or a rate"
)]
pub struct PktgenArgs {
    /// Transmit rate in million packets per second [default: as fast as possible].
    #[arg(long, value_name = "MPPS")]
    pub rate: Option<f64>,
    /// Frame size without FCS, 60..=1514.
    #[arg(long, default_value_t = 60)]
    pub size: usize,
    /// How long to run, in seconds of wall time (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Packets per `tx_batch`, 1..=512.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Model: one port whose frames end in the model's transmit sink, instead of two ports
    /// linked by a wire.
    #[arg(long, conflicts_with = "device")]
    pub sink: bool,
    /// A real 82599 port bound to vfio-pci. Default: the simulated ports.
    #[arg(long, value_name = "BDF", value_parser = parse_bdf)]
    pub device: Option<PciAddress>,
}

impl PktgenArgs {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_common(self.size, self.batch, self.seconds)?;
        if let Some(rate) = self.rate {
            if !(rate.is_finite() && rate > 0.0 && rate <= 1000.0) {
                return Err(invalid("--rate", rate, "Mpps in (0, 1000]"));
            }
        }
        Ok(())
    }
}

/// `fwd`'s command line.
#[derive(clap::Parser, Clone, Debug)]
#[command(
    name = "fwd",
    about = "ixy-fwd for userpci: forward between two ports, both ways"
)]
pub struct FwdArgs {
    /// How long to run, in seconds of wall time (fractions allowed).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Packets per `rx_batch` / `tx_batch`, 1..=512.
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    /// Model: frame size the generators send, without FCS, 60..=1514.
    #[arg(long, default_value_t = 60, conflicts_with = "devices")]
    pub size: usize,
    /// Print one JSON object at the end instead of text.
    #[arg(long)]
    pub json: bool,
    /// Two real 82599 ports bound to vfio-pci. Default: two simulated ports.
    #[arg(long, value_name = "BDF", num_args = 2, value_parser = parse_bdf)]
    pub devices: Vec<PciAddress>,
}

impl FwdArgs {
    /// Checks every value, naming the first bad one.
    pub fn validate(&self) -> Result<()> {
        check_common(self.size, self.batch, self.seconds)?;
        if !self.devices.is_empty() {
            if self.devices.len() != 2 {
                return Err(invalid(
                    "--devices",
                    format!("{:?}", self.devices),
                    "two addresses",
                ));
            }
            if self.devices[0] == self.devices[1] {
                return Err(invalid(
                    "--devices",
                    format!("{} {}", self.devices[0], self.devices[1]),
                    "two different ports",
                ));
            }
        }
        Ok(())
    }
}

/// Set by Ctrl-C (or a closed standard output): the loops end at their next look at the
/// clock, and the run reports what it did so far.
static STOP: AtomicBool = AtomicBool::new(false);

/// True once the run was asked to end early. One relaxed load, checked where the loops read
/// the clock (every `CLOCK_EVERY` rounds), so the data path stays as it was.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::Relaxed)
}

/// Asks the running loop to end and report (the Ctrl-C handler; tests).
pub fn request_stop() {
    STOP.store(true, Ordering::Relaxed);
}

/// Progress lines go to a terminal only: `--json` output and a pipe get the summary alone.
pub fn show_progress(json: bool, stdout_is_terminal: bool) -> bool {
    !json && stdout_is_terminal
}

/// The whole `main` of the `pktgen` and `fwd` examples: logging to stderr, the run with its
/// per-second lines (on a terminal, without `--json`), then the report, or the error prefixed
/// with the example's `name`. Ctrl-C ends the run early with the partial report (a second
/// Ctrl-C exits at once, status 130). A reader that closes standard output (`| head -1`)
/// ends the run quietly: no more lines, no report, exit status 0.
pub fn example_main(
    name: &str,
    json: bool,
    run: impl FnOnce(&mut dyn FnMut(&str)) -> Result<NetReport>,
) -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = ctrlc::set_handler(|| {
        if stop_requested() {
            std::process::exit(130);
        }
        request_stop();
    }) {
        tracing::warn!("{name}: Ctrl-C will not end the run with a summary: {err}");
    }
    let progress = show_progress(json, std::io::stdout().is_terminal());
    let mut output: Result<(), OutputError> = Ok(());
    let result = run(&mut |line| {
        if progress && output.is_ok() {
            output = userpci::outln!("{line}");
            if output.is_err() {
                request_stop();
            }
        }
    });
    let written = output.and_then(|()| match &result {
        Ok(report) if json => userpci::outln!("{}", report.to_json()),
        Ok(report) => userpci::out!("{}", report.to_text()),
        Err(_) => Ok(()),
    });
    match (result, written) {
        (Err(err), _) => {
            userpci::errln!("{name}: {err}");
            std::process::ExitCode::FAILURE
        }
        (Ok(_), Err(err)) if !err.is_closed() => {
            userpci::errln!("{name}: {err}");
            std::process::ExitCode::FAILURE
        }
        (Ok(_), _) => std::process::ExitCode::SUCCESS,
    }
}

//! The net tools' command lines and limits, and the simulated ports' names.

use crate::framework::pci::PciAddress;
use crate::tools::error::{invalid, parse_bdf, Result};

/// The simulated ports.
pub const SIM_A: &str = "01:00.0";
pub const SIM_B: &str = "01:00.1";
/// Their MACs.
pub const MAC_A: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0a];
pub const MAC_B: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x0b];
/// Preamble, start delimiter, inter-frame gap and FCS: what a frame costs on the wire
/// beyond the bytes the driver sees.
pub const WIRE_OVERHEAD: u64 = 8 + 12 + 4;
/// The simulated 82599 ports' link speed (the model links at 10 Gbit/s).
pub const SIM_LINK_MBPS: u32 = 10_000;
/// Frame sizes without FCS, as ixy-pktgen takes them.
pub const SIZES: std::ops::RangeInclusive<usize> = 60..=1514;
/// Batch sizes.
pub const BATCHES: std::ops::RangeInclusive<usize> = 1..=512;
/// Longest run.
pub const MAX_SECONDS: f64 = 86_400.0;
/// Rounds between two looks at the wall clock (when no rate is set).
pub(crate) const CLOCK_EVERY: u32 = 64;

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

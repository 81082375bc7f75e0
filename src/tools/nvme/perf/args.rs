//! `nvme perf`'s command line and the checks that need no device.

use clap::{Parser, ValueEnum};
use serde::Serialize;

use crate::framework::runtime::affinity;
use crate::tools::nvme::device::{invalid, DeviceArgs, Result};

/// Longest run accepted.
pub(super) const MAX_SECONDS: f64 = 86_400.0;

/// What the I/Os do.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Reads at random `bs`-aligned offsets.
    Randread,
    /// Writes at random `bs`-aligned offsets.
    Randwrite,
    /// Sequential reads.
    Read,
    /// Sequential writes.
    Write,
    /// Write a pattern, read it back, compare (a mismatch is an error).
    Verify,
}

impl Workload {
    pub(super) fn name(self) -> &'static str {
        match self {
            Workload::Randread => "randread",
            Workload::Randwrite => "randwrite",
            Workload::Read => "read",
            Workload::Write => "write",
            Workload::Verify => "verify",
        }
    }

    pub(super) fn writes(self) -> bool {
        matches!(self, Workload::Randwrite | Workload::Write)
    }
}

/// Command line of `nvme_perf`.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "nvme_perf",
    about = "NVMe load generator in the manner of SPDK perf (the simulated model by default)"
)]
pub struct PerfArgs {
    /// The workload.
    #[arg(long, value_enum, default_value_t = Workload::Randread)]
    pub rw: Workload,
    /// Bytes per I/O: a multiple of the namespace's block size (larger than MDTS allows per
    /// command is split, as long as the queue holds QD of them).
    #[arg(long, value_name = "BYTES", default_value_t = 4096)]
    pub bs: u64,
    /// I/Os in flight per core.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub qd: u32,
    /// How long to submit I/O, in seconds (the I/Os in flight then drain).
    #[arg(
        long,
        value_name = "S",
        default_value_t = 5.0,
        allow_negative_numbers = true
    )]
    pub seconds: f64,
    /// Number of cores: the first N CPUs this process may run on [default: 1].
    #[arg(long, value_name = "N", conflicts_with = "cpus")]
    pub cores: Option<usize>,
    /// The CPUs to run on, as the kernel lists them (0-3,8).
    #[arg(long, value_name = "LIST")]
    pub cpus: Option<String>,
    /// Use the async API on a reactor per core instead of the raw polled API.
    #[arg(long = "async")]
    pub use_async: bool,
    /// The namespace [default: the first usable one].
    #[arg(long, value_name = "NSID")]
    pub nsid: Option<u32>,
    /// Seed of the random offsets.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    #[command(flatten)]
    pub device: DeviceArgs,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Parses a CPU list as the kernel writes it (`0-3,8,10-11`).
pub fn parse_cpu_list(text: &str) -> Result<Vec<usize>> {
    let bad = || invalid("--cpus", text, "a CPU list such as 0, 0-3 or 0,2-3");
    let mut cpus = Vec::new();
    for part in text.split(',') {
        let part = part.trim();
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (a.trim(), b.trim()),
            None => (part, part),
        };
        let first: usize = first.parse().map_err(|_| bad())?;
        let last: usize = last.parse().map_err(|_| bad())?;
        if first > last || last - first > 4096 {
            return Err(bad());
        }
        cpus.extend(first..=last);
    }
    cpus.sort_unstable();
    let before = cpus.len();
    cpus.dedup();
    if cpus.len() != before {
        return Err(invalid("--cpus", text, "each CPU at most once"));
    }
    Ok(cpus)
}

/// The CPUs to run on, each checked against this process's affinity mask.
pub(super) fn resolve_cpus(args: &PerfArgs) -> Result<Vec<usize>> {
    let allowed = affinity::allowed_cpus()?;
    let allowed_text = affinity::format_cpu_list(&allowed);
    match (&args.cpus, args.cores) {
        (Some(list), _) => {
            let cpus = parse_cpu_list(list)?;
            for &cpu in &cpus {
                if !allowed.contains(&cpu) {
                    return Err(invalid(
                        "--cpus",
                        list,
                        format!(
                            "CPUs this process may run on ({allowed_text}); CPU {cpu} is not one"
                        ),
                    ));
                }
            }
            Ok(cpus)
        }
        (None, cores) => {
            let cores = cores.unwrap_or(1);
            if cores == 0 || cores > allowed.len() {
                return Err(invalid(
                    "--cores",
                    cores,
                    format!(
                        "1..={} (this process may run on CPUs {allowed_text})",
                        allowed.len()
                    ),
                ));
            }
            Ok(allowed[..cores].to_vec())
        }
    }
}

/// Checks what can be checked before the device is opened.
pub(super) fn check_args(args: &PerfArgs) -> Result<Vec<usize>> {
    if !args.seconds.is_finite() || args.seconds <= 0.0 || args.seconds > MAX_SECONDS {
        return Err(invalid(
            "--seconds",
            args.seconds,
            format!("a number of seconds above 0, at most {MAX_SECONDS}"),
        ));
    }
    if args.qd == 0 {
        return Err(invalid("--qd", args.qd, "at least 1"));
    }
    if args.bs == 0 {
        return Err(invalid(
            "--bs",
            args.bs,
            "a positive multiple of the block size",
        ));
    }
    resolve_cpus(args)
}

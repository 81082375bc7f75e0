//! `userpci nvme …` and `userpci net …`: the tools of `userpci::tools`, on the device models
//! by default and on real devices bound to vfio-pci with `--device` / `--devices`.

use std::process::ExitCode;

use clap::Subcommand;
use userpci::tools::net::{self, FwdArgs, PktgenArgs};
use userpci::tools::nvme::identify::{self, IdentifyArgs};
use userpci::tools::nvme::perf::{self, PerfArgs};

#[derive(Subcommand)]
pub enum NvmeCommand {
    /// Identify a controller and its namespaces, as `nvme id-ctrl` / `nvme id-ns` do.
    Identify(IdentifyArgs),
    /// An SPDK-`perf`-like load generator: IOPS, MB/s and latency percentiles.
    Perf(PerfArgs),
}

#[derive(Subcommand)]
pub enum NetCommand {
    /// Send UDP frames from one TX queue as fast as possible (or at `--rate` Mpps).
    Pktgen(PktgenArgs),
    /// Forward between two ports, both ways, zero copy.
    Fwd(FwdArgs),
}

pub fn nvme(command: NvmeCommand) -> ExitCode {
    match command {
        NvmeCommand::Identify(args) => identify::main(&args),
        NvmeCommand::Perf(args) => perf::main(&args),
    }
}

pub fn net(command: NetCommand) -> ExitCode {
    match command {
        NetCommand::Pktgen(args) => net::pktgen_main(&args),
        NetCommand::Fwd(args) => net::fwd_main(&args),
    }
}

//! `userpci`: the command-line tool.
//!
//! - `userpci demo` runs the reset-recovery demo on a simulated PCI topology.
//! - `userpci copy-demo` runs the framework's end-to-end demo with DMA copy engines.
//! - `userpci list` lists this machine's PCI functions from sysfs (read-only).
//! - `userpci topology FILE` shows the IOMMU and reset groups of a simulated topology file.
//! - `userpci bind|unbind BDF…` moves functions to vfio-pci and back; `userpci reset-groups
//!   BDF…` opens them through VFIO and shows their reset groups with each member's owner.
//! - `userpci broker BDF…` claims whole reset groups and lends their functions to client
//!   processes (`framework::broker`).
//! - `userpci setup` (root) prepares the machine: hugepages, hugetlbfs, VFIO modules, the
//!   IOMMU explained, memlock, device nodes for `--user`; `setup status`, `setup reset`.
//! - `userpci nvme identify|perf`, `userpci net pktgen|fwd`: the NVMe and NIC tools
//!   (`userpci::tools`), on the device models unless given `--device`.
//!
//! Everything goes to standard output through `userpci::outln!`, so that a closed pipe ends
//! the tool quietly (`userpci demo | head -1`); `println!` would panic there.

#![deny(clippy::print_stdout, clippy::print_stderr)]

mod broker;
mod copy_demo;
mod demo;
mod error;
mod list;
mod setup;
mod soak;
mod status;
mod tools;
mod topology;
mod vfio;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "userpci",
    version,
    about = "User-space PCI drivers: tools and demos"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Reset recovery across a three-function reset group, on a simulated topology.
    Demo(demo::Args),
    /// The framework end to end with DMA copy engines (IOMMU fault, FLR, bus reset).
    CopyDemo(copy_demo::Args),
    /// List PCI functions with driver, IOMMU group and reset methods (reads sysfs only).
    List(list::Args),
    /// Show the IOMMU groups and reset groups of a simulated topology file.
    Topology(topology::Args),
    /// Bind PCI functions to vfio-pci (as root), remembering nothing: `unbind` undoes it.
    Bind(vfio::BindArgs),
    /// Return PCI functions from vfio-pci to their kernel driver.
    Unbind(vfio::BindArgs),
    /// Open functions bound to vfio-pci and show their reset groups and who owns each member.
    ResetGroups(vfio::GroupArgs),
    /// Claim whole reset groups and lend their functions to client processes over a socket.
    Broker(broker::Args),
    /// Every PCI function by reset group: holders, what a hot reset needs and what blocks it.
    Status(status::Args),
    /// Prepare the machine (root): hugepages, hugetlbfs, VFIO modules, device nodes for a user.
    Setup(setup::Args),
    /// Fault soak: write-verify under many injected faults on a simulated reset group.
    Soak(soak::Args),
    /// NVMe tools: `identify`, `perf` (the controller model unless `--device BDF`).
    #[command(subcommand)]
    Nvme(tools::NvmeCommand),
    /// NIC tools: `pktgen`, `fwd` (82599 model ports unless `--device`/`--devices`).
    #[command(subcommand)]
    Net(tools::NetCommand),
}

fn main() -> ExitCode {
    // Errors only by default: a passing demo's injected faults are not the user's problem.
    userpci::tools::init_logging_at("error");
    let cli: Cli = userpci::tools::cli::parse_args();
    let result = match cli.command {
        Command::Demo(args) => demo::run(args),
        Command::CopyDemo(args) => copy_demo::run(args),
        Command::List(args) => list::run(args),
        Command::Topology(args) => topology::run(args),
        Command::Bind(args) => vfio::bind(args),
        Command::Unbind(args) => vfio::unbind(args),
        Command::ResetGroups(args) => vfio::reset_groups(args),
        Command::Soak(args) => soak::run(args),
        Command::Status(args) => status::run(args),
        Command::Broker(args) => broker::run(args),
        Command::Setup(args) => setup::run(args),
        // The tools print their own report and error and choose their exit status.
        Command::Nvme(command) => return tools::nvme(command),
        Command::Net(command) => return tools::net(command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): it has what it wanted.
        Err(error::CliError::Output(closed)) if closed.is_closed() => ExitCode::SUCCESS,
        Err(err) => {
            userpci::errln!("userpci: {err}");
            ExitCode::FAILURE
        }
    }
}

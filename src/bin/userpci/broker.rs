//! `userpci broker BDF...`: claims the reset groups of the given functions (every member opened
//! through VFIO) and lends their functions to client processes over a Unix socket until
//! Ctrl-C, printing each change of lease (`framework::broker`; the README's "Sharing a reset
//! group between processes").

use std::path::PathBuf;
use std::time::Duration;

use userpci::framework::backend::vfio::{VfioContext, VfioFunction, VfioOptions};
use userpci::framework::broker::{Broker, BrokerConfig, LeaseView, VfioLending};
use userpci::framework::device::PciFunction;
use userpci::framework::pci::PciAddress;
use userpci::framework::reset::claim_reset_group;
use userpci::tools::run::{install_ctrlc, stop_requested};

use crate::error::{CliError, CliResult};

#[derive(clap::Args)]
pub struct Args {
    /// A function of each reset group to claim (`0000:01:00.0` or `01:00.0`); every member of
    /// its group is opened and lent.
    #[arg(required = true)]
    groups: Vec<PciAddress>,
    /// The socket clients connect to.
    #[arg(long, default_value = "/run/userpci/broker.sock")]
    socket: PathBuf,
    /// The socket's permission bits, octal: who may connect.
    #[arg(long, default_value = "0660", value_parser = parse_mode)]
    mode: u32,
}

fn parse_mode(text: &str) -> Result<u32, String> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|&mode| mode <= 0o777)
        .ok_or_else(|| format!("'{text}': expected octal permission bits, 0 to 0777 (e.g. 0660)"))
}

pub fn run(args: Args) -> CliResult {
    let context = VfioContext::new(VfioOptions::new())?;
    let mut functions: Vec<VfioFunction> = Vec::new();
    for &device in &args.groups {
        if functions.iter().any(|f| f.address() == device) {
            continue;
        }
        let anchor = context.open(device)?;
        let members = claim_reset_group(&context, &anchor)?;
        functions.push(anchor);
        functions.extend(members);
    }
    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir).map_err(|source| {
            CliError::Framework(userpci::framework::Error::BrokerSocket {
                path: args.socket.clone(),
                what: "cannot create its directory",
                source,
            })
        })?;
    }
    let mut config = BrokerConfig::new(&args.socket);
    config.mode = args.mode;
    let broker = Broker::start(VfioLending::new(functions), config)?;
    install_ctrlc("userpci broker");
    userpci::outln!(
        "userpci broker: serving on {} (mode {:04o}); Ctrl-C stops",
        args.socket.display(),
        args.mode
    )?;
    let mut shown = broker.leases();
    for lease in &shown {
        userpci::outln!("  {}", describe(lease))?;
    }
    while !stop_requested() {
        std::thread::sleep(Duration::from_millis(200));
        let now = broker.leases();
        for lease in now.iter().filter(|l| !shown.contains(l)) {
            userpci::outln!("  {}", describe(lease))?;
        }
        shown = now;
    }
    drop(broker);
    userpci::outln!("userpci broker: stopped; every function is closed")?;
    Ok(())
}

fn describe(lease: &LeaseView) -> String {
    match (&lease.holder, &lease.revoked) {
        (None, _) => format!("{}: free", lease.device),
        (Some(holder), None) => format!("{}: leased to {holder}", lease.device),
        (Some(holder), Some(why)) => {
            format!(
                "{}: fenced, lease of {holder} revoked ({why})",
                lease.device
            )
        }
    }
}

//! `userpci bind`, `unbind` and `reset-groups`: the real-hardware side of the tool.

use userpci::framework::backend::vfio::{bind_vfio, unbind_vfio, VfioContext, VfioOptions};
use userpci::framework::device::ResetTarget;
use userpci::framework::pci::PciAddress;
use userpci::framework::reset::{group_report, render_table};

use crate::error::CliResult;

#[derive(clap::Args)]
pub struct BindArgs {
    /// PCI functions (`0000:01:00.0` or `01:00.0`).
    #[arg(required = true)]
    devices: Vec<PciAddress>,
}

#[derive(clap::Args)]
pub struct GroupArgs {
    /// PCI functions bound to vfio-pci to open and report on.
    #[arg(required = true)]
    devices: Vec<PciAddress>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Binds each function to vfio-pci (`driver_override`, unbind, `drivers_probe`).
pub fn bind(args: BindArgs) -> CliResult {
    for device in args.devices {
        let report = bind_vfio(device)?;
        if report.already_bound {
            userpci::outln!("{device}: already bound to vfio-pci")?;
        } else {
            userpci::outln!(
                "{device}: bound to vfio-pci (was {})",
                report.original_driver.as_deref().unwrap_or("unbound")
            )?;
        }
    }
    Ok(())
}

/// Returns each function from vfio-pci to its kernel driver.
pub fn unbind(args: BindArgs) -> CliResult {
    for device in args.devices {
        let report = unbind_vfio(device)?;
        if report.was_not_bound {
            userpci::outln!("{device}: not bound to vfio-pci, left alone")?;
        } else {
            userpci::outln!(
                "{device}: released (now {})",
                report.driver.as_deref().unwrap_or("no driver")
            )?;
            if let Some(error) = &report.reprobe_error {
                userpci::errln!("{device}: no kernel driver took it back: {error}");
            }
        }
    }
    Ok(())
}

/// Opens the functions through VFIO and shows their reset groups with each member's IOMMU
/// group, reset methods and owner.
pub fn reset_groups(args: GroupArgs) -> CliResult {
    let context = VfioContext::new(VfioOptions::new())?;
    let functions = args
        .devices
        .iter()
        .map(|&device| context.open(device))
        .collect::<Result<Vec<_>, _>>()?;
    if let (Some(mode), Some(reason)) = (context.mode(), context.mode_reason()) {
        userpci::errln!("VFIO mode: {mode:?} ({reason})");
    }
    let targets: Vec<&dyn ResetTarget> = functions.iter().map(|f| f as &dyn ResetTarget).collect();
    let views = group_report(&targets)?;
    if args.json {
        userpci::outln!(
            "{}",
            serde_json::to_string_pretty(&views).expect("serialisable")
        )?;
    } else {
        userpci::out!("{}", render_table(&views))?;
    }
    Ok(())
}

//! `userpci list`: PCI functions as sysfs shows them.

use std::path::PathBuf;

use userpci::framework::pci::sysfs::SysfsPci;

use crate::error::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// sysfs root to read (a fixture tree, say).
    #[arg(long, default_value = "/sys")]
    sysfs: PathBuf,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let functions = SysfsPci::new(&args.sysfs).list()?;
    if args.json {
        userpci::outln!(
            "{}",
            serde_json::to_string_pretty(&functions).expect("serialisable")
        )?;
        return Ok(());
    }
    userpci::outln!(
        "{:<13} {:<9} {:<8} {:<12} {:<6} {:<16} {:<13} vfio",
        "address",
        "id",
        "class",
        "driver",
        "group",
        "reset",
        "parent"
    )?;
    for f in &functions {
        let methods: Vec<&str> = f.reset_methods.iter().map(|m| m.sysfs_name()).collect();
        userpci::outln!(
            "{:<13} {:04x}:{:04x} {:06x}   {:<12} {:<6} {:<16} {:<13} {}",
            f.address.to_string(),
            f.vendor,
            f.device,
            f.class,
            f.driver.as_deref().unwrap_or("-"),
            f.iommu_group.map_or("-".to_string(), |g| g.to_string()),
            if methods.is_empty() {
                "-".to_string()
            } else {
                methods.join(",")
            },
            f.parent_bridge.map_or("-".to_string(), |p| p.to_string()),
            f.vfio_dev.as_deref().unwrap_or("-"),
        )?;
    }
    Ok(())
}

//! `userpci topology FILE`: IOMMU groups and reset groups of a simulated topology.

use std::path::PathBuf;

use userpci::framework::backend::sim::topology::Topology;

use crate::error::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Topology file (TOML), e.g. topologies/demo.toml.
    file: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let topology = Topology::load(&args.file)?;
    if args.json {
        userpci::outln!(
            "{}",
            serde_json::to_string_pretty(&topology).expect("serialisable")
        )?;
        return Ok(());
    }
    print_tables(&topology)
}

/// Prints the function, IOMMU-group and reset-group tables.
pub fn print_tables(topology: &Topology) -> CliResult {
    userpci::outln!(
        "{:<13} {:<12} {:<6} {:<6} reset methods",
        "function",
        "model",
        "iommu",
        "reset"
    )?;
    for f in topology.functions() {
        let methods: Vec<&str> = f
            .spec
            .reset_methods
            .iter()
            .map(|m| m.sysfs_name())
            .collect();
        userpci::outln!(
            "{:<13} {:<12} {:<6} {:<6} {}",
            f.address.to_string(),
            f.spec.model,
            f.iommu_group,
            f.reset_group,
            methods.join(" ")
        )?;
    }
    userpci::outln!()?;
    userpci::outln!("{:<6} {:<9} {:<13} members", "reset", "scope", "bridge")?;
    for g in topology.reset_groups() {
        let members: Vec<String> = g.members.iter().map(ToString::to_string).collect();
        userpci::outln!(
            "{:<6} {:<9} {:<13} {}",
            g.id,
            g.scope.to_string(),
            g.bridge.map_or("-".to_string(), |b| b.to_string()),
            members.join(" ")
        )?;
    }
    Ok(())
}

//! `userpci status`: every PCI function grouped by reset group, who holds it, and what a hot
//! reset of each group needs (reads sysfs and /proc only; opens nothing).

use std::path::PathBuf;

use userpci::framework::pci::status::{
    read_status, GroupStatus, HeldBy, StatusSources, SystemStatus, Verdict,
};

use crate::error::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// sysfs root to read (a fixture tree, say).
    #[arg(long, default_value = "/sys")]
    sysfs: PathBuf,
    /// proc root to scan for processes holding VFIO files.
    #[arg(long = "proc", default_value = "/proc")]
    proc_root: PathBuf,
    /// Print one JSON object instead of tables.
    #[arg(long)]
    json: bool,
}

pub fn run(args: Args) -> CliResult {
    let status = read_status(&StatusSources {
        sysfs_root: args.sysfs,
        proc_root: args.proc_root,
        ..StatusSources::default()
    })?;
    if args.json {
        userpci::outln!(
            "{}",
            serde_json::to_string_pretty(&status).expect("serialisable")
        )?;
        return Ok(());
    }
    print_header(&status)?;
    for g in &status.groups {
        print_group(g)?;
    }
    Ok(())
}

fn print_header(s: &SystemStatus) -> CliResult {
    if s.iommu.present {
        userpci::outln!("IOMMU: {} groups", s.iommu.group_count)?;
    } else {
        userpci::outln!(
            "IOMMU: none ({}/kernel/iommu_groups is empty): VFIO cannot take any function, \
             no hot reset is possible",
            s.sysfs_root.display()
        )?;
    }
    if s.holders.complete {
        userpci::outln!(
            "holders: {} processes scanned in {}",
            s.holders.processes_scanned,
            s.proc_root.display()
        )?;
    } else {
        userpci::outln!(
            "holders: INCOMPLETE: the file descriptors of {} of {} processes could not be read \
             (run as root to see them); a function shown as not held may be held",
            s.holders.processes_unreadable,
            s.holders.processes_unreadable + s.holders.processes_scanned
        )?;
    }
    Ok(())
}

fn verdict_text(v: &Verdict) -> String {
    match v {
        Verdict::HeldByOne { pid } => format!("pid {pid} holds every member: it can hot reset"),
        Verdict::AfterSetup => "a caller can hot reset after the steps below".to_string(),
        Verdict::Blocked => "blocked".to_string(),
        Verdict::Unknown => "unknown (holders not visible)".to_string(),
    }
}

fn print_group(g: &GroupStatus) -> CliResult {
    userpci::outln!()?;
    userpci::outln!(
        "reset group {} ({}{}): {}",
        g.id,
        g.scope,
        g.bridge
            .as_deref()
            .map_or(String::new(), |b| format!(" reset by {b}")),
        verdict_text(&g.verdict)
    )?;
    userpci::outln!(
        "  {:<13} {:<11} {:<6} {:<12} {:<14} {:<11} held by",
        "address",
        "id",
        "group",
        "driver",
        "reset_method",
        "reached by"
    )?;
    for m in &g.members {
        let mut reach = Vec::new();
        for (on, name) in [
            (m.reaches.flr, "flr"),
            (m.reaches.slot, "slot"),
            (m.reaches.bus, "bus"),
        ] {
            if on {
                reach.push(name);
            }
        }
        let held = match &m.held_by {
            HeldBy::Processes => m
                .processes
                .iter()
                .map(|p| format!("pid {} {} ({})", p.pid, p.comm, p.file))
                .collect::<Vec<_>>()
                .join(", "),
            HeldBy::VfioIdle => "vfio-pci, no process".to_string(),
            HeldBy::VfioUnknown => "vfio-pci, holder not visible".to_string(),
            HeldBy::KernelDriver { driver } => format!("kernel driver {driver}"),
            HeldBy::Unbound => "nobody (no driver)".to_string(),
        };
        userpci::outln!(
            "  {:<13} {:<11} {:<6} {:<12} {:<14} {:<11} {}",
            m.address,
            format!(
                "{}:{}",
                m.vendor_id.trim_start_matches("0x"),
                m.device_id.trim_start_matches("0x")
            ),
            m.iommu_group.map_or("-".to_string(), |g| g.to_string()),
            m.driver.as_deref().unwrap_or("-"),
            if m.reset_method.is_empty() {
                "-".to_string()
            } else {
                m.reset_method.join(",")
            },
            if reach.is_empty() {
                "-".to_string()
            } else {
                reach.join(",")
            },
            held
        )?;
        if let Some(name) = &m.name {
            userpci::outln!("  {:<13} {name}", "")?;
        }
    }
    for n in &g.needs {
        userpci::outln!("  needs: {n}")?;
    }
    if !g.legacy_group_files.is_empty() {
        userpci::outln!(
            "  group mode: pass the fds of {}",
            g.legacy_group_files.join(" ")
        )?;
    }
    for b in &g.blockers {
        userpci::outln!("  blocked: {b}")?;
    }
    Ok(())
}

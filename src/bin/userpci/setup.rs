//! `userpci setup`, `setup status`, `setup reset`: the machine made ready for userpci (and an
//! unprivileged user), reported, and restored (`userpci::tools::setup`).

use std::path::PathBuf;

use clap::{ArgGroup, Subcommand};
use userpci::framework::pci::PciAddress;
use userpci::tools::error::parse_bdf;
use userpci::tools::setup::apply::{self, SetupReport};
use userpci::tools::setup::hugepages;
use userpci::tools::setup::memlock::{self, Memlock};
use userpci::tools::setup::plan::{GranteeName, HugepageRequest, SetupRequest};
use userpci::tools::setup::reset::{self, ResetReport};
use userpci::tools::setup::status::{self, SetupStatus};
use userpci::tools::setup::{RealHost, SystemRoot};

use crate::error::CliResult;

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<SetupCommand>,
    #[command(flatten)]
    apply: ApplyArgs,
}

#[derive(Subcommand)]
enum SetupCommand {
    /// Report hugepages, mounts, modules, IOMMU, memlock, device nodes and the state file.
    Status(ReadArgs),
    /// Undo what `userpci setup` recorded (as root); nothing else is touched.
    Reset(ReadArgs),
}

#[derive(clap::Args)]
#[command(group(ArgGroup::new("size").args(["hugepages", "hugemem"])))]
#[command(group(ArgGroup::new("grantee").args(["user", "group"])))]
struct ApplyArgs {
    /// Size the 2 MiB hugepage pool to N pages (the new size, not an addition).
    #[arg(long, value_name = "N")]
    hugepages: Option<u64>,
    /// Size the pool to SIZE of 2 MiB pages (512M, 1G; a multiple of 2 MiB).
    #[arg(long, value_name = "SIZE")]
    hugemem: Option<String>,
    /// Reserve on NUMA node N instead of machine-wide.
    #[arg(long, value_name = "N", requires = "size")]
    node: Option<u32>,
    /// Give the VFIO device nodes to this user (owner, read and write).
    #[arg(long, value_name = "NAME")]
    user: Option<String>,
    /// Give the VFIO device nodes to this group (group, read and write).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Only these functions' nodes (default: every function bound to vfio-pci).
    #[arg(long, value_name = "BDF", num_args = 1.., value_parser = parse_bdf, requires = "grantee")]
    devices: Vec<PciAddress>,
    /// Show what would change and change nothing (no root needed).
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    read: ReadArgs,
}

#[derive(clap::Args)]
struct ReadArgs {
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
    /// The directory standing for / (a fake tree, for tests); commands run only on /.
    #[arg(long, default_value = "/", hide = true)]
    root: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    match args.command {
        Some(SetupCommand::Status(read)) => show_status(&read),
        Some(SetupCommand::Reset(read)) => reset(&read),
        None => setup(args.apply),
    }
}

fn json(value: &impl serde::Serialize) -> CliResult {
    userpci::outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("serialisable")
    )?;
    Ok(())
}

fn setup(args: ApplyArgs) -> CliResult {
    let root = SystemRoot::at(&args.read.root);
    let pages = match (&args.hugepages, &args.hugemem) {
        (Some(pages), _) => Some(*pages),
        (None, Some(size)) => Some(hugepages::pages_in(size, hugepages::parse_size(size)?)?),
        (None, None) => None,
    };
    let request = SetupRequest {
        hugepages: pages.map(|pages| HugepageRequest {
            pages,
            node: args.node,
        }),
        grantee: match (args.user, args.group) {
            (Some(user), _) => Some(GranteeName::User(user)),
            (None, Some(group)) => Some(GranteeName::Group(group)),
            (None, None) => None,
        },
        devices: args.devices,
        dry_run: args.dry_run,
    };
    let report = apply::setup(&root, &request, &mut RealHost::new(&root))?;
    if args.read.json {
        return json(&report);
    }
    print_setup(&report)
}

fn print_setup(report: &SetupReport) -> CliResult {
    let verb = if report.dry_run { "would" } else { "done" };
    if report.changes.is_empty() {
        userpci::outln!("nothing to change")?;
    }
    for change in &report.changes {
        userpci::outln!("{verb}: {}", change.describe())?;
    }
    if !report.dry_run && !report.changes.is_empty() {
        userpci::outln!(
            "recorded in {} (sudo userpci setup reset undoes it)",
            report.state_file
        )?;
    }
    userpci::outln!("IOMMU: {}", report.iommu.explanation.join("; "))?;
    print_memlock(&report.memlock)?;
    for warning in &report.warnings {
        userpci::outln!("warning: {warning}")?;
    }
    Ok(())
}

fn print_memlock(memlock: &Memlock) -> CliResult {
    userpci::outln!(
        "memlock: soft {}, hard {} (this process); the hugepages need {}{}",
        memlock::human(memlock.soft_bytes),
        memlock::human(memlock.hard_bytes),
        memlock::human(Some(memlock.needed_bytes)),
        if memlock.enough { "" } else { ": not enough" }
    )?;
    if !memlock.enough {
        for line in &memlock.advice {
            userpci::outln!("  {line}")?;
        }
    }
    Ok(())
}

fn show_status(args: &ReadArgs) -> CliResult {
    let status = status::read(&SystemRoot::at(&args.root))?;
    if args.json {
        return json(&status);
    }
    print_status(&status)
}

fn print_status(s: &SetupStatus) -> CliResult {
    let h = &s.hugepages;
    userpci::outln!(
        "hugepages (2 MiB): {} reserved, {} free ({} MiB)",
        h.total_pages,
        h.free_pages,
        h.total_bytes >> 20
    )?;
    for pool in &h.pools {
        userpci::outln!(
            "  {:<8} {:>6} reserved {:>6} free  {}",
            pool.node
                .map_or("machine".to_string(), |node| format!("node {node}")),
            pool.total_pages,
            pool.free_pages,
            pool.path
        )?;
    }
    if h.mounts.is_empty() {
        userpci::outln!("hugetlbfs: not mounted")?;
    }
    for mount in &h.mounts {
        userpci::outln!(
            "hugetlbfs: {} (pagesize {})",
            mount.target,
            mount.pagesize.as_deref().unwrap_or("default")
        )?;
    }
    let modules: Vec<String> = s
        .modules
        .iter()
        .map(|m| format!("{} {}", m.name, if m.loaded { "yes" } else { "no" }))
        .collect();
    userpci::outln!("modules: {}", modules.join(", "))?;
    userpci::outln!(
        "IOMMU: {} ({} group{}; command line: {})",
        if s.iommu.enabled { "on" } else { "off" },
        s.iommu.group_count,
        if s.iommu.group_count == 1 { "" } else { "s" },
        if s.iommu.cmdline_options.is_empty() {
            "no IOMMU options".to_string()
        } else {
            s.iommu.cmdline_options.join(" ")
        }
    )?;
    for line in &s.iommu.explanation {
        userpci::outln!("  {line}")?;
    }
    print_memlock(&s.memlock)?;
    for function in &s.vfio_functions {
        userpci::outln!(
            "vfio-pci: {} group {}: {}",
            function.address,
            function.iommu_group.as_deref().unwrap_or("-"),
            function.nodes.join(" ")
        )?;
    }
    for node in &s.device_nodes {
        let o = &node.ownership;
        userpci::outln!(
            "node: {:<26} {}:{} {:04o}",
            node.path,
            node.user.clone().unwrap_or_else(|| o.uid.to_string()),
            node.group.clone().unwrap_or_else(|| o.gid.to_string()),
            o.mode
        )?;
    }
    if s.state.present {
        userpci::outln!(
            "state: {} records {} changes (sudo userpci setup reset undoes them)",
            s.state.path,
            s.state.change_count
        )?;
    } else {
        userpci::outln!("state: no {} (setup changed nothing here)", s.state.path)?;
    }
    for warning in &s.warnings {
        userpci::outln!("warning: {warning}")?;
    }
    Ok(())
}

fn reset(args: &ReadArgs) -> CliResult {
    let root = SystemRoot::at(&args.root);
    let report = reset::reset(&root, &mut RealHost::new(&root))?;
    if args.json {
        return json(&report);
    }
    print_reset(&report)
}

fn print_reset(report: &ResetReport) -> CliResult {
    if !report.had_state {
        userpci::outln!(
            "nothing to reset: no {} (setup made no changes, or reset already ran)",
            report.state_file
        )?;
        return Ok(());
    }
    for line in &report.restored {
        userpci::outln!("restored: {line}")?;
    }
    for line in &report.left {
        userpci::outln!("left: {line}")?;
    }
    Ok(())
}

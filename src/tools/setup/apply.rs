//! Carrying a plan out (`userpci setup`).
//!
//! Each change is recorded in the state file as soon as it is made, so a setup that fails
//! half way can still be reset ([`reset`](super::reset)).

use serde::Serialize;

use super::hugepages::HUGEPAGE_BYTES;
use super::iommu::{self, IommuState};
use super::memlock::{self, Memlock};
use super::modules;
use super::permissions::{self, Grantee};
use super::plan::{plan, Change, SetupRequest};
use super::state::{
    self, HugepageChange, MountChange, NodeChange, SetupState, STATE_FILE, STATE_SCHEMA,
};
use super::{Host, SystemRoot};
use crate::tools::error::{system, Result};
use crate::tools::run::SCHEMA_VERSION;

/// What `userpci setup` did (or, with `--dry-run`, would do).
#[derive(Debug, Clone, Serialize)]
pub struct SetupReport {
    pub schema: u32,
    pub dry_run: bool,
    /// The changes made (or planned), in order.
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    pub iommu: IommuState,
    pub memlock: Memlock,
    pub state_file: String,
}

/// Plans `request` and, unless it is a dry run, carries it out through `host`.
pub fn setup(
    root: &SystemRoot,
    request: &SetupRequest,
    host: &mut dyn Host,
) -> Result<SetupReport> {
    let plan = plan(root, request)?;
    let mut warnings = plan.notes.clone();
    let mut done = Vec::new();
    if request.dry_run {
        done = plan.changes.clone();
    } else {
        let mut recorded = state::load(root)?.unwrap_or_default();
        recorded.schema = STATE_SCHEMA;
        for change in &plan.changes {
            if apply_change(root, host, change, &mut recorded, &mut warnings)? {
                done.push(change.clone());
            }
            state::save(root, &recorded)?;
        }
        if let Some(warning) = modules::interface_warning(root) {
            warnings.push(warning);
        }
    }
    let iommu = iommu::read(root)?;
    warnings.extend(iommu::off_warning(&iommu));
    let user = match &plan.grantee {
        Some(Grantee::User(user)) => Some(user.name.as_str()),
        _ => None,
    };
    let memlock = memlock::read(root, plan.hugepage_bytes_after, user)?;
    if plan.grantee.is_some() && !memlock.enough {
        warnings.push(format!(
            "the memlock limit here is {}, below the {} of hugepages: give the user a larger \
             one (see memlock advice)",
            memlock::human(memlock.soft_bytes),
            memlock::human(Some(memlock.needed_bytes))
        ));
    }
    Ok(SetupReport {
        schema: SCHEMA_VERSION,
        dry_run: request.dry_run,
        changes: done,
        warnings,
        iommu,
        memlock,
        state_file: STATE_FILE.to_string(),
    })
}

/// Makes one change and records it; `Ok(false)` when it failed in a way that is only a
/// warning (an optional module, a mount userpci itself does not need).
fn apply_change(
    root: &SystemRoot,
    host: &mut dyn Host,
    change: &Change,
    recorded: &mut SetupState,
    warnings: &mut Vec<String>,
) -> Result<bool> {
    match change {
        Change::LoadModule { module, required } => match host.run("modprobe", &[module]) {
            Ok(()) => {
                recorded.modules_loaded.push(module.clone());
                Ok(true)
            }
            Err(err) if !required => {
                warnings.push(format!("{err} (optional: the other DMA interface may do)"));
                Ok(false)
            }
            Err(err) => Err(err),
        },
        Change::SetHugepages {
            path,
            node,
            from_pages,
            to_pages,
        } => {
            let file = root.path(path);
            host.write_attribute(&file, &to_pages.to_string())
                .map_err(system("write", path))?;
            let granted = root.read_number(path)?;
            if granted < *to_pages {
                warnings.push(format!(
                    "asked the kernel for {to_pages} 2 MiB hugepages in {path} and it reserved \
                     only {granted} ({} MiB): memory is short or fragmented; reserve early \
                     after boot or add hugepages={to_pages} to the kernel command line",
                    granted * (HUGEPAGE_BYTES >> 20)
                ));
            }
            recorded.record_hugepages(HugepageChange {
                path: path.clone(),
                node: *node,
                previous_pages: *from_pages,
                set_pages: granted,
            });
            Ok(granted != *from_pages)
        }
        Change::MountHugetlbfs { target, create_dir } => {
            let dir = root.path(target);
            if *create_dir {
                std::fs::create_dir_all(&dir).map_err(system("create", target))?;
            }
            let dir_text = dir.display().to_string();
            let args = ["-t", "hugetlbfs", "-o", "pagesize=2M", "nodev", &dir_text];
            match host.run("mount", &args) {
                Ok(()) => {
                    recorded.mount = Some(MountChange {
                        target: target.clone(),
                        created_dir: *create_dir,
                    });
                    Ok(true)
                }
                Err(err) => {
                    if *create_dir {
                        let _ = std::fs::remove_dir(&dir);
                    }
                    warnings.push(format!(
                        "{err} (userpci's own DMA memory needs no mount; DPDK-style tools do)"
                    ));
                    Ok(false)
                }
            }
        }
        Change::GiveNode { path, to, from, .. } => {
            permissions::set_ownership(root, path, *to)?;
            recorded.record_node(NodeChange {
                path: path.clone(),
                previous: *from,
                set: *to,
            });
            Ok(true)
        }
    }
}

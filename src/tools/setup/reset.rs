//! `userpci setup reset`: undoing what the state file records.
//!
//! Reset restores a value only while it is still what setup left: whatever someone changed
//! since is theirs, and is reported, not overwritten. What cannot be restored stays in the
//! state file, so that another reset can try again.

use serde::Serialize;

use super::hugepages;
use super::permissions;
use super::state::{
    self, HugepageChange, MountChange, NodeChange, SetupState, STATE_FILE, STATE_SCHEMA,
};
use super::{Host, SystemRoot};
use crate::tools::error::{system, Result, ToolError};
use crate::tools::run::SCHEMA_VERSION;

/// What `userpci setup reset` did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResetReport {
    pub schema: u32,
    pub state_file: String,
    /// False when there was no state file: nothing to undo, nothing touched.
    pub had_state: bool,
    pub restored: Vec<String>,
    /// Things left as they are, with the reason.
    pub left: Vec<String>,
}

/// Undoes what the state file records, newest kind of change first (nodes, then the mount,
/// then the pools, which cannot shrink under a mount that holds pages).
pub fn reset(root: &SystemRoot, host: &mut dyn Host) -> Result<ResetReport> {
    root.require_root("userpci setup reset", "")?;
    let mut report = ResetReport {
        schema: SCHEMA_VERSION,
        state_file: STATE_FILE.to_string(),
        ..ResetReport::default()
    };
    let Some(recorded) = state::load(root)? else {
        return Ok(report);
    };
    report.had_state = true;
    let mut kept = SetupState {
        schema: STATE_SCHEMA,
        ..SetupState::default()
    };
    for node in recorded.nodes.iter().rev() {
        if let Err(err) = restore_node(root, node, &mut report) {
            report.left.push(format!("{}: {err}", node.path));
            kept.nodes.push(node.clone());
        }
    }
    if let Some(mount) = &recorded.mount {
        if let Err(err) = unmount(root, host, mount, &mut report) {
            report.left.push(format!("{}: {err}", mount.target));
            kept.mount = Some(mount.clone());
        }
    }
    for pool in recorded.hugepages.iter().rev() {
        if let Err(err) = restore_pool(root, host, pool, &mut report) {
            report.left.push(format!("{}: {err}", pool.path));
            kept.hugepages.push(pool.clone());
        }
    }
    for module in &recorded.modules_loaded {
        report.left.push(format!(
            "module {module}: left loaded (unloading vfio_pci would take every bound function \
             from its driver)"
        ));
    }
    // What could not be restored stays recorded, so that another reset can try again.
    state::save(root, &kept)?;
    Ok(report)
}

fn restore_node(root: &SystemRoot, node: &NodeChange, report: &mut ResetReport) -> Result<()> {
    if !permissions::is_vfio_node(&node.path) {
        report.left.push(format!(
            "{}: not a VFIO node, not touched (the state file was edited?)",
            node.path
        ));
        return Ok(());
    }
    if !root.exists(&node.path) {
        report.left.push(format!(
            "{}: gone (its function left vfio-pci), nothing to restore",
            node.path
        ));
        return Ok(());
    }
    let now = permissions::ownership(root, &node.path)?;
    if now != node.set {
        report.left.push(format!(
            "{}: changed since setup (now {}:{} mode {:04o}), left as it is",
            node.path, now.uid, now.gid, now.mode
        ));
        return Ok(());
    }
    permissions::set_ownership(root, &node.path, node.previous)?;
    report.restored.push(format!(
        "{}: owner {}:{} mode {:04o} again",
        node.path, node.previous.uid, node.previous.gid, node.previous.mode
    ));
    Ok(())
}

fn unmount(
    root: &SystemRoot,
    host: &mut dyn Host,
    mount: &MountChange,
    report: &mut ResetReport,
) -> Result<()> {
    let mounted = hugepages::mounts(root)?
        .iter()
        .any(|m| m.target == mount.target);
    if mounted {
        host.run("umount", &[&root.path(&mount.target).display().to_string()])?;
        report
            .restored
            .push(format!("{}: hugetlbfs unmounted", mount.target));
    } else {
        report
            .left
            .push(format!("{}: no longer mounted", mount.target));
    }
    if mount.created_dir {
        std::fs::remove_dir(root.path(&mount.target)).map_err(system("remove", &mount.target))?;
        report
            .restored
            .push(format!("{}: directory removed", mount.target));
    }
    Ok(())
}

fn restore_pool(
    root: &SystemRoot,
    host: &mut dyn Host,
    pool: &HugepageChange,
    report: &mut ResetReport,
) -> Result<()> {
    if !hugepages::is_pool_count_file(&pool.path) {
        report.left.push(format!(
            "{}: not a 2 MiB nr_hugepages file, not touched (the state file was edited?)",
            pool.path
        ));
        return Ok(());
    }
    let now = root.read_number(&pool.path)?;
    if now != pool.set_pages {
        report.left.push(format!(
            "{}: {now} pages, changed since setup set {}, left as it is",
            pool.path, pool.set_pages
        ));
        return Ok(());
    }
    host.write_attribute(&root.path(&pool.path), &pool.previous_pages.to_string())
        .map_err(system("write", &pool.path))?;
    let back = root.read_number(&pool.path)?;
    if back != pool.previous_pages {
        return Err(ToolError::Malformed {
            path: pool.path.clone().into(),
            message: format!(
                "wrote {} and the kernel keeps {back} (pages in use cannot be freed)",
                pool.previous_pages
            ),
        });
    }
    report.restored.push(format!(
        "{}: {} pages again (setup had set {})",
        pool.path, pool.previous_pages, pool.set_pages
    ));
    Ok(())
}

//! Reset groups made visible, and claiming a whole group.
//!
//! In cdev mode nothing shows a user which functions one bus reset would hit, nor who holds
//! them. [`group_report`] lists, for every opened function, its reset group's members with their
//! IOMMU group, reset methods and ownership; [`claim_reset_group`] opens every member so that a
//! bus reset stays possible for the life of the process, or fails at start-up naming each
//! blocker.

use std::fmt::Write;

use serde::Serialize;

use crate::device::{Ownership, PciFunction, ResetGroupMember, ResetTarget};
use crate::error::{Error, Result};
use crate::pci::PciAddress;

use super::plan::method_names;

/// One reset group as seen from the functions this process opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetGroupView {
    /// The opened function the group was read through.
    pub seen_from: PciAddress,
    /// Every member, with IOMMU group, reset methods and ownership.
    pub members: Vec<ResetGroupMember>,
    /// True when every member is owned: a bus reset is possible.
    pub bus_reset_possible: bool,
}

/// The reset groups of `functions`, each group listed once.
pub fn group_report(functions: &[&dyn ResetTarget]) -> Result<Vec<ResetGroupView>> {
    let mut views: Vec<ResetGroupView> = Vec::new();
    for function in functions {
        let address = function.target_address();
        if views
            .iter()
            .any(|v| v.members.iter().any(|m| m.address == address))
        {
            continue;
        }
        let members = function.target_reset_group()?;
        let bus_reset_possible =
            members.len() > 1 && members.iter().all(|m| m.ownership == Ownership::Owned);
        views.push(ResetGroupView {
            seen_from: address,
            members,
            bus_reset_possible,
        });
    }
    Ok(views)
}

/// The report as a table for people.
pub fn render_table(views: &[ResetGroupView]) -> String {
    let mut out = String::new();
    for (index, view) in views.iter().enumerate() {
        let _ = writeln!(
            out,
            "reset group {index} (seen from {}): {} member(s), bus reset {}",
            view.seen_from,
            view.members.len(),
            if view.bus_reset_possible {
                "possible"
            } else {
                "not possible"
            }
        );
        let _ = writeln!(
            out,
            "  {:<13} {:<6} {:<14} owner",
            "function", "iommu", "reset methods"
        );
        for m in &view.members {
            let owner = match &m.ownership {
                Ownership::Owned => "this process".to_string(),
                Ownership::OwnedElsewhere { owner } => format!("elsewhere: {owner}"),
                Ownership::Unopened => "unopened".to_string(),
            };
            let _ = writeln!(
                out,
                "  {:<13} {:<6} {:<14} {owner}",
                m.address.to_string(),
                m.iommu_group.map_or("-".to_string(), |g| g.to_string()),
                method_names(&m.reset_methods),
            );
        }
    }
    out
}

/// Something that can open functions for this process (the simulated bus, a VFIO context).
pub trait FunctionOpener {
    /// The function type it opens.
    type Function: PciFunction;
    /// Opens `address`.
    fn open_function(&self, address: PciAddress) -> Result<Self::Function>;
}

/// Opens every member of `anchor`'s reset group that this process has not opened yet.
///
/// Members already open in this process are left as they are. If any member cannot be opened
/// (held elsewhere, busy, not bound), nothing is kept open and the error names every blocker:
/// better to fail at start-up than in the middle of a recovery.
pub fn claim_reset_group<O: FunctionOpener>(
    opener: &O,
    anchor: &dyn ResetTarget,
) -> Result<Vec<O::Function>> {
    let device = anchor.target_address();
    let mut opened = Vec::new();
    let mut blockers = Vec::new();
    for member in anchor.target_reset_group()? {
        if member.address == device {
            continue;
        }
        if let Ownership::OwnedElsewhere { owner } = &member.ownership {
            blockers.push(format!("{} is owned by {owner}", member.address));
            continue;
        }
        match opener.open_function(member.address) {
            Ok(function) => opened.push(function),
            Err(Error::AlreadyOpen { .. }) => {}
            Err(err) => blockers.push(format!("{}: {err}", member.address)),
        }
    }
    if !blockers.is_empty() {
        return Err(Error::ClaimRefused {
            device,
            blockers: blockers.join("; "),
        });
    }
    Ok(opened)
}

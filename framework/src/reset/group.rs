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

use super::plan::{bus_reset_blockers, method_names};

/// One reset group as seen from the functions this process opened.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ResetGroupView {
    /// The opened function the group was read through.
    pub seen_from: PciAddress,
    /// Every member, with IOMMU group, reset methods and ownership.
    pub members: Vec<ResetGroupMember>,
    /// True when the planner would allow a bus reset of this group now (every member owned,
    /// a group of one included).
    pub bus_reset_possible: bool,
    /// Why not, one line per member in the way; empty when `bus_reset_possible`.
    pub bus_reset_blockers: Vec<String>,
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
        let blockers = bus_reset_blockers(&members);
        views.push(ResetGroupView {
            seen_from: address,
            members,
            bus_reset_possible: blockers.is_empty(),
            bus_reset_blockers: blockers,
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::backend::sim::topology::TopologyBuilder;
    use crate::backend::sim::{ModelRegistry, SimBus};
    use crate::device::ResetMethod;
    use crate::reset::{plan, ResetCause, ResetKind, ResetPlan, ResetRequest, ResetScope};
    use crate::testdev::model;

    fn addr(text: &str) -> PciAddress {
        text.parse().unwrap()
    }

    /// 00:02.0 -> 01:00.0 + 01:00.1 (one reset group, two IOMMU groups through ACS);
    /// 00:03.0 -> 02:00.0 alone.
    fn bus() -> Arc<SimBus> {
        let topology = TopologyBuilder::new()
            .root_port("00:02.0", 1)
            .function("01:00.0", "copy-engine")
            .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
            .acs(true)
            .function("01:00.1", "copy-engine")
            .acs(true)
            .root_port("00:03.0", 2)
            .function("02:00.0", "copy-engine")
            .reset_methods(&[ResetMethod::Flr, ResetMethod::Bus])
            .build()
            .unwrap();
        let mut registry = ModelRegistry::new();
        registry.register("copy-engine", model::factory);
        SimBus::new(topology, &registry).unwrap()
    }

    /// The report's verdict for `target`'s group and the planner's answer to a group reset.
    fn report_and_plan(target: &dyn ResetTarget) -> (ResetGroupView, Result<ResetPlan>) {
        let view = group_report(&[target]).unwrap().remove(0);
        let request = ResetRequest::new(target.target_address(), ResetCause::Api)
            .with_scope(ResetScope::Group);
        (view, plan(&request, target))
    }

    #[test]
    fn an_owned_single_function_group_is_reported_as_the_planner_resets_it() {
        let bus = bus();
        let alone = bus.open(addr("02:00.0")).unwrap();
        let (view, planned) = report_and_plan(&alone);
        assert_eq!(view.members.len(), 1);
        let planned = planned.unwrap();
        assert_eq!(planned.kind, ResetKind::Bus);
        assert_eq!(planned.members, vec![addr("02:00.0")]);
        assert!(view.bus_reset_possible, "the planner bus-resets it");
        assert!(view.bus_reset_blockers.is_empty());
        assert!(render_table(&[view]).contains("1 member(s), bus reset possible"));
    }

    #[test]
    fn the_report_and_the_planner_agree_for_every_ownership_of_a_group() {
        let bus = bus();
        let f0 = bus.open(addr("01:00.0")).unwrap();

        // 01:00.1 unopened: both refuse, with the same reason.
        let (view, planned) = report_and_plan(&f0);
        assert!(!view.bus_reset_possible);
        assert_eq!(
            view.bus_reset_blockers,
            vec!["0000:01:00.1 is not opened by this process".to_string()]
        );
        let err = planned.unwrap_err().to_string();
        assert!(err.ends_with(&view.bus_reset_blockers[0]), "{err}");

        // Held elsewhere: both refuse.
        bus.hold_elsewhere(addr("01:00.1"), "pid 9").unwrap();
        let (view, planned) = report_and_plan(&f0);
        assert!(!view.bus_reset_possible);
        assert_eq!(
            view.bus_reset_blockers,
            vec!["0000:01:00.1 is owned by pid 9".to_string()]
        );
        assert!(planned.is_err());
        bus.release_elsewhere(addr("01:00.1")).unwrap();

        // Both owned: both allow.
        let _f1 = bus.open(addr("01:00.1")).unwrap();
        let (view, planned) = report_and_plan(&f0);
        assert!(view.bus_reset_possible);
        assert_eq!(planned.unwrap().members.len(), 2);
    }
}

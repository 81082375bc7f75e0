//! What a hot reset of one reset group needs and what blocks it, from the members' state.
//!
//! The kernel (`vfio_pci_dev_set_hot_reset()`) resets a set only when every function the
//! slot or bus reset hits is bound to vfio-pci and owned by the caller: in cdev mode opened
//! and bound to the caller's one iommufd context, in group mode covered by a group fd passed
//! in. Blocker lines use the words of [`crate::reset::bus_reset_blockers`] ("… is owned by …").

use std::collections::BTreeSet;

use super::model::{FunctionStatus, HeldBy, Verdict};
use crate::pci::devset::ResetScope;

/// The decision for one group.
pub struct GroupVerdict {
    pub verdict: Verdict,
    pub needs: Vec<String>,
    pub legacy_group_files: Vec<String>,
    pub blockers: Vec<String>,
}

/// Why no hot reset reaches a function-scope group's member.
pub fn no_hot_reset_reason(on_root_bus: bool) -> &'static str {
    if on_root_bus {
        "it sits on a root bus (no bridge to reset)"
    } else {
        "it is a virtual function"
    }
}

/// Decides for `members` sharing `scope`. `function_scope_reason` says why a
/// [`ResetScope::Function`] group has no hot reset.
pub fn decide(
    scope: ResetScope,
    members: &[FunctionStatus],
    iommu_present: bool,
    function_scope_reason: &str,
) -> GroupVerdict {
    let mut needs = Vec::new();
    let mut blockers = Vec::new();
    if !iommu_present {
        blockers.push(
            "no IOMMU: kernel/iommu_groups is empty, VFIO cannot take any function".to_string(),
        );
    }
    if scope == ResetScope::Function {
        if let Some(m) = members.first() {
            blockers.push(format!(
                "no slot or bus reset reaches {}: {function_scope_reason}",
                m.address
            ));
        }
    }
    let mut pids: BTreeSet<u32> = BTreeSet::new();
    let mut every_member_held = true;
    for m in members {
        match &m.held_by {
            HeldBy::KernelDriver { driver } => {
                needs.push(format!(
                    "unbind {} from {driver}, bind it to vfio-pci",
                    m.address
                ));
            }
            HeldBy::Unbound => needs.push(format!("bind {} to vfio-pci", m.address)),
            _ => {}
        }
        if m.processes.is_empty() {
            every_member_held = false;
            match &m.vfio_cdev {
                Some(cdev) => needs.push(format!(
                    "open /dev/vfio/devices/{cdev} ({}) and bind it to the caller's iommufd",
                    m.address
                )),
                None => needs.push(format!(
                    "open the cdev of {} (vfio-dev/vfioN in sysfs once on vfio-pci) and bind it to the \
                     caller's iommufd",
                    m.address
                )),
            }
        }
        for p in &m.processes {
            pids.insert(p.pid);
        }
    }
    let mut legacy_group_files: Vec<String> = members
        .iter()
        .filter_map(|m| m.iommu_group.map(|g| format!("/dev/vfio/{g}")))
        .collect();
    legacy_group_files.sort();
    legacy_group_files.dedup();

    let one_holder = pids.len() == 1
        && every_member_held
        && members
            .iter()
            .all(|m| m.processes.iter().any(|p| Some(&p.pid) == pids.first()));
    if !one_holder {
        for m in members {
            for p in &m.processes {
                blockers.push(format!(
                    "{} is owned by pid {} ({}) through {}",
                    m.address, p.pid, p.comm, p.file
                ));
            }
        }
    }
    let verdict = if !blockers.is_empty() {
        Verdict::Blocked
    } else if one_holder {
        needs.clear();
        Verdict::HeldByOne {
            pid: pids.first().copied().unwrap_or_default(),
        }
    } else if members.iter().any(|m| m.held_by == HeldBy::VfioUnknown) {
        Verdict::Unknown
    } else {
        Verdict::AfterSetup
    };
    GroupVerdict {
        verdict,
        needs,
        legacy_group_files,
        blockers,
    }
}

#[cfg(test)]
mod tests {
    use super::super::model::{ProcessHolder, ResetReach};
    use super::*;

    fn member(addr: &str, held_by: HeldBy, pids: &[u32]) -> FunctionStatus {
        FunctionStatus {
            address: addr.to_string(),
            vendor_id: "0x1b36".into(),
            device_id: "0x0010".into(),
            name: None,
            class: "0x010802".into(),
            driver: Some("vfio-pci".into()),
            iommu_group: Some(6),
            reset_method: vec!["flr".into()],
            reaches: ResetReach {
                flr: true,
                slot: false,
                bus: true,
            },
            vfio_cdev: Some("vfio0".into()),
            held_by,
            processes: pids
                .iter()
                .map(|&pid| ProcessHolder {
                    pid,
                    comm: "app".into(),
                    cmdline: "app".into(),
                    file: "/dev/vfio/6".into(),
                })
                .collect(),
        }
    }

    #[test]
    fn verdict_not_root_is_unknown_not_free() {
        // Not root: vfio-pci functions nobody was seen holding, with some fds unreadable.
        let v = decide(
            ResetScope::Bus,
            &[
                member("0000:01:00.0", HeldBy::VfioUnknown, &[]),
                member("0000:01:00.1", HeldBy::VfioUnknown, &[]),
            ],
            true,
            "",
        );
        assert_eq!(v.verdict, Verdict::Unknown);
        assert!(v.blockers.is_empty());
    }

    #[test]
    fn verdict_one_process_holding_part_blocks_others() {
        let v = decide(
            ResetScope::Bus,
            &[
                member("0000:01:00.0", HeldBy::Processes, &[7]),
                member("0000:01:00.1", HeldBy::VfioIdle, &[]),
            ],
            true,
            "",
        );
        assert_eq!(v.verdict, Verdict::Blocked);
        assert_eq!(
            v.blockers,
            ["0000:01:00.0 is owned by pid 7 (app) through /dev/vfio/6"]
        );
        let v = decide(
            ResetScope::Bus,
            &[
                member("0000:01:00.0", HeldBy::Processes, &[7]),
                member("0000:01:00.1", HeldBy::Processes, &[7]),
            ],
            true,
            "",
        );
        assert_eq!(v.verdict, Verdict::HeldByOne { pid: 7 });
        assert!(v.needs.is_empty());
    }

    #[test]
    fn verdict_no_iommu_blocks() {
        let v = decide(
            ResetScope::Bus,
            &[member("0000:01:00.0", HeldBy::VfioIdle, &[])],
            false,
            "",
        );
        assert_eq!(v.verdict, Verdict::Blocked);
        assert!(v.blockers[0].starts_with("no IOMMU"));
    }
}

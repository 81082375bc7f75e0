//! `userpci status` (the `pci::status` library) against the guest's real `/sys` and `/proc`:
//! every reset group it computes agrees with the kernel's `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`
//! for every member the test can open, a group it calls resettable after setup takes a
//! `VFIO_DEVICE_PCI_HOT_RESET` once everything it lists is opened, and a group it calls
//! blocked (a member held by a second process, or a member left unbound) refuses one.

use std::collections::BTreeSet;

use userpci_framework::device::PciFunction;
use userpci_framework::pci::devset::ResetScope;
use userpci_framework::pci::status::{
    read_status, GroupStatus, HeldBy, StatusSources, SystemStatus, Verdict,
};
use userpci_framework::pci::PciAddress;

use super::support::{self, HeldElsewhere};
use crate::harness::{Ctx, Failure, TestResult, SLOT1_FN0, SLOT1_FN1};
use crate::{ensure, fail, note};

fn status() -> Result<SystemStatus, Failure> {
    read_status(&StatusSources::default()).map_err(|e| Failure(format!("status: {e}")))
}

fn address(text: &str) -> Result<PciAddress, Failure> {
    text.parse()
        .map_err(|e| Failure(format!("status printed address {text:?}: {e}")))
}

fn group_of(s: &SystemStatus, addr: PciAddress) -> Result<&GroupStatus, Failure> {
    let text = addr.to_string();
    s.groups
        .iter()
        .find(|g| g.members.iter().any(|m| m.address == text))
        .ok_or_else(|| Failure(format!("status has no reset group holding {addr}")))
}

fn member_set(g: &GroupStatus) -> Result<BTreeSet<PciAddress>, Failure> {
    g.members.iter().map(|m| address(&m.address)).collect()
}

/// Every member on vfio-pci, opened alone: the kernel's hot-reset info lists exactly the
/// group status computed (or, for a function-scope group, has no hot reset at all).
pub fn status_groups_match_hot_reset_info(ctx: &Ctx) -> TestResult {
    let s = status()?;
    ensure!(
        s.iommu.present,
        "status says no IOMMU; the guest runs intel_iommu=on"
    );
    ensure!(
        s.holders.complete,
        "as root every /proc/<pid>/fd is readable"
    );
    let mut checked = 0;
    for g in &s.groups {
        let expected = member_set(g)?;
        for m in &g.members {
            if m.held_by != HeldBy::VfioIdle {
                continue;
            }
            let addr = address(&m.address)?;
            let vfio = support::context(ctx)?;
            let f = support::open(ctx, &vfio, addr)?;
            let info = f.hot_reset_info()?;
            match (g.scope, info) {
                (ResetScope::Function, None) => {}
                (ResetScope::Function, Some(info)) => fail!(
                    "{addr}: status says no slot or bus reset reaches it, the kernel lists {:?}",
                    info.devices.iter().map(|d| d.address).collect::<Vec<_>>()
                ),
                (scope, None) => {
                    fail!("{addr}: status says a {scope} reset reaches it, the kernel: ENODEV")
                }
                (_, Some(info)) => {
                    let kernel: BTreeSet<PciAddress> =
                        info.devices.iter().map(|d| d.address).collect();
                    ensure!(
                        kernel == expected,
                        "{addr}: status group {expected:?}, kernel's hot-reset info {kernel:?}"
                    );
                }
            }
            checked += 1;
        }
        note!(
            "group {} ({}): {:?}, verdict {:?}",
            g.id,
            g.scope,
            expected,
            g.verdict
        );
    }
    ensure!(
        checked >= 4,
        "only {checked} members were on vfio-pci to check"
    );
    note!("{checked} members agree with VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
    Ok(())
}

/// Groups status calls resettable after setup, with every member on vfio-pci: open what
/// it says (every member, one context) and the hot reset goes through.
pub fn status_after_setup_resets(ctx: &Ctx) -> TestResult {
    let s = status()?;
    let mut reset = 0;
    for g in &s.groups {
        let all_vfio = g.members.iter().all(|m| m.held_by == HeldBy::VfioIdle);
        if g.verdict != Verdict::AfterSetup || !all_vfio {
            continue;
        }
        ensure!(
            g.needs.iter().all(|n| n.starts_with("open ")),
            "group {}: members are on vfio-pci yet status needs {:?}",
            g.id,
            g.needs
        );
        let vfio = support::context(ctx)?;
        let mut opened = Vec::new();
        for m in &g.members {
            opened.push(support::open(ctx, &vfio, address(&m.address)?)?);
        }
        let first = opened
            .first()
            .ok_or_else(|| Failure(format!("group {} has no members", g.id)))?;
        first
            .reset_group_hot()
            .map_err(|e| Failure(format!("group {}: status said resettable: {e}", g.id)))?;
        note!(
            "group {} ({}, {} members): hot reset done",
            g.id,
            g.scope,
            opened.len()
        );
        reset += 1;
    }
    ensure!(reset >= 1, "no group was resettable after setup");
    Ok(())
}

/// A second process holds 01:00.1: status names it and says this process cannot reset the
/// slot (blocked, or held entirely by that process through the shared group fd), and this
/// process indeed cannot. Then 01:00.1 unbound: status asks to bind it, and a reset with
/// 01:00.0 alone is refused.
pub fn status_blocked_is_refused(ctx: &Ctx) -> TestResult {
    let held = HeldElsewhere::start(ctx, SLOT1_FN1)?;
    let s = status()?;
    let g = group_of(&s, SLOT1_FN0)?.clone();
    let attempt = (|| -> Result<(), String> {
        let vfio = support::context(ctx).map_err(|e| e.0)?;
        let f = support::open(ctx, &vfio, SLOT1_FN0).map_err(|e| e.0)?;
        f.reset_group_hot().map_err(|e| e.to_string())
    })();
    held.release()?;
    note!(
        "held elsewhere: verdict {:?}, blockers {:?}",
        g.verdict,
        g.blockers
    );
    let ours = std::process::id();
    match g.verdict {
        // cdev mode: the helper bound 01:00.1 alone to its iommufd; 01:00.0 is free but
        // nobody else can take it (the IOMMU group is claimed): blocked, naming the holder.
        Verdict::Blocked => {
            let prefix = format!("{SLOT1_FN1} is owned by pid ");
            ensure!(
                g.blockers.iter().any(|b| b.starts_with(&prefix)),
                "no blocker names the holder of {SLOT1_FN1}: {:?}",
                g.blockers
            );
        }
        // Group mode: the helper's group fd /dev/vfio/<g> covers both functions (one IOMMU
        // group): it, and only it, could reset the slot.
        Verdict::HeldByOne { pid } if pid != ours => {
            let file = format!("/dev/vfio/{}", ctx.iommu_group(SLOT1_FN1)?);
            ensure!(
                g.members
                    .iter()
                    .all(|m| m.processes.iter().any(|p| p.pid == pid && p.file == file)),
                "held by pid {pid}, but not every member shows it through {file}: {:?}",
                g.members
            );
        }
        ref other => fail!("held by a second process, verdict {other:?}"),
    }
    match attempt {
        Ok(()) => fail!("status said blocked, yet the hot reset went through"),
        Err(e) => note!("refused as status said: {e}"),
    }

    support::unbind_to_no_driver(ctx, SLOT1_FN1)?;
    let outcome = unbound_case(ctx);
    let restored = support::rebind_vfio(ctx, SLOT1_FN1);
    outcome?;
    restored
}

fn unbound_case(ctx: &Ctx) -> TestResult {
    let s = status()?;
    let g = group_of(&s, SLOT1_FN0)?;
    let wanted = format!("bind {SLOT1_FN1} to vfio-pci");
    ensure!(
        g.needs.contains(&wanted),
        "{SLOT1_FN1} unbound, status needs {:?}",
        g.needs
    );
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT1_FN0)?;
    match f.reset_group_hot() {
        Ok(()) => fail!(
            "{SLOT1_FN1} unbound, yet the hot reset of {} went through",
            f.address()
        ),
        Err(e) => note!("{SLOT1_FN1} unbound: refused as status said: {e}"),
    }
    Ok(())
}

//! Reset groups through VFIO: who a bus or slot reset would hit, who owns each of them, and
//! `VFIO_DEVICE_PCI_HOT_RESET`.
//!
//! # Ownership, as the kernel decides it
//! - **Group mode**: the kernel reports each member's IOMMU group. A member is owned when this
//!   process holds its group (the group fd is the proof the hot reset asks for) *and* it is
//!   bound to vfio-pci (`vfio_pci_dev_set_resettable` wants every function of the bus or slot
//!   in the VFIO device set). A member of a held group that nobody opened is still owned, as
//!   the kernel counts it.
//! - **cdev mode**: the kernel reports device ids: a real id (bound to this context's
//!   iommufd) or `VFIO_PCI_DEVID_OWNED` (not bound, but its IOMMU group is owned through a
//!   device that is) are owned; `VFIO_PCI_DEVID_NOT_OWNED` is not.
//!
//! The kernel never says *who* holds a member it does not count as ours. sysfs tells one case
//! apart: a member bound to a kernel driver (`nvme`) is [`Ownership::OwnedElsewhere`] with
//! owner `kernel driver nvme`. Every other unowned member (bound to vfio-pci but opened by
//! another process or not at all, or bound to no driver) is [`Ownership::Unopened`]: the
//! kernel gives no way to tell whether another process holds it, short of scanning every
//! process's fds, which this backend does not do.

use std::collections::BTreeSet;
use std::os::fd::BorrowedFd;

use super::is_vfio_driver;
use super::reply::{
    hot_reset_info_count, hot_reset_retry_len, parse_hot_reset_info, DependentId, HotResetInfo,
};
use super::shared::{ioctl_error, BackendKind};
use super::sys::{VfioSys, HOT_RESET_INFO_HEADER};
use crate::device::{Ownership, ResetGroupMember, ResetMethod};
use crate::error::{Error, Result};
use crate::pci::{PciAddress, SysfsPci};

/// Most times the hot-reset info is retried after ENOSPC (the bus may change between calls).
const INFO_RETRIES: usize = 4;

/// The refusal when no slot or bus reset reaches the function, worded as the simulated bus's.
const NO_BUS_RESET: &str =
    "no slot or bus reset can reach this function (root bus, or bus reset disabled on its bridge)";

/// What a reset query needs of an open function: who it is, its device fd and how its context
/// reaches the IOMMU. `VfioFunction` lends one out, so this file sits below the function.
pub(super) struct ResetTarget<'a> {
    pub(super) address: PciAddress,
    pub(super) iommu_group: u32,
    pub(super) reset_methods: &'a [ResetMethod],
    pub(super) fd: BorrowedFd<'a>,
    pub(super) sys: &'a dyn VfioSys,
    pub(super) sysfs: &'a SysfsPci,
    pub(super) backend: &'a BackendKind,
}

/// A member of the reset group, and why it blocks a hot reset if it does.
pub(super) struct MemberView {
    pub(super) member: ResetGroupMember,
    pub(super) blocker: Option<String>,
}

/// `reset_method` as sysfs spells it, `none` when empty.
pub(super) fn methods_text(methods: &[ResetMethod]) -> String {
    if methods.is_empty() {
        return "none".to_string();
    }
    methods
        .iter()
        .map(|m| m.sysfs_name())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `VFIO_DEVICE_GET_PCI_HOT_RESET_INFO`: a header-only call first; on ENOSPC, room for the
/// count the kernel wrote back, and again. `None` on ENODEV (no slot or bus reset).
pub(super) fn query_info(target: &ResetTarget<'_>) -> Result<Option<HotResetInfo>> {
    let address = target.address;
    let mut buf = vec![0u8; HOT_RESET_INFO_HEADER];
    for _ in 0..INFO_RETRIES {
        match target
            .sys
            .device_get_pci_hot_reset_info(target.fd, &mut buf)
        {
            Ok(()) => {
                return parse_hot_reset_info(&buf)
                    .map(Some)
                    .map_err(|reason| Error::VfioReply {
                        context: address.to_string(),
                        ioctl: "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
                        reason,
                    })
            }
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                let count = hot_reset_info_count(&buf).unwrap_or(0);
                let len =
                    hot_reset_retry_len(count, buf.len()).map_err(|reason| Error::VfioReply {
                        context: address.to_string(),
                        ioctl: "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
                        reason,
                    })?;
                buf = vec![0u8; len];
            }
            Err(e) if e.raw_os_error() == Some(libc::ENODEV) => return Ok(None),
            Err(e) => {
                return Err(ioctl_error(
                    address,
                    "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
                    e,
                ))
            }
        }
    }
    Err(Error::VfioReply {
        context: address.to_string(),
        ioctl: "VFIO_DEVICE_GET_PCI_HOT_RESET_INFO",
        reason: format!("still ENOSPC after {INFO_RETRIES} larger buffers"),
    })
}

/// The reset group with each member's ownership and, for the unowned, the blocker text. With
/// no slot or bus reset, the function alone.
pub(super) fn members(target: &ResetTarget<'_>) -> Result<Vec<MemberView>> {
    Ok(views(target)?.unwrap_or_else(|| {
        vec![MemberView {
            member: ResetGroupMember {
                address: target.address,
                iommu_group: Some(target.iommu_group),
                reset_methods: target.reset_methods.to_vec(),
                ownership: Ownership::Owned,
            },
            blocker: None,
        }]
    }))
}

/// The members as the hot-reset info reports them; `None` without a slot or bus reset.
fn views(target: &ResetTarget<'_>) -> Result<Option<Vec<MemberView>>> {
    let Some(info) = query_info(target)? else {
        return Ok(None);
    };
    let sysfs = target.sysfs;
    Ok(Some(
        info.devices
            .iter()
            .map(|dev| {
                let address = dev.address;
                let sys_info = sysfs.function(address).ok();
                let driver = sys_info.as_ref().and_then(|i| i.driver.clone());
                let iommu_group = match dev.id {
                    DependentId::Group(group) => Some(group),
                    _ => sys_info.as_ref().and_then(|i| i.iommu_group),
                };
                let group_text = iommu_group.map_or_else(|| "?".to_string(), |g| g.to_string());
                let unowned = |hint: &str| -> (Ownership, Option<String>) {
                    match driver.as_deref() {
                        Some(d) if !is_vfio_driver(Some(d)) => {
                            let owner = format!("kernel driver {d}");
                            let blocker = format!("{address} is owned by {owner}");
                            (Ownership::OwnedElsewhere { owner }, Some(blocker))
                        }
                        Some(_) => (
                            Ownership::Unopened,
                            Some(format!(
                                "{address} is not opened through this VFIO context (IOMMU group \
                             {group_text}): {hint}"
                            )),
                        ),
                        None => (
                            Ownership::Unopened,
                            Some(format!(
                                "{address} has no driver (IOMMU group {group_text}): bind it to \
                             vfio-pci and open it in this process"
                            )),
                        ),
                    }
                };
                let (ownership, blocker) = match dev.id {
                    DependentId::Group(group) => {
                        let held = match target.backend {
                            BackendKind::Group(container) => container.group(group).is_some(),
                            BackendKind::Iommufd(_) => false,
                        };
                        if held && is_vfio_driver(driver.as_deref()) {
                            (Ownership::Owned, None)
                        } else {
                            unowned("open its IOMMU group in this process")
                        }
                    }
                    DependentId::DevId(_) | DependentId::OwnedThroughGroup => {
                        (Ownership::Owned, None)
                    }
                    DependentId::NotOwned => unowned("open it through this VFIO context"),
                };
                MemberView {
                    member: ResetGroupMember {
                        address,
                        iommu_group,
                        reset_methods: sys_info.map(|i| i.reset_methods).unwrap_or_default(),
                        ownership,
                    },
                    blocker,
                }
            })
            .collect(),
    ))
}

/// `VFIO_DEVICE_PCI_HOT_RESET`, refused up front (naming every blocker) unless every member is
/// owned.
pub(super) fn hot_reset(target: &ResetTarget<'_>) -> Result<()> {
    let address = target.address;
    let Some(views) = views(target)? else {
        return Err(Error::HotResetRefused {
            device: address,
            blockers: NO_BUS_RESET.to_string(),
        });
    };
    let blockers: Vec<String> = views.iter().filter_map(|v| v.blocker.clone()).collect();
    if !blockers.is_empty() {
        return Err(Error::HotResetRefused {
            device: address,
            blockers: blockers.join("; "),
        });
    }
    // Group mode: the fd of every affected group, each once. cdev mode: none at all.
    let groups: Vec<_> = match target.backend {
        BackendKind::Group(container) => {
            let ids: BTreeSet<u32> = views.iter().filter_map(|v| v.member.iommu_group).collect();
            ids.into_iter()
                .filter_map(|id| container.group(id))
                .collect()
        }
        BackendKind::Iommufd(_) => Vec::new(),
    };
    let fds: Vec<BorrowedFd<'_>> = groups.iter().map(|g| g.fd()).collect();
    tracing::debug!(device = %address, groups = fds.len(), "VFIO: hot reset");
    let Err(source) = target.sys.device_pci_hot_reset(target.fd, &fds) else {
        return Ok(());
    };
    let errno = source.raw_os_error();
    match errno {
        Some(libc::ENODEV) => Err(Error::HotResetRefused {
            device: address,
            blockers: NO_BUS_RESET.to_string(),
        }),
        Some(libc::EINVAL | libc::EPERM | libc::EBUSY) => {
            // Something changed between the check and the call: name what blocks now.
            let now: Vec<String> = members(target)
                .map(|v| v.into_iter().filter_map(|v| v.blocker).collect())
                .unwrap_or_default();
            let why = match errno {
                Some(libc::EBUSY) => {
                    "another user of a member holds it (a BAR access or reset in progress); retry"
                }
                Some(libc::EPERM) => "a member has no IOMMU group (it is not isolated)",
                _ => {
                    "a member is not in the VFIO device set or not owned by this process's \
                     groups or iommufd"
                }
            };
            let mut text = format!("the kernel refused ({source}): {why}");
            if !now.is_empty() {
                text = format!("{}; {text}", now.join("; "));
            }
            Err(Error::HotResetRefused {
                device: address,
                blockers: text,
            })
        }
        _ => Err(Error::VfioIoctl {
            context: address.to_string(),
            ioctl: "VFIO_DEVICE_PCI_HOT_RESET",
            hint: if errno == Some(libc::ENOTTY) {
                "; the bus reset did not complete: a link that does not retrain ends so (with \
                 QEMU, set x-speed on the root port)"
                    .to_string()
            } else {
                String::new()
            },
            source,
        }),
    }
}

//! The topology of `tests/vm/run.sh`'s QEMU machine, read through the framework's sysfs reader.

use std::os::unix::fs::FileTypeExt;
use std::path::Path;

use userpci_framework::device::ResetMethod;

use crate::harness::{
    Ctx, TestResult, HET_NVME, IGB_A, IGB_B, IGB_FUNCTIONS, NVME_FUNCTIONS, SLOT1_FN0, SLOT1_FN1,
    SLOT2_FN0,
};
use crate::{ensure, note};

/// NVMe class code: mass storage, non-volatile memory, NVM Express.
const CLASS_NVME: u32 = 0x01_08_02;
/// QEMU's NVMe controller (Red Hat vendor ID).
const QEMU_NVME: (u16, u16) = (0x1b36, 0x0010);

/// The three NVMe functions exist where the topology puts them, bound to vfio-pci.
pub fn nvme_functions(ctx: &Ctx) -> TestResult {
    let all = ctx.sysfs.list()?;
    let nvme: Vec<_> = all
        .iter()
        .filter(|f| f.class == CLASS_NVME)
        .map(|f| f.address)
        .collect();
    ensure!(
        nvme == NVME_FUNCTIONS,
        "NVMe functions (class {CLASS_NVME:#08x}) at {nvme:?}, expected {NVME_FUNCTIONS:?}"
    );
    for addr in NVME_FUNCTIONS {
        let f = ctx.function(addr)?;
        note!(
            "{addr}: {:04x}:{:04x} class {:#08x} driver {:?} group {:?} reset {:?} parent {:?} vfio-dev {:?}",
            f.vendor, f.device, f.class, f.driver, f.iommu_group, f.reset_methods, f.parent_bridge, f.vfio_dev
        );
        ensure!(
            (f.vendor, f.device) == QEMU_NVME,
            "{addr}: id {:04x}:{:04x}, expected QEMU NVMe {:04x}:{:04x}",
            f.vendor,
            f.device,
            QEMU_NVME.0,
            QEMU_NVME.1
        );
        ensure!(
            f.driver.as_deref() == Some("vfio-pci"),
            "{addr}: bound to {:?}, expected vfio-pci (the guest's /init binds it)",
            f.driver
        );
        ensure!(
            f.parent_bridge.is_some(),
            "{addr}: no parent bridge, expected a root port"
        );
    }
    let p1 = ctx.function(SLOT1_FN0)?.parent_bridge;
    let p2 = ctx.function(SLOT2_FN0)?.parent_bridge;
    ensure!(
        p1 != p2,
        "both slots behind the same bridge {p1:?}, expected two root ports"
    );
    Ok(())
}

/// Both functions of slot 1 share an IOMMU group (QEMU's NVMe has no ACS); slot 2 is alone.
pub fn iommu_groups(ctx: &Ctx) -> TestResult {
    let g0 = ctx.iommu_group(SLOT1_FN0)?;
    let g1 = ctx.iommu_group(SLOT1_FN1)?;
    let g2 = ctx.iommu_group(SLOT2_FN0)?;
    note!("groups: {SLOT1_FN0} {g0}, {SLOT1_FN1} {g1}, {SLOT2_FN0} {g2}");
    ensure!(
        g0 == g1,
        "{SLOT1_FN0} in group {g0} but {SLOT1_FN1} in group {g1}, expected one group"
    );
    ensure!(
        g2 != g0,
        "{SLOT2_FN0} shares group {g0} with slot 1, expected its own group"
    );
    let groups = ctx.sysfs.iommu_groups()?;
    let members0 = groups.get(&g0).cloned().unwrap_or_default();
    let members2 = groups.get(&g2).cloned().unwrap_or_default();
    ensure!(
        members0 == [SLOT1_FN0, SLOT1_FN1],
        "group {g0} has members {members0:?}, expected exactly slot 1's two functions"
    );
    ensure!(
        members2 == [SLOT2_FN0],
        "group {g2} has members {members2:?}, expected only {SLOT2_FN0}"
    );
    Ok(())
}

/// Function 0 of slot 1 offers FLR (the kernel lists `flr bus`; see tests/vm/README.md).
pub fn reset_methods(ctx: &Ctx) -> TestResult {
    for addr in NVME_FUNCTIONS {
        note!(
            "{addr}: reset_method {:?}",
            ctx.function(addr)?.reset_methods
        );
    }
    let methods = ctx.function(SLOT1_FN0)?.reset_methods;
    ensure!(
        methods.contains(&ResetMethod::Flr),
        "{SLOT1_FN0}: reset_method {methods:?} lacks flr"
    );
    Ok(())
}

/// QEMU's 82576 (`-device igb`).
const QEMU_IGB: (u16, u16) = (0x8086, 0x10c9);

/// The heterogeneous slot: an NVMe function and an igb function behind one root port (so one
/// reset group: a bus reset hits both), each in its own IOMMU group, because QEMU's igb has
/// an ACS capability and the NVMe does not (the kernel splits a multifunction slot's functions
/// into groups by ACS); the second igb alone behind its own root port; all bound to vfio-pci.
pub fn heterogeneous_slot(ctx: &Ctx) -> TestResult {
    for addr in IGB_FUNCTIONS {
        let f = ctx.function(addr)?;
        note!(
            "{addr}: {:04x}:{:04x} class {:#08x} driver {:?} group {:?} reset {:?} parent {:?}",
            f.vendor,
            f.device,
            f.class,
            f.driver,
            f.iommu_group,
            f.reset_methods,
            f.parent_bridge
        );
        ensure!(
            (f.vendor, f.device) == QEMU_IGB,
            "{addr}: id {:04x}:{:04x}, expected QEMU's 82576 {:04x}:{:04x}",
            f.vendor,
            f.device,
            QEMU_IGB.0,
            QEMU_IGB.1
        );
        ensure!(
            f.driver.as_deref() == Some("vfio-pci"),
            "{addr}: bound to {:?}, expected vfio-pci (the guest's /init binds it)",
            f.driver
        );
    }
    let (nvme, igb, igb_b) = (
        ctx.function(HET_NVME)?,
        ctx.function(IGB_A)?,
        ctx.function(IGB_B)?,
    );
    ensure!(
        nvme.parent_bridge.is_some() && nvme.parent_bridge == igb.parent_bridge,
        "{HET_NVME} behind {:?} but {IGB_A} behind {:?}, expected one root port",
        nvme.parent_bridge,
        igb.parent_bridge
    );
    ensure!(
        igb_b.parent_bridge != igb.parent_bridge,
        "{IGB_B} behind the heterogeneous slot's bridge, expected its own root port"
    );
    let groups = ctx.sysfs.iommu_groups()?;
    for addr in [HET_NVME, IGB_A, IGB_B] {
        let g = ctx.iommu_group(addr)?;
        let members = groups.get(&g).cloned().unwrap_or_default();
        ensure!(
            members == [addr],
            "{addr}: IOMMU group {g} has members {members:?}, expected {addr} alone"
        );
    }
    Ok(())
}

fn is_char_device(path: &Path) -> bool {
    std::fs::metadata(path)
        .map(|m| m.file_type().is_char_device())
        .unwrap_or(false)
}

/// cdev mode: `/dev/iommu`, and a `vfio-dev/vfioN` with its `/dev/vfio/devices/vfioN` per function.
pub fn devnodes_cdev(ctx: &Ctx) -> TestResult {
    ensure!(
        is_char_device(Path::new("/dev/iommu")),
        "/dev/iommu missing or not a character device"
    );
    let mut names = Vec::new();
    for addr in NVME_FUNCTIONS {
        let name = ctx.vfio_dev(addr)?;
        let node = Path::new("/dev/vfio/devices").join(&name);
        note!("{addr}: {}", node.display());
        ensure!(
            is_char_device(&node),
            "{addr}: {} missing or not a character device",
            node.display()
        );
        names.push(name);
    }
    names.sort();
    names.dedup();
    ensure!(
        names.len() == NVME_FUNCTIONS.len(),
        "vfio-dev names not distinct: {names:?}"
    );
    Ok(())
}

/// Group mode: `/dev/vfio/vfio` and `/dev/vfio/<group>` for both groups.
pub fn devnodes_group(ctx: &Ctx) -> TestResult {
    ensure!(
        is_char_device(Path::new("/dev/vfio/vfio")),
        "/dev/vfio/vfio missing or not a character device"
    );
    for addr in [SLOT1_FN0, SLOT2_FN0] {
        let group = ctx.iommu_group(addr)?;
        let node = format!("/dev/vfio/{group}");
        ensure!(
            is_char_device(Path::new(&node)),
            "{addr}: {node} missing or not a character device"
        );
    }
    // Without VFIO_DEVICE_CDEV, sysfs still has `vfio-dev/vfioN` (the class device exists either
    // way) but there is no `/dev/vfio/devices/vfioN`: the sysfs entry alone does not mean the
    // cdev interface is there.
    note!(
        "/dev/iommu {}, /dev/vfio/devices {}",
        if Path::new("/dev/iommu").exists() {
            "present"
        } else {
            "absent"
        },
        if Path::new("/dev/vfio/devices").exists() {
            "present"
        } else {
            "absent"
        },
    );
    Ok(())
}

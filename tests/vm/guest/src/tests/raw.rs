//! VFIO plumbing smoke tests through a tiny ioctl layer ([`crate::raw_vfio`]), independent of
//! the framework's VFIO backend.

use vfio_bindings::bindings::vfio;

use std::fs::OpenOptions;
use std::io::ErrorKind;

use crate::harness::{
    spawn_helper, Ctx, TestResult, NVME_FUNCTIONS, SLOT1_FN0, SLOT1_FN1, SLOT2_FN0,
};
use crate::raw_vfio::{device_flags, device_info, CdevDevice, Container, Iommufd};
use crate::{ensure, note};

/// What every QEMU NVMe function must report through `VFIO_DEVICE_GET_INFO`.
fn check_info(what: &str, info: &vfio::vfio_device_info) -> TestResult {
    note!(
        "{what}: flags {} regions {} irqs {}",
        device_flags(info.flags),
        info.num_regions,
        info.num_irqs
    );
    let want = vfio::VFIO_DEVICE_FLAGS_PCI | vfio::VFIO_DEVICE_FLAGS_RESET;
    ensure!(
        info.flags & want == want,
        "{what}: flags {}, expected PCI|RESET",
        device_flags(info.flags)
    );
    ensure!(
        info.num_regions >= vfio::VFIO_PCI_NUM_REGIONS,
        "{what}: {} regions, expected at least {}",
        info.num_regions,
        vfio::VFIO_PCI_NUM_REGIONS
    );
    ensure!(
        info.num_irqs >= vfio::VFIO_PCI_NUM_IRQS,
        "{what}: {} irq indexes, expected at least {}",
        info.num_irqs,
        vfio::VFIO_PCI_NUM_IRQS
    );
    Ok(())
}

/// cdev: `/dev/iommu` + IOAS, then per function open, bind, attach and `VFIO_DEVICE_GET_INFO`.
pub fn cdev_device_info(ctx: &Ctx) -> TestResult {
    let iommufd = Iommufd::open()?;
    note!("IOAS {}", iommufd.ioas_id);
    let mut devices = Vec::new();
    for addr in NVME_FUNCTIONS {
        let dev = CdevDevice::open(&ctx.vfio_dev(addr)?, &iommufd)?;
        let info = device_info(&dev.file, &dev.name)?;
        check_info(
            &format!("{addr} ({}, devid {})", dev.name, dev.devid),
            &info,
        )?;
        devices.push(dev);
    }
    let mut ids: Vec<u32> = devices.iter().map(|d| d.devid).collect();
    ids.sort_unstable();
    ids.dedup();
    ensure!(
        ids.len() == devices.len(),
        "device ids not distinct: {ids:?}"
    );
    Ok(())
}

/// Legacy: container with Type1v2, both groups viable, one device fd per function from its
/// group (slot 1's group gives both functions), `VFIO_DEVICE_GET_INFO` on each.
pub fn group_device_info(ctx: &Ctx) -> TestResult {
    let mut container = Container::open()?;
    let g_slot1 = container.add_group(ctx.iommu_group(SLOT1_FN0)?)?;
    let g_slot2 = container.add_group(ctx.iommu_group(SLOT2_FN0)?)?;
    for (group, addr) in [
        (&g_slot1, SLOT1_FN0),
        (&g_slot1, SLOT1_FN1),
        (&g_slot2, SLOT2_FN0),
    ] {
        let device = group.device(&addr.to_string())?;
        let info = device_info(&device, &format!("{addr} via {}", group.path))?;
        check_info(&format!("{addr} ({})", group.path), &info)?;
    }
    Ok(())
}

/// A VFIO group is single-open: while this process holds `/dev/vfio/<group>`, a second process
/// (the `open_group` helper) is refused with EBUSY. Exercises the second-process helper too.
pub fn group_exclusive(ctx: &Ctx) -> TestResult {
    let group = ctx.iommu_group(SLOT2_FN0)?;
    let path = format!("/dev/vfio/{group}");
    let held = OpenOptions::new().read(true).write(true).open(&path)?;
    let status = spawn_helper("open_group", &[&path])?.wait()?;
    drop(held);
    ensure!(
        status.code() == Some(0),
        "second process opening {path} while it is held: {status} (1: it succeeded, 2: other error)"
    );
    // Free again once this process let go.
    let again = OpenOptions::new().read(true).write(true).open(&path);
    ensure!(
        again.is_ok(),
        "{path} not reopenable after close: {:?}",
        again.err()
    );
    Ok(())
}

/// Helper `open_group <path>`: exit 0 if opening is refused with EBUSY, 1 if it succeeds, 2 on
/// any other error.
pub fn helper_open_group(args: &[String]) -> u8 {
    let Some(path) = args.first() else {
        eprintln!("open_group: missing path");
        return 2;
    };
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(_) => 1,
        Err(e) if e.kind() == ErrorKind::ResourceBusy => 0,
        Err(e) => {
            eprintln!("open_group: {path}: {e}");
            2
        }
    }
}

//! The framework's real VFIO backend (`backend::vfio`) on the guest kernel: BAR mapping, the
//! hot-reset info and ownership, hot resets, refusals, and the request interrupt on unbind.

use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use userpci_framework::backend::vfio::reply::{DependentId, HotResetInfo};
use userpci_framework::backend::vfio::{unbind_vfio, VfioFunction};
use userpci_framework::device::config::{COMMAND, COMMAND_MEMORY};
use userpci_framework::device::{Ownership, PciFunction, PciFunctionExt, RegisterIo};
use userpci_framework::pci::PciAddress;
use userpci_framework::Error as FwError;
use userpci_nvme::spec::registers::{self, Cap, Vs};
use userpci_nvme::{Controller, ControllerOptions, QpairOptions};

use super::nvme::write_then_check;
use super::support::{self, HeldElsewhere};
use crate::harness::{Ctx, Failure, Mode, TestResult, SLOT1_FN0, SLOT1_FN1, SLOT2_FN0};
use crate::{ensure, fail, note};

/// What the notes measured on this QEMU: `CAP` of QEMU 7.2's NVMe controller.
const QEMU_CAP: u64 = 0x0040_1820_0f01_07ff;
/// NVMe 1.4.
const QEMU_VS: u32 = 0x0001_0400;
/// A bus reset or FLR cannot be shorter: the kernel waits 100 ms after it (PCIe r6.0 6.6.1).
const RESET_MIN: Duration = Duration::from_millis(100);

/// One line per member of a hot-reset info reply.
fn describe(info: &HotResetInfo) -> String {
    let members: Vec<String> = info
        .devices
        .iter()
        .map(|d| format!("{} {:?}", d.address, d.id))
        .collect();
    format!("flags {:#x}: {}", info.flags, members.join(", "))
}

/// The hot-reset info of `f`, which must exist (the function has a slot or bus reset).
fn info_of(f: &VfioFunction) -> Result<HotResetInfo, Failure> {
    f.hot_reset_info()?.ok_or_else(|| {
        Failure(format!(
            "{}: no hot-reset info (ENODEV), expected a bus reset",
            f.address()
        ))
    })
}

/// The id the kernel reported for `addr`.
fn id_of(info: &HotResetInfo, addr: PciAddress) -> Result<DependentId, Failure> {
    info.devices
        .iter()
        .find(|d| d.address == addr)
        .map(|d| d.id)
        .ok_or_else(|| {
            Failure(format!(
                "{addr} missing from the hot-reset info: {}",
                describe(info)
            ))
        })
}

/// BAR0 of 01:00.0 through the backend: `CAP` and `VS` of QEMU's NVMe controller.
pub fn bar0_cap_vs(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT1_FN0)?;
    let (vendor, device) = f.ids()?;
    note!(
        "{SLOT1_FN0}: {vendor:04x}:{device:04x}, mode {} ({}), devid {:?}, IOMMU group {}, \
         device flags {:#x}, config {} bytes, {} MSI-X vectors, error irq {}, request irq {}",
        f.mode(),
        vfio.mode_reason().unwrap_or_default(),
        f.devid(),
        f.iommu_group(),
        f.device_flags(),
        f.config_size(),
        f.msix_capacity(),
        f.error_interrupt().is_some(),
        f.request_interrupt().is_some()
    );
    ensure!(
        f.config_size() == 4096,
        "config region {} bytes, expected 4096 (PCIe)",
        f.config_size()
    );
    // VFIO refuses BAR access (SIGBUS) while memory decoding is off: turn it on for the reads.
    let old = f.update_command(COMMAND_MEMORY, 0)?;
    let bar = f.map_bar(0)?;
    let cap = Cap(bar.read64(registers::CAP));
    let vs = bar.read32(registers::VS);
    f.write_config_u16(COMMAND, old)?;
    note!(
        "BAR0 {} bytes: CAP {:#018x} (MQES {}, TO {} = {} ms, DSTRD {}, CSS {:#x}, MPSMIN {}), \
         VS {:#010x} ({})",
        bar.len(),
        cap.0,
        cap.mqes(),
        cap.to(),
        cap.timeout_ms(),
        cap.dstrd(),
        cap.css(),
        cap.mpsmin(),
        vs,
        Vs(vs)
    );
    ensure!(bar.len() >= 0x2000, "BAR0 only {} bytes", bar.len());
    ensure!(cap.mqes() == 2047, "CAP.MQES {}, expected 2047", cap.mqes());
    ensure!(cap.to() == 15, "CAP.TO {}, expected 15", cap.to());
    ensure!(cap.dstrd() == 0, "CAP.DSTRD {}, expected 0", cap.dstrd());
    ensure!(
        cap.css() & Cap::CSS_NVM != 0,
        "CAP.CSS {:#x} lacks NVM",
        cap.css()
    );
    ensure!(vs == QEMU_VS, "VS {vs:#010x}, expected {QEMU_VS:#010x}");
    if cap.0 != QEMU_CAP {
        note!("CAP differs from the notes' {QEMU_CAP:#018x} (fields checked above agree)");
    }
    Ok(())
}

/// The hot-reset info of 01:00.0 lists both functions of the slot with the right ownership,
/// with only 01:00.0 open and with both open; 02:00.0's lists only itself.
pub fn hot_reset_info_slot(ctx: &Ctx) -> TestResult {
    let group = ctx.iommu_group(SLOT1_FN0)?;
    let vfio = support::context(ctx)?;
    let f0 = support::open(ctx, &vfio, SLOT1_FN0)?;
    let info = info_of(&f0)?;
    note!("only {SLOT1_FN0} open: {}", describe(&info));
    let mut members: Vec<PciAddress> = info.devices.iter().map(|d| d.address).collect();
    members.sort();
    ensure!(
        members == [SLOT1_FN0, SLOT1_FN1],
        "members {members:?}, expected both functions of slot 1"
    );
    match ctx.mode {
        Mode::Cdev => {
            ensure!(
                info.uses_dev_ids() && info.all_owned() == Some(true),
                "flags {:#x}, expected DEV_ID|DEV_ID_OWNED",
                info.flags
            );
            let devid = f0
                .devid()
                .ok_or_else(|| Failure("no devid in cdev mode".into()))?;
            ensure!(
                id_of(&info, SLOT1_FN0)? == DependentId::DevId(devid),
                "{SLOT1_FN0}: {:?}, expected its devid {devid}",
                id_of(&info, SLOT1_FN0)?
            );
            ensure!(
                id_of(&info, SLOT1_FN1)? == DependentId::OwnedThroughGroup,
                "{SLOT1_FN1}: {:?}, expected VFIO_PCI_DEVID_OWNED (owned through the group)",
                id_of(&info, SLOT1_FN1)?
            );
        }
        Mode::Group => {
            ensure!(
                !info.uses_dev_ids(),
                "flags {:#x}: device ids in group mode",
                info.flags
            );
            for addr in [SLOT1_FN0, SLOT1_FN1] {
                ensure!(
                    id_of(&info, addr)? == DependentId::Group(group),
                    "{addr}: {:?}, expected group {group}",
                    id_of(&info, addr)?
                );
            }
        }
    }
    let view = f0.reset_group()?;
    note!("reset group as the backend reports it: {view:?}");
    ensure!(
        view.iter().all(|m| m.ownership == Ownership::Owned),
        "not every member owned with {SLOT1_FN0} open: {view:?}"
    );

    let f1 = support::open(ctx, &vfio, SLOT1_FN1)?;
    for (seen_from, f) in [(SLOT1_FN0, &f0), (SLOT1_FN1, &f1)] {
        let info = info_of(f)?;
        note!("both open, seen from {seen_from}: {}", describe(&info));
        for (addr, opened) in [(SLOT1_FN0, &f0), (SLOT1_FN1, &f1)] {
            let expected = match ctx.mode {
                Mode::Cdev => DependentId::DevId(opened.devid().unwrap_or(0)),
                Mode::Group => DependentId::Group(group),
            };
            ensure!(
                id_of(&info, addr)? == expected,
                "seen from {seen_from}: {addr} {:?}, expected {expected:?}",
                id_of(&info, addr)?
            );
        }
        if ctx.mode == Mode::Cdev {
            ensure!(
                info.all_owned() == Some(true),
                "flags {:#x} lack DEV_ID_OWNED",
                info.flags
            );
        }
    }

    let f2 = support::open(ctx, &vfio, SLOT2_FN0)?;
    let info = info_of(&f2)?;
    note!("{SLOT2_FN0}: {}", describe(&info));
    ensure!(
        info.devices.len() == 1 && info.devices[0].address == SLOT2_FN0,
        "{SLOT2_FN0} should be alone in its reset group: {}",
        describe(&info)
    );
    Ok(())
}

/// With both functions of the slot open in one context, a hot reset succeeds in about 110 ms
/// and both controllers come back (recovered by the driver, data intact).
pub fn hot_reset_both_owned(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f0 = Arc::new(support::open(ctx, &vfio, SLOT1_FN0)?);
    let f1 = Arc::new(support::open(ctx, &vfio, SLOT1_FN1)?);
    let mut ctrls = Vec::new();
    let mut qps = Vec::new();
    for (tag, f) in [(0x11u64, &f0), (0x12, &f1)] {
        let ctrl = Controller::new(Arc::clone(f), ControllerOptions::default())?;
        let mut qp = ctrl.create_io_qpair::<u64, _>(QpairOptions {
            entries: 32,
            ..QpairOptions::default()
        })?;
        write_then_check(&ctrl, &mut qp, 4096, 64, tag, 1, true)?;
        ctrls.push(ctrl);
        qps.push(qp);
    }
    for ctrl in &ctrls {
        ctrl.quiesce_for_reset();
    }
    let t0 = Instant::now();
    f0.reset_group_hot()?;
    let took = t0.elapsed();
    support::note_time("VFIO_DEVICE_PCI_HOT_RESET (slot 1, both functions)", took);
    ensure!(
        took >= RESET_MIN,
        "the hot reset returned after {took:?}: too fast for a secondary bus reset"
    );
    ensure!(took < Duration::from_secs(2), "the hot reset took {took:?}");
    for (ctrl, f) in ctrls.iter().zip([&f0, &f1]) {
        ensure!(
            f.ids()? == (0x1b36, 0x0010),
            "{}: config reads after the reset: {:04x?}",
            f.address(),
            f.ids()?
        );
        let t = Instant::now();
        ctrl.recover()?;
        support::note_time(&format!("{}: driver recovery", ctrl.device()), t.elapsed());
    }
    for (tag, (ctrl, qp)) in [0x11u64, 0x12]
        .into_iter()
        .zip(ctrls.iter().zip(qps.iter_mut()))
    {
        write_then_check(ctrl, qp, 4096, 64, tag, 1, false)?;
        write_then_check(ctrl, qp, 8192, 64, tag, 2, true)?;
        ensure!(
            ctrl.resets() == 1,
            "{}: {} resets",
            ctrl.device(),
            ctrl.resets()
        );
    }
    drop(qps);
    for ctrl in &ctrls {
        support::disable(ctrl)?;
    }
    Ok(())
}

/// A hot reset refused because another owner holds part of the slot.
///
/// Both functions of slot 1 are in one IOMMU group (QEMU's NVMe has no ACS), and the kernel
/// gives a group to one owner at a time: in group mode the group fd opens once; in cdev mode
/// the first `VFIO_DEVICE_BIND_IOMMUFD` claims the group's DMA ownership for that iommufd, so a
/// bind of the other function to another iommufd is EBUSY. A second process therefore cannot
/// hold 01:00.1 while this one holds 01:00.0: whoever holds one function holds the slot. What
/// this topology can show, and this test checks:
///
/// 1. with the slot held by a second process (the `hold_function` helper opened 01:00.1), this
///    process cannot open 01:00.0 at all: EBUSY, naming the device or group;
/// 2. with 01:00.1 out of the VFIO device set (unbound, as when another owner's kernel driver
///    had taken it, minus the group conflict), the hot reset of 01:00.0 is refused up front,
///    naming 01:00.1, and nothing is reset (the controller keeps running).
pub fn hot_reset_refused_second_process(ctx: &Ctx) -> TestResult {
    // 1. A second process holds the slot.
    let held = HeldElsewhere::start(ctx, SLOT1_FN1)?;
    let vfio = support::context(ctx)?;
    let refused = vfio.open(SLOT1_FN0);
    held.release()?;
    match refused {
        Ok(_) => {
            fail!("{SLOT1_FN0} opened while a second process holds {SLOT1_FN1} (same IOMMU group)")
        }
        Err(err @ FwError::VfioBusy { .. }) => {
            let text = err.to_string();
            note!("open refused while a second process holds the slot: {text}");
            let group = ctx.iommu_group(SLOT1_FN0)?;
            ensure!(
                text.contains(&SLOT1_FN0.to_string())
                    || text.contains(&format!("/dev/vfio/{group}")),
                "the refusal names neither {SLOT1_FN0} nor its group: {text}"
            );
        }
        Err(other) => fail!("open of {SLOT1_FN0} failed, but not with EBUSY: {other}"),
    }
    drop(vfio);

    // 2. 01:00.1 leaves the VFIO device set.
    support::unbind_to_no_driver(ctx, SLOT1_FN1)?;
    let outcome = refused_hot_reset(ctx);
    let restored = support::rebind_vfio(ctx, SLOT1_FN1);
    outcome?;
    restored
}

/// 01:00.0 open and running, 01:00.1 unbound: the hot reset is refused naming 01:00.1, and
/// the controller was not reset.
fn refused_hot_reset(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f0 = support::open(ctx, &vfio, SLOT1_FN0)?;
    let info = info_of(&f0)?;
    note!("{SLOT1_FN1} unbound: {}", describe(&info));
    let view = f0.reset_group()?;
    note!("reset group: {view:?}");
    let fn1 = view
        .iter()
        .find(|m| m.address == SLOT1_FN1)
        .ok_or_else(|| {
            Failure(format!(
                "{SLOT1_FN1} missing from the reset group: {view:?}"
            ))
        })?;
    ensure!(
        fn1.ownership != Ownership::Owned,
        "{SLOT1_FN1} reported owned while unbound"
    );
    if ctx.mode == Mode::Cdev {
        ensure!(
            id_of(&info, SLOT1_FN1)? == DependentId::NotOwned && info.all_owned() == Some(false),
            "cdev: {SLOT1_FN1} {:?}, flags {:#x}: expected NOT_OWNED without DEV_ID_OWNED",
            id_of(&info, SLOT1_FN1)?,
            info.flags
        );
    }
    let ctrl = Controller::new(f0, ControllerOptions::default())?;
    let mut qp = ctrl.create_io_qpair::<u64, _>(QpairOptions {
        entries: 16,
        ..QpairOptions::default()
    })?;
    write_then_check(&ctrl, &mut qp, 12288, 16, 0x13, 1, true)?;
    let t0 = Instant::now();
    let result = ctrl.function().reset_group_hot();
    let took = t0.elapsed();
    match result {
        Ok(()) => fail!("the hot reset succeeded with {SLOT1_FN1} outside the VFIO device set"),
        Err(err @ FwError::HotResetRefused { .. }) => {
            let text = err.to_string();
            note!("refused in {:.1} ms: {text}", took.as_secs_f64() * 1e3);
            ensure!(
                text.contains(&SLOT1_FN1.to_string()),
                "the refusal does not name {SLOT1_FN1}: {text}"
            );
        }
        Err(other) => fail!("the hot reset failed, but not as a refusal: {other}"),
    }
    // Nothing was reset: the controller still runs, with its queues.
    write_then_check(&ctrl, &mut qp, 12288, 16, 0x13, 1, false)?;
    ensure!(ctrl.resets() == 0, "{} driver resets", ctrl.resets());
    drop(qp);
    support::disable(&ctrl)
}

/// The request interrupt on unbind: with 01:00.0 open, an unbind from vfio-pci (another thread)
/// blocks and the kernel signals the request eventfd; dropping the function releases the
/// device and the unbind completes. 01:00.0 is bound to vfio-pci again afterwards.
pub fn request_irq_on_unbind(ctx: &Ctx) -> TestResult {
    let outcome = unbind_while_open(ctx);
    let driver = support::driver_of(ctx, SLOT1_FN0)?;
    note!("{SLOT1_FN0} after the unbind: driver {driver:?}");
    let restored = if driver.as_deref() == Some("vfio-pci") {
        Ok(())
    } else {
        let t = Instant::now();
        let r = support::rebind_vfio(ctx, SLOT1_FN0);
        support::note_time("bind_vfio back", t.elapsed());
        r
    };
    outcome?;
    restored
}

fn unbind_while_open(ctx: &Ctx) -> TestResult {
    let vfio = support::context(ctx)?;
    let f = support::open(ctx, &vfio, SLOT1_FN0)?;
    let request = f.request_interrupt().ok_or_else(|| {
        Failure("no request interrupt registered (VFIO_PCI_REQ_IRQ_INDEX)".into())
    })?;
    ensure!(
        request.take()? == 0,
        "request eventfd fired before any unbind"
    );
    let log_before = support::kernel_log();
    let (tx, rx) = mpsc::channel();
    let t0 = Instant::now();
    let unbinder = std::thread::spawn(move || {
        // Blocks in the kernel until every fd of the device is closed.
        let result = unbind_vfio(SLOT1_FN0);
        let _ = tx.send(Instant::now());
        result
    });
    let fired = request.event().wait(Duration::from_secs(15))?;
    let fired_after = t0.elapsed();
    if fired == 0 {
        // Release anyway, so the unbind thread can finish.
        drop(f);
        drop(vfio);
        let _ = unbinder.join();
        fail!("no request interrupt within 15 s of the unbind");
    }
    support::note_time(&format!("request eventfd fired ({fired}x)"), fired_after);
    ensure!(
        rx.try_recv().is_err(),
        "the unbind returned while the device was still open"
    );
    drop(f);
    drop(vfio);
    let released = Instant::now();
    let done = rx
        .recv_timeout(Duration::from_secs(10))
        .map_err(|_| Failure("the unbind did not complete within 10 s of the release".into()))?;
    support::note_time(
        "unbind completed after the release",
        done.saturating_duration_since(released),
    );
    let report = unbinder
        .join()
        .map_err(|_| Failure("the unbind thread panicked".into()))??;
    note!("unbind report: {report:?}");
    for line in support::kernel_log_since(&log_before)
        .iter()
        .filter(|l| l.contains("01:00.0"))
        .take(6)
    {
        note!("kernel: {line}");
    }
    Ok(())
}

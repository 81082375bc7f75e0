//! The VFIO backends end to end against the fake kernel (`FakeVfio`) and a sysfs fixture built
//! from a real guest's capture (`fixtures/sysfs-q35-nvme-multifunction.txt`: NVMe 01:00.0 and
//! 01:00.1 in IOMMU group 6, NVMe 02:00.0 in group 7, e1000e 03:00.0 in group 8), and, read
//! only, against this machine.

use std::fs;
use std::path::Path;
use std::sync::Arc;

use userpci_framework::backend::vfio::fake::{FakeCall, FakeFunction, FakeVfio};
use userpci_framework::backend::vfio::{
    Binder, ModeChoice, VfioContext, VfioFunction, VfioMode, VfioOptions,
};
use userpci_framework::device::{Ownership, PciFunction, PciFunctionExt, RegisterIo, ResetMethod};
use userpci_framework::dma::{DmaDirection, IovaRange};
use userpci_framework::pci::PciAddress;
use userpci_framework::Error;

// VFIO uAPI values used in assertions (include/uapi/linux/vfio.h).
const VFIO_PCI_MSIX_IRQ_INDEX: u32 = 2;
const VFIO_PCI_ERR_IRQ_INDEX: u32 = 3;
const VFIO_PCI_REQ_IRQ_INDEX: u32 = 4;
const VFIO_IRQ_SET_DATA_NONE: u32 = 1;
const VFIO_IRQ_SET_DATA_EVENTFD: u32 = 4;
const VFIO_IRQ_SET_ACTION_TRIGGER: u32 = 32;
const VFIO_DEVICE_FLAGS_PCI: u32 = 2;
const REGION_RW: u32 = 1 | 2;
// include/uapi/linux/iommufd.h
const IOMMU_IOAS_MAP_FIXED_IOVA: u32 = 1;
const IOMMU_IOAS_MAP_WRITEABLE: u32 = 2;
const IOMMU_IOAS_MAP_READABLE: u32 = 4;

mod vfio_roots;

use vfio_roots::Roots;

fn a(text: &str) -> PciAddress {
    text.parse().unwrap()
}

fn names(calls: &[FakeCall]) -> Vec<&'static str> {
    calls.iter().map(FakeCall::name).collect()
}

/// The fake kernel of the capture's three NVMe functions, all bound to vfio-pci, with cdevs
/// vfio0..2; slot 1's functions reset together (its root port's bus reset), 02:00.0 alone.
fn nvme_kernel() -> Arc<FakeVfio> {
    let fake = FakeVfio::new();
    let slot1 = [a("0000:01:00.0"), a("0000:01:00.1")];
    for (i, addr) in slot1.iter().enumerate() {
        fake.add_function(
            FakeFunction::nvme(*addr, 6)
                .with_cdev(&format!("vfio{i}"))
                .with_reset_set(&slot1),
        );
    }
    fake.add_function(FakeFunction::nvme(a("0000:02:00.0"), 7).with_cdev("vfio2"));
    fake.add_function(FakeFunction::nvme(a("0000:03:00.0"), 8).with_driver(Some("e1000e")));
    fake
}

/// The capture with every NVMe function bound to vfio-pci (cdevs vfio0..2).
fn all_bound(roots: &Roots) {
    roots.bind("0000:01:00.0", Some("vfio0"));
    roots.bind("0000:01:00.1", Some("vfio1"));
    roots.bind("0000:02:00.0", Some("vfio2"));
}

// ---- mode selection ----

#[test]
fn iommufd_mode_when_dev_iommu_and_the_cdev_exist() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:02:00.0")).unwrap();
    assert_eq!(ctx.mode(), Some(VfioMode::Iommufd));
    assert!(ctx.mode_reason().unwrap().contains("vfio2"));
    assert_eq!(f.mode(), VfioMode::Iommufd);
    assert!(f.devid().is_some());
}

#[test]
fn group_mode_without_dev_iommu_or_without_a_cdev_with_the_reason() {
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    ctx.open(a("0000:02:00.0")).unwrap();
    assert_eq!(ctx.mode(), Some(VfioMode::Group));
    assert!(ctx.mode_reason().unwrap().contains("CONFIG_IOMMUFD"));
    drop(ctx); // the context holds group 7 until it goes

    let roots = Roots::capture().with_iommufd();
    roots.bind("0000:02:00.0", None);
    let ctx = roots.context(&fake);
    ctx.open(a("0000:02:00.0")).unwrap();
    assert_eq!(ctx.mode(), Some(VfioMode::Group));
    assert!(ctx
        .mode_reason()
        .unwrap()
        .contains("CONFIG_VFIO_DEVICE_CDEV"));
}

#[test]
fn a_forced_mode_is_honoured_or_explained() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = VfioContext::new(roots.options(&fake).mode(ModeChoice::Group)).unwrap();
    ctx.open(a("0000:02:00.0")).unwrap();
    assert_eq!(ctx.mode(), Some(VfioMode::Group));

    let roots = Roots::capture();
    all_bound(&roots);
    let ctx = VfioContext::new(roots.options(&fake).mode(ModeChoice::Iommufd)).unwrap();
    let err = ctx.open(a("0000:02:00.0")).unwrap_err();
    assert!(
        matches!(
            err,
            Error::VfioMode {
                mode: "iommufd",
                ..
            }
        ),
        "{err}"
    );
}

// ---- iommufd path ----

#[test]
fn iommufd_open_bind_attach_map_unmap() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:02:00.0")).unwrap();
    let calls = fake.calls();
    let devid = f.devid().unwrap();
    let ioas = match calls
        .iter()
        .find(|c| c.name() == "VFIO_DEVICE_ATTACH_IOMMUFD_PT")
    {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    assert_ne!(devid, ioas);
    assert_eq!(
        names(&calls)[..6],
        [
            "open",
            "IOMMU_IOAS_ALLOC",
            "open",
            "VFIO_DEVICE_BIND_IOMMUFD",
            "VFIO_DEVICE_ATTACH_IOMMUFD_PT",
            "IOMMU_IOAS_IOVA_RANGES",
        ]
    );
    assert_eq!(
        calls[0],
        FakeCall::Open {
            path: roots.dev.join("iommu")
        }
    );
    assert_eq!(
        calls[2],
        FakeCall::Open {
            path: roots.dev.join("vfio/devices/vfio2")
        }
    );

    fake.clear_calls();
    let space = f.dma_space().clone();
    let cases = [
        (DmaDirection::ToDevice, IOMMU_IOAS_MAP_READABLE),
        (DmaDirection::FromDevice, IOMMU_IOAS_MAP_WRITEABLE),
        (
            DmaDirection::Bidirectional,
            IOMMU_IOAS_MAP_READABLE | IOMMU_IOAS_MAP_WRITEABLE,
        ),
    ];
    let regions: Vec<_> = cases
        .iter()
        .map(|(dir, _)| space.allocate(3 << 12, *dir).unwrap())
        .collect();
    let maps = fake.calls_named("IOMMU_IOAS_MAP");
    for ((region, (_, prot)), call) in regions.iter().zip(cases).zip(&maps) {
        assert_eq!(
            *call,
            FakeCall::IoasMap {
                ioas,
                iova: region.iova(),
                length: 3 << 12,
                flags: IOMMU_IOAS_MAP_FIXED_IOVA | prot
            }
        );
        assert!(region.iova() != 0 && region.iova() % 4096 == 0);
    }
    assert_eq!(fake.ioas_mappings().len(), 3);
    drop(regions);
    assert_eq!(fake.calls_named("IOMMU_IOAS_UNMAP").len(), 3);
    assert!(
        fake.ioas_mappings().is_empty(),
        "every mapping unmapped on drop"
    );

    assert_eq!(fake.open_devices(), [a("0000:02:00.0")]);
    drop(f);
    assert!(
        fake.open_devices().is_empty(),
        "dropping the function closes the device fd"
    );
}

#[test]
fn attaching_a_device_that_narrows_the_ioas_is_refused() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let _first = ctx.open(a("0000:02:00.0")).unwrap();
    fake.set_iova_ranges(vec![IovaRange::new(0x1000, 0xfedf_ffff)]);
    let err = ctx.open(a("0000:01:00.0")).unwrap_err();
    assert!(matches!(err, Error::IovaRangesNarrowed { .. }), "{err}");
    assert_eq!(
        fake.open_devices(),
        [a("0000:02:00.0")],
        "the refused device is closed"
    );
}

// ---- group path ----

#[test]
fn group_open_checks_version_extension_viability_and_sets_the_iommu_once() {
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f0 = ctx.open(a("0000:01:00.0")).unwrap();
    let f1 = ctx.open(a("0000:01:00.1")).unwrap();
    let f2 = ctx.open(a("0000:02:00.0")).unwrap();
    let calls = fake.calls();
    let opens: Vec<&FakeCall> = calls.iter().filter(|c| c.name() == "open").collect();
    assert_eq!(
        opens,
        [
            &FakeCall::Open {
                path: roots.dev.join("vfio/vfio")
            },
            &FakeCall::Open {
                path: roots.dev.join("vfio/6")
            },
            &FakeCall::Open {
                path: roots.dev.join("vfio/7")
            },
        ],
        "group 6 is opened once for both functions of the slot"
    );
    assert_eq!(fake.calls_named("VFIO_GET_API_VERSION").len(), 1);
    assert_eq!(fake.calls_named("VFIO_CHECK_EXTENSION").len(), 1);
    assert_eq!(fake.calls_named("VFIO_SET_IOMMU").len(), 1);
    assert_eq!(
        fake.calls_named("VFIO_GROUP_SET_CONTAINER"),
        [
            FakeCall::GroupSetContainer { group: 6 },
            FakeCall::GroupSetContainer { group: 7 }
        ]
    );
    let set_iommu = names(&calls)
        .iter()
        .position(|n| *n == "VFIO_SET_IOMMU")
        .unwrap();
    let first_attach = names(&calls)
        .iter()
        .position(|n| *n == "VFIO_GROUP_SET_CONTAINER")
        .unwrap();
    assert!(
        first_attach < set_iommu,
        "SET_IOMMU after the first group is attached"
    );
    assert_eq!(
        fake.calls_named("VFIO_GROUP_GET_DEVICE_FD")[1],
        FakeCall::GroupGetDeviceFd {
            group: 6,
            name: "0000:01:00.1".into()
        }
    );
    assert!(
        Arc::ptr_eq(f0.dma_space(), f2.dma_space()),
        "one DMA space per context"
    );
    assert_eq!(
        (f0.iommu_group(), f1.iommu_group(), f2.iommu_group()),
        (6, 6, 7)
    );

    let region = f1
        .dma_space()
        .allocate(4096, DmaDirection::Bidirectional)
        .unwrap();
    assert_eq!(fake.dma_mappings(), [(region.iova(), 4096)]);
    drop(region);
    assert!(fake.dma_mappings().is_empty());
}

#[test]
fn a_group_that_is_not_viable_names_the_functions_and_their_drivers() {
    let roots = Roots::capture();
    roots.bind("0000:01:00.0", None);
    let fake = nvme_kernel();
    fake.update_function(a("0000:01:00.1"), |f| f.driver = Some("nvme".into()));
    let ctx = roots.context(&fake);
    let err = ctx.open(a("0000:01:00.0")).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, Error::GroupNotViable { group: 6, .. }),
        "{text}"
    );
    assert!(text.contains("0000:01:00.1 is bound to nvme"), "{text}");
}

#[test]
fn open_refusals_are_clear() {
    let roots = Roots::capture();
    roots.bind("0000:02:00.0", None);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let err = ctx.open(a("0000:01:00.0")).unwrap_err();
    assert!(matches!(err, Error::NotBoundToVfio { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        "0000:01:00.0 is not bound to vfio-pci (driver: nvme); bind it first (bind_vfio, or \
         write vfio-pci to its driver_override, unbind it and write 0000:01:00.0 to \
         /sys/bus/pci/drivers_probe)"
    );
    let err = ctx.open(a("0000:09:00.0")).unwrap_err();
    assert!(matches!(err, Error::NoSuchDevice { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with("no PCI function 0000:09:00.0 in ")
            && text.ends_with("bus/pci/devices; `userpci list` shows the functions there"),
        "{text}"
    );

    let f = ctx.open(a("0000:02:00.0")).unwrap();
    assert!(matches!(
        ctx.open(a("0000:02:00.0")),
        Err(Error::AlreadyOpen { .. })
    ));
    drop(f);
    ctx.open(a("0000:02:00.0"))
        .expect("open again after the drop");

    let ctx = roots.context(&fake);
    fake.fail_open("/vfio/7", libc_errno::EBUSY);
    let err = ctx.open(a("0000:02:00.0")).unwrap_err();
    assert!(matches!(err, Error::VfioBusy { .. }), "{err}");

    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    fake.fail_open("/vfio/devices/vfio2", libc_errno::EACCES);
    let err = roots.context(&fake).open(a("0000:02:00.0")).unwrap_err();
    assert!(matches!(err, Error::VfioPermission { .. }), "{err}");
    assert!(err.to_string().contains("vfio/devices/vfio2"), "{err}");
}

#[test]
fn a_cdev_bind_refused_with_eperm_is_busy_naming_the_group() {
    // Linux 6.12 answers VFIO_DEVICE_BIND_IOMMUFD with EPERM when another iommufd (another
    // process, or another context) already bound a function of the same IOMMU group: seen in
    // the VM tier (tests/vm, hot_reset_refused_second_process). That is "held elsewhere".
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    fake.fail_next("VFIO_DEVICE_BIND_IOMMUFD", libc_errno::EPERM);
    let err = roots.context(&fake).open(a("0000:01:00.0")).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::VfioBusy { .. }), "{text}");
    assert!(text.contains("0000:01:00.0"), "{text}");
    assert!(
        text.contains("IOMMU group 6 is claimed by another iommufd"),
        "{text}"
    );
}

/// errno values, to keep the test free of a libc dependency.
mod libc_errno {
    pub const EPERM: i32 = 1;
    pub const EBUSY: i32 = 16;
    pub const EACCES: i32 = 13;
}

// ---- the function: config, BARs, MSI-X, error and request interrupts ----

fn open_02(roots: &Roots, fake: &Arc<FakeVfio>) -> (VfioContext, VfioFunction) {
    roots.bind("0000:02:00.0", None);
    let ctx = roots.context(fake);
    let f = ctx.open(a("0000:02:00.0")).unwrap();
    (ctx, f)
}

#[test]
fn config_space_through_the_config_region_with_bounds() {
    let roots = Roots::capture();
    let fake = nvme_kernel();
    let (_ctx, f) = open_02(&roots, &fake);
    assert_eq!(f.ids().unwrap(), (0x1b36, 0x0010));
    assert_eq!(f.config_size(), 4096);
    f.set_bus_master(true).unwrap();
    assert_eq!(
        fake.config(a("0000:02:00.0"))[4] & 0b110,
        0b110,
        "MEM and BME set"
    );
    assert!(f.has_flr().unwrap());
    assert_eq!(f.msix_vector_count().unwrap(), 65);
    let mut buf = [0u8; 2];
    f.read_config(4094, &mut buf).unwrap();
    let err = f.read_config(4095, &mut buf).unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConfigOutOfRange {
                offset: 4095,
                len: 2,
                size: 4096,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.write_config(u16::MAX, &[0]).is_err());
}

#[test]
fn bars_map_when_mmappable_and_say_why_not_otherwise() {
    let roots = Roots::capture();
    let fake = nvme_kernel();
    fake.update_function(a("0000:02:00.0"), |f| {
        f.bars[2].size = 256; // an I/O BAR: no MMAP
        f.bars[2].flags = REGION_RW;
        f.config[0x18] = 0x01;
        f.bars[4].size = 1 << 12; // memory, but not mmappable
        f.bars[4].flags = REGION_RW;
    });
    let (_ctx, f) = open_02(&roots, &fake);
    let bar0 = f.map_bar(0).unwrap();
    assert_eq!(bar0.len(), 16 << 10);
    bar0.write32(0x14, 0x0046_0001);
    assert_eq!(
        fake.bar_read32(a("0000:02:00.0"), 0, 0x14),
        Some(0x0046_0001)
    );
    fake.bar_write64(a("0000:02:00.0"), 0, 0, 0x0040_1820_0f01_07ff);
    assert_eq!(
        bar0.read64(0),
        0x0040_1820_0f01_07ff,
        "CAP as the guest read it"
    );
    assert_eq!(fake.calls_named("mmap").len(), 1);
    let again = f.map_bar(0).unwrap();
    assert_eq!(
        fake.calls_named("mmap").len(),
        1,
        "one mapping per BAR, shared"
    );

    let reason = |bar| match f.map_bar(bar).unwrap_err() {
        Error::InvalidBar { reason, .. } => reason,
        other => panic!("{other}"),
    };
    assert!(reason(1).contains("size 0"));
    assert!(reason(2).contains("I/O port"));
    assert!(reason(4).contains("MMAP"));
    assert!(reason(6).contains("0 to 5"));

    drop(f);
    drop(bar0);
    assert_eq!(fake.live_mmaps(), 1, "still mapped while a region lives");
    drop(again);
    assert_eq!(fake.live_mmaps(), 0, "munmap when the last region goes");
}

#[test]
fn msix_count_is_checked_and_vectors_are_eventfds() {
    let roots = Roots::capture();
    let fake = nvme_kernel();
    let (_ctx, f) = open_02(&roots, &fake);
    let addr = f.address();
    let err = f.enable_msix(66).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MsixVectors {
                requested: 66,
                available: 65,
                ..
            }
        ),
        "{err}"
    );
    assert!(f.enable_msix(0).is_err());

    fake.clear_calls();
    let vectors = f.enable_msix(4).unwrap();
    assert_eq!(vectors.len(), 4);
    assert_eq!(vectors[3].vector(), 3);
    assert_eq!(
        fake.calls_named("VFIO_DEVICE_SET_IRQS"),
        [FakeCall::SetIrqs {
            device: addr,
            flags: VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER,
            index: VFIO_PCI_MSIX_IRQ_INDEX,
            start: 0,
            count: 4,
            fds: 4
        }]
    );
    assert_eq!(fake.irq_eventfds(addr, VFIO_PCI_MSIX_IRQ_INDEX), 4);
    vectors[1].event().signal().unwrap();
    assert_eq!(vectors[1].take().unwrap(), 1);

    // Growing: disabled and enabled anew (the count cannot grow in place).
    f.enable_msix(16).unwrap();
    assert_eq!(fake.irq_eventfds(addr, VFIO_PCI_MSIX_IRQ_INDEX), 16);
    fake.clear_calls();
    f.disable_msix().unwrap();
    f.disable_msix().unwrap();
    assert_eq!(
        fake.calls_named("VFIO_DEVICE_SET_IRQS"),
        [FakeCall::SetIrqs {
            device: addr,
            flags: VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER,
            index: VFIO_PCI_MSIX_IRQ_INDEX,
            start: 0,
            count: 0,
            fds: 0
        }],
        "disabled once"
    );
    assert_eq!(fake.irq_eventfds(addr, VFIO_PCI_MSIX_IRQ_INDEX), 0);
}

#[test]
fn error_and_request_interrupts_are_registered_when_offered() {
    let roots = Roots::capture();
    let fake = nvme_kernel();
    let (_ctx, f) = open_02(&roots, &fake);
    assert!(f.error_interrupt().is_some());
    assert!(f.request_interrupt().is_some());
    assert_eq!(fake.irq_eventfds(f.address(), VFIO_PCI_ERR_IRQ_INDEX), 1);
    assert_eq!(fake.irq_eventfds(f.address(), VFIO_PCI_REQ_IRQ_INDEX), 1);

    let roots = Roots::capture();
    let fake = nvme_kernel();
    fake.update_function(a("0000:02:00.0"), |f| f.irq_counts[3] = 0); // not PCIe
    let (_ctx, f) = open_02(&roots, &fake);
    assert!(f.error_interrupt().is_none());
    assert!(f.request_interrupt().is_some());
}

// ---- resets ----

#[test]
fn function_reset_only_when_the_kernel_offers_one() {
    let roots = Roots::capture();
    let fake = nvme_kernel();
    let (_ctx, f) = open_02(&roots, &fake);
    assert_eq!(f.reset_methods(), [ResetMethod::Flr, ResetMethod::Bus]);
    f.reset_function().unwrap();
    assert_eq!(fake.stats(f.address()).function_resets, 1);

    let roots = Roots::capture();
    let fake = nvme_kernel();
    fake.update_function(a("0000:02:00.0"), |f| {
        f.device_flags = VFIO_DEVICE_FLAGS_PCI
    });
    let (_ctx, f) = open_02(&roots, &fake);
    let err = f.reset_function().unwrap_err();
    assert!(matches!(err, Error::NoFunctionReset { .. }), "{err}");
    assert!(err.to_string().contains("flr bus"), "{err}");
    assert!(fake.calls_named("VFIO_DEVICE_RESET").is_empty());
}

#[test]
fn group_mode_reset_group_grows_on_enospc_and_hot_resets_with_the_group_fd() {
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:01:00.0")).unwrap();
    fake.clear_calls();
    let members = f.reset_group().unwrap();
    let sizes: Vec<FakeCall> = fake.calls_named("VFIO_DEVICE_GET_PCI_HOT_RESET_INFO");
    assert_eq!(
        sizes,
        [
            FakeCall::HotResetInfo {
                device: f.address(),
                argsz: 12
            },
            FakeCall::HotResetInfo {
                device: f.address(),
                argsz: 28
            },
        ],
        "header only (ENOSPC, count 2), then room for two"
    );
    assert_eq!(members.len(), 2);
    assert_eq!(members[1].address, a("0000:01:00.1"));
    assert_eq!(members[1].iommu_group, Some(6));
    assert_eq!(members[1].reset_methods, [ResetMethod::Flr]);
    assert!(
        members.iter().all(|m| m.ownership == Ownership::Owned),
        "01:00.1 is unopened but its group is held: the kernel counts it as ours"
    );

    f.reset_group_hot().unwrap();
    assert_eq!(
        fake.calls_named("VFIO_DEVICE_PCI_HOT_RESET").last(),
        Some(&FakeCall::HotReset {
            device: f.address(),
            groups: vec![6]
        })
    );
    assert_eq!(fake.stats(a("0000:01:00.1")).bus_resets, 1);
}

#[test]
fn cdev_mode_dev_ids_as_measured_with_only_the_first_function_open() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:01:00.0")).unwrap();
    let info = f.hot_reset_info().unwrap().unwrap();
    assert!(info.uses_dev_ids());
    assert_eq!(info.all_owned(), Some(true), "flags DEV_ID|DEV_ID_OWNED");
    use userpci_framework::backend::vfio::reply::DependentId;
    assert_eq!(info.devices[0].id, DependentId::DevId(f.devid().unwrap()));
    assert_eq!(
        info.devices[1].id,
        DependentId::OwnedThroughGroup,
        "devid 0 for 01:00.1"
    );
    let members = f.reset_group().unwrap();
    assert!(members.iter().all(|m| m.ownership == Ownership::Owned));
    assert_eq!(members[1].iommu_group, Some(6), "from sysfs in cdev mode");

    f.reset_group_hot().unwrap();
    assert_eq!(
        fake.calls_named("VFIO_DEVICE_PCI_HOT_RESET"),
        [FakeCall::HotReset {
            device: f.address(),
            groups: vec![]
        }],
        "a zero-length array in cdev mode"
    );
    assert_eq!(fake.stats(a("0000:01:00.0")).bus_resets, 1);
    assert_eq!(fake.stats(a("0000:01:00.1")).bus_resets, 1);

    // Both open: both real devids.
    let g = ctx.open(a("0000:01:00.1")).unwrap();
    let info = f.hot_reset_info().unwrap().unwrap();
    assert_eq!(info.devices[1].id, DependentId::DevId(g.devid().unwrap()));
}

#[test]
fn a_hot_reset_that_would_hit_others_is_refused_naming_each_blocker() {
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    // Pretend 02:00.0 shares a bus with 03:00.0 (e1000e) and 01:00.1 (group 6, not held).
    let set = [a("0000:02:00.0"), a("0000:03:00.0"), a("0000:01:00.1")];
    fake.update_function(a("0000:02:00.0"), |f| f.reset_set = Some(set.to_vec()));
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:02:00.0")).unwrap();
    let members = f.reset_group().unwrap();
    assert_eq!(members[0].ownership, Ownership::Owned);
    assert_eq!(
        members[1].ownership,
        Ownership::OwnedElsewhere {
            owner: "kernel driver e1000e".into()
        }
    );
    assert_eq!(members[2].ownership, Ownership::Unopened);
    let err = f.reset_group_hot().unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::HotResetRefused { .. }), "{text}");
    assert!(
        text.contains("0000:03:00.0 is owned by kernel driver e1000e"),
        "{text}"
    );
    assert!(
        text.contains("0000:01:00.1 is not opened through this VFIO context (IOMMU group 6)"),
        "{text}"
    );
    assert!(
        fake.calls_named("VFIO_DEVICE_PCI_HOT_RESET").is_empty(),
        "refused before asking the kernel"
    );
}

#[test]
fn cdev_mode_not_owned_members_block_and_are_named() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    // 02:00.0's reset would also hit 01:00.1 (bound to another context's iommufd) and
    // 03:00.0 (bound to e1000e): both VFIO_PCI_DEVID_NOT_OWNED.
    let set = [a("0000:02:00.0"), a("0000:01:00.1"), a("0000:03:00.0")];
    fake.update_function(a("0000:02:00.0"), |f| f.reset_set = Some(set.to_vec()));
    let ours = roots.context(&fake);
    let other = roots.context(&fake);
    let f = ours.open(a("0000:02:00.0")).unwrap();
    let _held = other.open(a("0000:01:00.1")).unwrap();

    use userpci_framework::backend::vfio::reply::DependentId;
    let info = f.hot_reset_info().unwrap().unwrap();
    assert_eq!(info.all_owned(), Some(false), "DEV_ID_OWNED cleared");
    let ids: Vec<DependentId> = info.devices.iter().map(|d| d.id).collect();
    assert_eq!(
        ids,
        [
            DependentId::DevId(f.devid().unwrap()),
            DependentId::NotOwned,
            DependentId::NotOwned
        ]
    );
    let members = f.reset_group().unwrap();
    assert_eq!(members[1].ownership, Ownership::Unopened);
    assert_eq!(
        members[2].ownership,
        Ownership::OwnedElsewhere {
            owner: "kernel driver e1000e".into()
        }
    );
    let text = f.reset_group_hot().unwrap_err().to_string();
    assert!(
        text.contains("0000:01:00.1 is not opened through this VFIO context"),
        "{text}"
    );
    assert!(
        text.contains("0000:03:00.0 is owned by kernel driver e1000e"),
        "{text}"
    );
    assert!(fake.calls_named("VFIO_DEVICE_PCI_HOT_RESET").is_empty());
}

#[test]
fn kernel_refusals_and_missing_bus_resets_become_hot_reset_refused() {
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let f = ctx.open(a("0000:01:00.0")).unwrap();
    fake.fail_next("VFIO_DEVICE_PCI_HOT_RESET", libc_errno::EBUSY);
    let err = f.reset_group_hot().unwrap_err();
    assert!(matches!(err, Error::HotResetRefused { .. }), "{err}");
    assert!(err.to_string().contains("the kernel refused"), "{err}");

    fake.update_function(a("0000:01:00.0"), |f| f.reset_set = None);
    let err = f.reset_group_hot().unwrap_err();
    assert!(err.to_string().contains("no slot or bus reset"), "{err}");
    let members = f.reset_group().unwrap();
    assert_eq!(
        members.len(),
        1,
        "without a bus reset the group is the function alone"
    );
}

// ---- binding ----

#[test]
fn bind_writes_override_unbind_and_probe_and_checks_the_result() {
    let roots = Roots::capture();
    let binder = Binder::new(&roots.sys);
    let err = binder.bind_vfio(a("0000:02:00.0")).unwrap_err();
    // A fixture does not react like the kernel, so the final check reports the driver it sees.
    assert!(matches!(err, Error::BindFailed { .. }), "{err}");
    let dir = roots.device_dir("0000:02:00.0");
    let read = |p: &Path| fs::read_to_string(p).unwrap();
    assert_eq!(read(&dir.join("driver_override")), "vfio-pci");
    assert_eq!(
        read(&roots.sys.join("bus/pci/drivers/nvme/unbind")),
        "0000:02:00.0"
    );
    assert_eq!(
        read(&roots.sys.join("bus/pci/drivers_probe")),
        "0000:02:00.0"
    );

    roots.bind("0000:02:00.0", None);
    let report = binder.bind_vfio(a("0000:02:00.0")).unwrap();
    assert!(report.already_bound);
    let report = binder.unbind_vfio(a("0000:02:00.0")).unwrap();
    assert_eq!(read(&dir.join("driver_override")), "\n", "override cleared");
    assert_eq!(
        read(&roots.sys.join("bus/pci/drivers/vfio-pci/unbind")),
        "0000:02:00.0"
    );
    assert!(!report.was_not_bound);
    assert_eq!(report.reprobe_error, None);
    let report = binder.unbind_vfio(a("0000:01:00.0")).unwrap();
    assert!(report.was_not_bound);
    assert_eq!(report.driver.as_deref(), Some("nvme"));
}

/// A kernel driver that refuses the function after the unbind (drivers_probe failing) leaves
/// it unbound: reported, not an error, since the function did leave vfio-pci.
#[test]
fn unbind_reports_a_refused_reprobe() {
    let roots = Roots::capture();
    let binder = Binder::new(&roots.sys);
    roots.bind("0000:02:00.0", None);
    // A directory in the attribute's place makes the write fail as the kernel's EINVAL would.
    let probe = roots.sys.join("bus/pci/drivers_probe");
    let _ = fs::remove_file(&probe);
    fs::create_dir(&probe).unwrap();
    let report = binder.unbind_vfio(a("0000:02:00.0")).unwrap();
    assert!(!report.was_not_bound);
    let error = report.reprobe_error.expect("the failed probe is reported");
    assert!(error.contains("drivers_probe"), "{error}");
    assert_eq!(
        fs::read_to_string(roots.sys.join("bus/pci/drivers/vfio-pci/unbind")).unwrap(),
        "0000:02:00.0",
        "the unbind itself was written"
    );
}

#[test]
fn bind_errors_no_iommu_and_no_vfio_pci() {
    let roots = Roots::capture();
    fs::remove_dir_all(roots.sys.join("bus/pci/drivers/vfio-pci")).unwrap();
    let err = Binder::new(&roots.sys)
        .bind_vfio(a("0000:02:00.0"))
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::VfioModuleMissing {
                module: "vfio-pci",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("modprobe vfio-pci"), "{err}");

    fs::remove_dir_all(roots.sys.join("kernel/iommu_groups")).unwrap();
    let err = Binder::new(&roots.sys)
        .bind_vfio(a("0000:02:00.0"))
        .unwrap_err();
    assert!(err.to_string().contains("intel_iommu=on"), "{err}");
    let fake = nvme_kernel();
    let err = VfioContext::new(roots.options(&fake)).unwrap_err();
    assert!(matches!(err, Error::NoIommu { .. }), "{err}");
}

// ---- this machine ----

/// Read only: never binds or writes. Here there is no IOMMU and no vfio, so the context (or
/// the open of the first function) fails with an error that says so.
#[test]
fn this_machine_fails_clearly_without_an_iommu_or_vfio() {
    match VfioContext::new(VfioOptions::new()) {
        Err(err @ Error::NoIommu { .. }) => {
            assert!(err.to_string().contains("intel_iommu=on"), "{err}");
        }
        Err(other) => panic!("expected NoIommu, got {other}"),
        Ok(ctx) => {
            // A machine with an IOMMU: the first function not bound to vfio-pci is refused.
            let unbound = ctx
                .sysfs()
                .list()
                .unwrap()
                .into_iter()
                .find(|f| f.driver.as_deref() != Some("vfio-pci"));
            if let Some(f) = unbound {
                let err = ctx.open(f.address).unwrap_err();
                assert!(
                    matches!(err, Error::NotBoundToVfio { .. } | Error::NoIommu { .. }),
                    "{err}"
                );
            }
        }
    }
}

// ---- lending to another process (the reset-group broker) ----

#[test]
fn a_lent_function_is_adopted_from_duplicated_fds_into_its_own_ioas() {
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let broker = roots.context(&fake);
    let owned = broker.open(a("0000:02:00.0")).unwrap();
    let broker_ioas = match fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").first() {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    fake.clear_calls();
    let lent = owned.lend_cdev(None).unwrap();
    assert_ne!(lent.ioas, broker_ioas, "the client gets an IOAS of its own");
    assert_eq!(Some(lent.devid), owned.devid());
    assert_eq!(
        names(&fake.calls()),
        ["IOMMU_IOAS_ALLOC", "VFIO_DEVICE_ATTACH_IOMMUFD_PT"]
    );
    let ioas = lent.ioas;

    // The client side: the same options a process of its own would use.
    let client = VfioContext::adopt_lent(
        roots.options(&fake).mode(ModeChoice::Iommufd),
        a("0000:02:00.0"),
        lent,
    )
    .unwrap();
    assert_eq!(client.mode(), VfioMode::Iommufd);
    assert_eq!(
        client.ids().unwrap(),
        owned.ids().unwrap(),
        "config through the dup"
    );
    fake.clear_calls();
    let region = client
        .dma_space()
        .allocate(1 << 12, DmaDirection::FromDevice)
        .unwrap();
    assert_eq!(
        fake.calls_named("IOMMU_IOAS_MAP"),
        [FakeCall::IoasMap {
            ioas,
            iova: region.iova(),
            length: 1 << 12,
            flags: IOMMU_IOAS_MAP_FIXED_IOVA | IOMMU_IOAS_MAP_WRITEABLE
        }],
        "the client's DMA lands in its own IOAS"
    );
    drop(region);
    drop(client);
    assert_eq!(
        fake.open_devices(),
        [a("0000:02:00.0")],
        "the broker's fd keeps the device open after the client's copy is gone"
    );
}

#[test]
fn a_group_mode_lend_allocates_only_inside_its_window_of_the_shared_container() {
    use userpci_framework::backend::vfio::LentGroup;
    let roots = Roots::capture();
    all_bound(&roots);
    let fake = nvme_kernel();
    let broker = VfioContext::new(roots.options(&fake).mode(ModeChoice::Group)).unwrap();
    let owned = broker.open(a("0000:02:00.0")).unwrap();
    let err = owned.lend_cdev(None).unwrap_err();
    assert!(
        err.to_string()
            .contains("0000:02:00.0: lending a function needs iommufd (cdev) mode"),
        "{err}"
    );
    let window = IovaRange::new(1 << 36, (2 << 36) - 1);
    let lent: LentGroup = owned.lend_group(window).unwrap();
    let client = VfioContext::adopt_lent_group(
        roots.options(&fake).mode(ModeChoice::Group),
        a("0000:02:00.0"),
        lent,
    )
    .unwrap();
    assert_eq!(client.mode(), VfioMode::Group);
    assert_eq!(
        client.ids().unwrap(),
        owned.ids().unwrap(),
        "config through the dup"
    );
    let regions: Vec<_> = (0..3)
        .map(|_| {
            client
                .dma_space()
                .allocate(1 << 12, DmaDirection::ToDevice)
                .unwrap()
        })
        .collect();
    let mapped = fake.dma_mappings();
    assert_eq!(mapped.len(), 3, "{mapped:x?}");
    for (iova, size) in &mapped {
        assert!(
            *iova >= window.start && iova + size - 1 <= window.last,
            "{iova:#x}+{size:#x} outside the window"
        );
    }
    drop(regions);
    // A window outside every valid range is refused when the function is adopted.
    let outside = owned
        .lend_group(IovaRange::new(1 << 60, (1 << 60) + 0xfff))
        .unwrap();
    let err = VfioContext::adopt_lent_group(
        roots.options(&fake).mode(ModeChoice::Group),
        a("0000:02:00.0"),
        outside,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains("is outside every valid range"),
        "{err}"
    );
}

#[test]
fn a_broker_lends_a_vfio_function_that_the_client_drives_in_its_own_ioas() {
    use userpci_framework::broker::{
        Broker, BrokerClient, BrokerConfig, VfioCollector, VfioLending,
    };
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    let lending = VfioLending::new([ctx.open(a("0000:02:00.0")).unwrap()]);
    let socket =
        std::env::temp_dir().join(format!("userpci-vfio-broker-{}.sock", std::process::id()));
    let broker = Broker::start(lending, BrokerConfig::new(&socket)).unwrap();
    let collector = VfioCollector::new(roots.options(&fake).mode(ModeChoice::Iommufd));
    let client = BrokerClient::connect(broker.socket(), "nvme-app", collector).unwrap();
    let function = client.open(a("0000:02:00.0")).unwrap();
    assert_eq!(
        function.ids().unwrap(),
        (0x1b36, 0x0010),
        "QEMU NVMe ids via the lent fd"
    );
    let broker_ioas = match fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").first() {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    let client_ioas = match fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").last() {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    fake.clear_calls();
    let region = function
        .dma_space()
        .allocate(1 << 12, DmaDirection::ToDevice)
        .unwrap();
    assert!(matches!(
        fake.calls_named("IOMMU_IOAS_MAP").as_slice(),
        [FakeCall::IoasMap { ioas, .. }] if *ioas == client_ioas
    ));
    drop(region);
    // A second client cannot have it while the first holds the lease.
    let other = BrokerClient::connect(
        broker.socket(),
        "other",
        VfioCollector::new(roots.options(&fake)),
    )
    .unwrap();
    let err = other.open(a("0000:02:00.0")).unwrap_err();
    assert!(err.to_string().contains("leased to client"), "{err}");

    // Released: the function goes back to the broker's IOAS, the client's is destroyed, so
    // the client's mappings no longer reach memory; the next client gets a fresh IOAS.
    fake.clear_calls();
    client.release(a("0000:02:00.0")).unwrap();
    assert_eq!(
        fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT"),
        [FakeCall::AttachPt {
            device: a("0000:02:00.0"),
            pt_id: broker_ioas
        }]
    );
    assert_eq!(
        fake.calls_named("IOMMU_DESTROY"),
        [FakeCall::Destroy { id: client_ioas }]
    );
    drop(function);
    let again = other.open(a("0000:02:00.0")).unwrap();
    let next_ioas = match fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").last() {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    assert!(next_ioas != broker_ioas && next_ioas != client_ioas);
    // A client that goes away is reclaimed the same way.
    fake.clear_calls();
    drop(again);
    drop(other);
    for _ in 0..10_000 {
        if !fake.calls_named("IOMMU_DESTROY").is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_micros(200));
    }
    assert_eq!(
        fake.calls_named("IOMMU_DESTROY"),
        [FakeCall::Destroy { id: next_ioas }]
    );
}

#[test]
fn functions_sharing_an_iommu_group_are_lent_in_windows_of_the_brokers_ioas() {
    use userpci_framework::broker::{Collector, Lender, VfioCollector, VfioLending};
    let roots = Roots::capture().with_iommufd();
    all_bound(&roots);
    let fake = nvme_kernel();
    let ctx = roots.context(&fake);
    // 01:00.0 and 01:00.1 share IOMMU group 6: iommufd attaches them together.
    let lending = VfioLending::new([
        ctx.open(a("0000:01:00.0")).unwrap(),
        ctx.open(a("0000:01:00.1")).unwrap(),
    ]);
    let broker_ioas = match fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").first() {
        Some(FakeCall::AttachPt { pt_id, .. }) => *pt_id,
        other => panic!("{other:?}"),
    };
    fake.clear_calls();
    let collector = VfioCollector::new(roots.options(&fake).mode(ModeChoice::Iommufd));
    let mut windows = Vec::new();
    let mut functions = Vec::new();
    for at in ["0000:01:00.0", "0000:01:00.1"] {
        let lend = lending.lend(a(at), 1).unwrap();
        assert_eq!(lend.detail["ioas"], broker_ioas, "{at}: the broker's IOAS");
        let start = lend.detail["window_start"].as_u64().unwrap();
        let last = lend.detail["window_last"].as_u64().unwrap();
        windows.push(IovaRange::new(start, last));
        functions.push(collector.collect(a(at), lend).unwrap());
    }
    assert!(
        fake.calls_named("VFIO_DEVICE_ATTACH_IOMMUFD_PT").is_empty(),
        "no re-attach"
    );
    assert!(windows[0].last < windows[1].start, "{windows:?}");
    for (function, window) in functions.iter().zip(&windows) {
        let region = function
            .dma_space()
            .allocate(1 << 12, DmaDirection::ToDevice)
            .unwrap();
        assert!(
            region.iova() >= window.start && region.iova() + 0xfff <= window.last,
            "{:#x} outside {window:?}",
            region.iova()
        );
    }
}

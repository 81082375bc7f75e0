//! The test table. To add a test: write `fn my_test(ctx: &Ctx) -> TestResult` in a module here
//! (or a new one), and add one line to [`TESTS`]. Tests run in table order, each once, in the
//! same process; a test that opens devices must close them (drop) before it returns, so the
//! next test finds them free.

mod raw;
mod topology;

use crate::harness::{test, Helper, Modes, Test};

/// Every VM test, in the order they run.
#[rustfmt::skip]
pub const TESTS: &[Test] = &[
    // Topology as sysfs shows it (the framework's sysfs reader), both kernels.
    test("sysfs_nvme_functions",  Modes::Both,      topology::nvme_functions),
    test("sysfs_iommu_groups",    Modes::Both,      topology::iommu_groups),
    test("sysfs_reset_methods",   Modes::Both,      topology::reset_methods),
    // Device nodes.
    test("devnodes_cdev",         Modes::CdevOnly,  topology::devnodes_cdev),
    test("devnodes_group",        Modes::GroupOnly, topology::devnodes_group),
    // Raw VFIO plumbing, without the framework's backend (crate::raw_vfio).
    test("raw_cdev_device_info",  Modes::CdevOnly,  raw::cdev_device_info),
    test("raw_group_device_info", Modes::GroupOnly, raw::group_device_info),
    test("raw_group_exclusive",   Modes::Both,      raw::group_exclusive),
    // The VFIO backend and NVMe driver tests (issue 4 item 7) go here.
];

/// Second-process helpers (`userpci-vmtest --helper <name>`, see [`crate::harness::spawn_helper`]).
pub const HELPERS: &[Helper] = &[Helper {
    name: "open_group",
    run: raw::helper_open_group,
}];

//! The test table. To add a test: write `fn my_test(ctx: &Ctx) -> TestResult` in a module here
//! (or a new one), and add one line to [`TESTS`]. Tests run in table order, each once, in the
//! same process; a test that opens devices must close them (drop) before it returns, so the
//! next test finds them free.

mod backend;
mod broker;
mod coordinated;
mod heterogeneous;
mod igb;
mod ledger;
mod nvme;
mod nvme_admin;
mod raw;
mod setup;
mod status;
pub(crate) mod support;
mod topology;

use crate::harness::{test, Helper, Modes, Test};

/// Every VM test, in the order they run.
#[rustfmt::skip]
pub const TESTS: &[Test] = &[
    // Topology as sysfs shows it (the framework's sysfs reader), both kernels.
    test("sysfs_nvme_functions",  Modes::Both,      topology::nvme_functions),
    test("sysfs_iommu_groups",    Modes::Both,      topology::iommu_groups),
    test("sysfs_reset_methods",   Modes::Both,      topology::reset_methods),
    test("sysfs_heterogeneous_slot", Modes::Both,   topology::heterogeneous_slot),
    // Device nodes.
    test("devnodes_cdev",         Modes::CdevOnly,  topology::devnodes_cdev),
    test("devnodes_group",        Modes::GroupOnly, topology::devnodes_group),
    // Raw VFIO plumbing, without the framework's backend (crate::raw_vfio).
    test("raw_cdev_device_info",  Modes::CdevOnly,  raw::cdev_device_info),
    test("raw_group_device_info", Modes::GroupOnly, raw::group_device_info),
    test("raw_group_exclusive",   Modes::Both,      raw::group_exclusive),
    // The framework's VFIO backend (issue 4 item 7).
    test("bar0_cap_vs",                      Modes::Both, backend::bar0_cap_vs),
    // The NVMe driver through it.
    test("nvme_identify",                    Modes::Both, nvme::nvme_identify),
    test("io_64mib_three_controllers",       Modes::Both, nvme::io_64mib_three_controllers),
    test("iommu_blocks_stray_dma",           Modes::Both, nvme::iommu_blocks_stray_dma),
    test("msix_interrupt_mode",              Modes::Both, nvme::msix_interrupt_mode),
    test("flr_then_reinit",                  Modes::Both, nvme::flr_then_reinit),
    // Shutdown, log pages, asynchronous events on QEMU's controller (issue 12 item 3).
    test("nvme_shutdown_completes",          Modes::Both, nvme_admin::nvme_shutdown_completes),
    test("nvme_smart_and_error_logs",        Modes::Both, nvme_admin::nvme_smart_and_error_logs),
    test("nvme_async_event_fires",           Modes::Both, nvme_admin::nvme_async_event_fires),
    // The igb driver on QEMU's 82576 (issue 9 item 4).
    test("igb_init_link_up",                 Modes::Both, igb::igb_init_link_up),
    test("igb_frames_both_directions",       Modes::Both, igb::igb_frames_both_directions),
    test("igb_rss_spreads_flows",            Modes::Both, igb::igb_rss_spreads_flows),
    test("igb_msix_wakes_receiver",          Modes::Both, igb::igb_msix_wakes_receiver),
    test("igb_iommu_blocks_stray_descriptor", Modes::Both, igb::igb_iommu_blocks_stray_descriptor),
    test("igb_flr_then_reinit",              Modes::Both, igb::igb_flr_then_reinit),
    // Reset groups: hot-reset info, hot reset, refusal.
    test("hot_reset_info_slot",              Modes::Both, backend::hot_reset_info_slot),
    test("hot_reset_both_owned",             Modes::Both, backend::hot_reset_both_owned),
    test("hot_reset_refused_second_process", Modes::Both, backend::hot_reset_refused_second_process),
    // The reset coordinator on the real slot (issue 5 item 7).
    test("coordinated_hot_reset_under_io",   Modes::Both, coordinated::coordinated_hot_reset_under_io),
    test("coordinated_reset_refused",        Modes::Both, coordinated::coordinated_reset_refused),
    // A heterogeneous reset group: NVMe + igb in one slot (issue 9 item 5).
    test("heterogeneous_hot_reset_under_traffic", Modes::Both, heterogeneous::heterogeneous_hot_reset_under_traffic),
    test("status_groups_match_hot_reset_info", Modes::Both, status::status_groups_match_hot_reset_info), test("status_after_setup_resets", Modes::Both, status::status_after_setup_resets), test("status_blocked_is_refused", Modes::Both, status::status_blocked_is_refused),
    // The reset-group broker: a second process drives a lent function (issue 10 item 4).
    test("broker_lends_across_processes",    Modes::Both, broker::broker_lends_across_processes),
    test("broker_cli_serves_a_client",       Modes::Both, broker::broker_cli_serves_a_client),
    // `userpci setup` gives controller C's nodes to uid 1000, whose `nvme perf` then runs (issue 11).
    test("setup_then_unprivileged_perf",     Modes::Both, setup::setup_then_unprivileged_perf),
    // Last: it unbinds 01:00.0 from vfio-pci (and binds it back).
    test("request_irq_on_unbind",            Modes::Both, backend::request_irq_on_unbind),
];

/// Second-process helpers (`userpci-vmtest --helper <name>`, see [`crate::harness::spawn_helper`]).
pub const HELPERS: &[Helper] = &[
    Helper {
        name: "open_group",
        run: raw::helper_open_group,
    },
    Helper {
        name: "hold_function",
        run: support::helper_hold_function,
    },
    Helper {
        name: "broker_nvme_client",
        run: broker::helper_broker_nvme_client,
    },
    Helper {
        name: "as_user",
        run: setup::helper_as_user,
    },
];

//! `userpci::tools::setup` on fake machines: hugepages per node and in total, a kernel that
//! grants fewer pages than asked, hugetlbfs mounts and the IOMMU explained
//! (`setup_permissions.rs`: device nodes, reset, bad input).

mod fake_system;

use fake_system::{FakeSystem, RecordingHost, POOL};
use userpci::tools::setup::apply::setup;
use userpci::tools::setup::plan::{Change, HugepageRequest, SetupRequest};
use userpci::tools::setup::reset::reset;
use userpci::tools::setup::{state, status};

fn pages(pages: u64, node: Option<u32>) -> SetupRequest {
    SetupRequest {
        hugepages: Some(HugepageRequest { pages, node }),
        ..SetupRequest::default()
    }
}

fn node_pool(node: u32) -> String {
    format!("/sys/devices/system/node/node{node}/{POOL}/nr_hugepages")
}

#[test]
fn hugepages_go_to_the_node_asked_for_and_the_total_counts_every_node() {
    let fake = FakeSystem::new("per-node");
    fake.numa_pools(&[4, 0]);
    fake.vfio_ready();
    let mut host = RecordingHost::new(&fake);
    let report = setup(&fake.root(), &pages(16, Some(1)), &mut host).unwrap();
    assert_eq!(fake.read(&node_pool(1)).trim(), "16");
    assert_eq!(fake.read(&node_pool(0)).trim(), "4", "node 0 untouched");
    assert_eq!(
        report.changes,
        [Change::SetHugepages {
            path: node_pool(1),
            node: Some(1),
            from_pages: 0,
            to_pages: 16
        }]
    );
    // The memlock need covers both nodes: 4 + 16 pages of 2 MiB.
    assert_eq!(report.memlock.needed_bytes, 20 * (2 << 20));
    assert!(!report.memlock.enough, "8 MiB limit, 40 MiB needed");
    let status = status::read(&fake.root()).unwrap();
    assert_eq!(status.hugepages.pools.len(), 2);
    assert_eq!(status.hugepages.pools[1].total_pages, 16);
    assert_eq!(status.hugepages.total_pages, 20);
    assert_eq!(status.hugepages.total_bytes, 40 << 20);
    assert!(host.commands.is_empty(), "{:?}", host.commands);
}

#[test]
fn without_a_node_the_machine_wide_pool_is_sized() {
    let fake = FakeSystem::new("global");
    fake.global_pool(0);
    fake.vfio_ready();
    let report = setup(
        &fake.root(),
        &pages(512, None),
        &mut RecordingHost::new(&fake),
    )
    .unwrap();
    let file = format!("/sys/kernel/mm/{POOL}/nr_hugepages");
    assert_eq!(fake.read(&file).trim(), "512");
    assert_eq!(report.memlock.needed_bytes, 1 << 30);
    let recorded = state::load(&fake.root()).unwrap().unwrap();
    assert_eq!(recorded.hugepages[0].path, file);
    assert_eq!(recorded.hugepages[0].previous_pages, 0);
    assert_eq!(recorded.hugepages[0].set_pages, 512);
}

#[test]
fn fewer_pages_than_asked_is_a_warning_naming_both_numbers_and_reset_restores() {
    let fake = FakeSystem::new("short");
    fake.global_pool(2);
    fake.vfio_ready();
    let mut host = RecordingHost::new(&fake);
    host.max_pages = Some(300);
    let report = setup(&fake.root(), &pages(512, None), &mut host).unwrap();
    let warning = report
        .warnings
        .iter()
        .find(|w| w.contains("reserved only"))
        .unwrap_or_else(|| panic!("no short-grant warning in {:?}", report.warnings));
    assert!(
        warning.contains("512") && warning.contains("only 300"),
        "{warning}"
    );
    let recorded = state::load(&fake.root()).unwrap().unwrap();
    assert_eq!(recorded.hugepages[0].set_pages, 300);

    let undone = reset(&fake.root(), &mut host).unwrap();
    assert!(undone.had_state);
    assert_eq!(
        fake.read(&format!("/sys/kernel/mm/{POOL}/nr_hugepages"))
            .trim(),
        "2"
    );
    assert!(
        state::load(&fake.root()).unwrap().is_none(),
        "state file removed"
    );
}

#[test]
fn hugetlbfs_is_mounted_when_missing_and_unmounted_by_reset() {
    let fake = FakeSystem::new("mount");
    fake.global_pool(0);
    fake.vfio_ready();
    fake.write("/proc/mounts", "proc /proc proc rw 0 0\n");
    let mut host = RecordingHost::new(&fake);
    let report = setup(&fake.root(), &pages(8, None), &mut host).unwrap();
    let target = fake.path("/dev/hugepages").display().to_string();
    assert_eq!(
        host.commands,
        [format!("mount -t hugetlbfs -o pagesize=2M nodev {target}")]
    );
    assert!(report.changes.contains(&Change::MountHugetlbfs {
        target: "/dev/hugepages".into(),
        create_dir: true
    }));
    // Mounted now: a second setup finds it and mounts nothing.
    let again = setup(&fake.root(), &pages(8, None), &mut host).unwrap();
    assert!(again.changes.is_empty(), "{:?}", again.changes);
    assert_eq!(host.commands.len(), 1);

    let undone = reset(&fake.root(), &mut host).unwrap();
    assert_eq!(host.commands[1], format!("umount {target}"));
    assert!(!fake.path("/dev/hugepages").exists(), "created dir removed");
    assert!(undone
        .restored
        .iter()
        .any(|line| line.contains("unmounted")));
}

#[test]
fn an_iommu_off_is_explained_with_the_command_line_fix() {
    let fake = FakeSystem::new("iommu-off");
    fake.global_pool(0);
    let status = status::read(&fake.root()).unwrap();
    assert!(!status.iommu.enabled);
    assert_eq!(status.iommu.group_count, 0);
    assert!(status.iommu.cmdline_options.is_empty());
    let text = status.iommu.explanation.join(" ");
    assert!(text.contains("iommu_groups is empty"), "{text}");
    assert!(text.contains("no intel_iommu=on"), "{text}");
    assert!(text.contains("GRUB_CMDLINE_LINUX"), "{text}");
    assert!(status.warnings.iter().any(|w| w.contains("IOMMU is off")));
}

#[test]
fn a_second_setup_keeps_the_first_ones_previous_count() {
    let fake = FakeSystem::new("twice");
    fake.global_pool(3);
    fake.vfio_ready();
    let mut host = RecordingHost::new(&fake);
    setup(&fake.root(), &pages(10, None), &mut host).unwrap();
    setup(&fake.root(), &pages(20, None), &mut host).unwrap();
    let recorded = state::load(&fake.root()).unwrap().unwrap();
    assert_eq!(recorded.hugepages.len(), 1);
    assert_eq!(recorded.hugepages[0].previous_pages, 3);
    assert_eq!(recorded.hugepages[0].set_pages, 20);
    reset(&fake.root(), &mut host).unwrap();
    assert_eq!(
        fake.read(&format!("/sys/kernel/mm/{POOL}/nr_hugepages"))
            .trim(),
        "3"
    );
}

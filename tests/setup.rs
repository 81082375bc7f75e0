//! `userpci::tools::setup` on fake machines: hugepages per node and in total, a kernel that
//! grants fewer pages than asked, hugetlbfs mounts, the IOMMU explained, device nodes given
//! to a user and restored by reset, and the errors for bad input.

mod fake_system;

use fake_system::{alice_uid, FakeSystem, RecordingHost, POOL};
use userpci::tools::setup::apply::setup;
use userpci::tools::setup::plan::{Change, GranteeName, HugepageRequest, SetupRequest};
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

fn for_alice() -> SetupRequest {
    SetupRequest {
        grantee: Some(GranteeName::User("alice".into())),
        ..SetupRequest::default()
    }
}

#[test]
fn the_nodes_of_a_vfio_function_go_to_the_user_and_reset_gives_them_back() {
    let fake = FakeSystem::new("perm");
    fake.global_pool(0);
    fake.vfio_ready();
    fake.function("0000:01:00.0", "vfio-pci", 7, Some("vfio0"));
    fake.function("0000:02:00.0", "nvme", 8, None);
    let before = [
        fake.owner("/dev/vfio/7"),
        fake.owner("/dev/vfio/devices/vfio0"),
        fake.owner("/dev/iommu"),
    ];
    let shared_before = fake.owner("/dev/vfio/vfio");
    let mut host = RecordingHost::new(&fake);
    let report = setup(&fake.root(), &for_alice(), &mut host).unwrap();
    let given: Vec<&str> = report
        .changes
        .iter()
        .filter_map(|change| match change {
            Change::GiveNode { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(
        given,
        ["/dev/vfio/7", "/dev/vfio/devices/vfio0", "/dev/iommu"]
    );
    let alice = alice_uid();
    assert_eq!(fake.owner("/dev/vfio/7"), (alice, before[0].1, 0o600));
    assert_eq!(
        fake.owner("/dev/vfio/devices/vfio0"),
        (alice, before[1].1, 0o600)
    );
    assert_eq!(fake.owner("/dev/iommu"), (alice, before[2].1, 0o660));
    assert_eq!(
        fake.owner("/dev/vfio/vfio"),
        shared_before,
        "0666 already: untouched"
    );

    let undone = reset(&fake.root(), &mut host).unwrap();
    assert_eq!(undone.restored.len(), 3, "{:?}", undone.restored);
    assert_eq!(fake.owner("/dev/vfio/7"), before[0]);
    assert_eq!(fake.owner("/dev/vfio/devices/vfio0"), before[1]);
    assert_eq!(fake.owner("/dev/iommu"), before[2]);
    assert!(!fake.path(state::STATE_FILE).exists());
}

#[test]
fn reset_leaves_a_node_someone_changed_since_setup() {
    let fake = FakeSystem::new("changed");
    fake.global_pool(0);
    fake.vfio_ready();
    fake.function("0000:01:00.0", "vfio-pci", 7, None);
    let mut host = RecordingHost::new(&fake);
    setup(&fake.root(), &for_alice(), &mut host).unwrap();
    fake.node("/dev/vfio/7", 0o640);
    let undone = reset(&fake.root(), &mut host).unwrap();
    assert!(
        undone
            .left
            .iter()
            .any(|l| l.starts_with("/dev/vfio/7: changed since setup")),
        "{:?}",
        undone.left
    );
    assert_eq!(fake.owner("/dev/vfio/7").2, 0o640);
}

#[test]
fn reset_without_a_state_file_touches_nothing() {
    let fake = FakeSystem::new("no-state");
    fake.global_pool(6);
    let mut host = RecordingHost::new(&fake);
    let report = reset(&fake.root(), &mut host).unwrap();
    assert!(!report.had_state);
    assert!(report.restored.is_empty() && report.left.is_empty());
    assert!(host.commands.is_empty());
    assert_eq!(
        fake.read(&format!("/sys/kernel/mm/{POOL}/nr_hugepages"))
            .trim(),
        "6"
    );
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

#[test]
fn bad_input_names_the_value_and_what_was_expected() {
    let fake = FakeSystem::new("bad");
    fake.numa_pools(&[0, 0]);
    fake.vfio_ready();
    fake.function("0000:02:00.0", "nvme", 8, None);
    let mut host = RecordingHost::new(&fake);
    let error = |request: SetupRequest, host: &mut RecordingHost| {
        setup(&fake.root(), &request, host).unwrap_err().to_string()
    };
    let text = error(pages(4, Some(5)), &mut host);
    assert!(
        text.contains("--node = 5") && text.contains("0, 1"),
        "{text}"
    );
    let text = error(
        SetupRequest {
            grantee: Some(GranteeName::User("mallory".into())),
            ..SetupRequest::default()
        },
        &mut host,
    );
    assert!(
        text.contains("--user = mallory") && text.contains("/etc/passwd"),
        "{text}"
    );
    let text = error(
        SetupRequest {
            devices: vec!["0000:02:00.0".parse().unwrap()],
            ..for_alice()
        },
        &mut host,
    );
    assert!(
        text.contains("0000:02:00.0") && text.contains("its driver is nvme"),
        "{text}"
    );
    assert!(text.contains("userpci bind 0000:02:00.0"), "{text}");
    assert!(host.commands.is_empty());
}

#[test]
fn a_user_who_is_not_root_gets_a_dry_run_only() {
    let fake = FakeSystem::new("not-root");
    fake.global_pool(0);
    fake.vfio_ready();
    fake.not_root();
    let mut host = RecordingHost::new(&fake);
    let text = setup(&fake.root(), &pages(8, None), &mut host)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("run it as root") && text.contains("--dry-run"),
        "{text}"
    );
    let dry = SetupRequest {
        dry_run: true,
        ..pages(8, None)
    };
    let report = setup(&fake.root(), &dry, &mut host).unwrap();
    assert!(report.dry_run);
    assert_eq!(report.changes.len(), 1);
    assert_eq!(
        fake.read(&format!("/sys/kernel/mm/{POOL}/nr_hugepages"))
            .trim(),
        "0"
    );
    assert!(!fake.path(state::STATE_FILE).exists());
    let text = reset(&fake.root(), &mut host).unwrap_err().to_string();
    assert!(
        text.contains("userpci setup reset changes the system"),
        "{text}"
    );
}

//! `userpci::tools::setup` on fake machines: device nodes given to a user and restored by
//! reset (and only what setup left as it left it), and the errors for bad input.

mod fake_system;

use fake_system::{alice_uid, FakeSystem, RecordingHost, POOL};
use userpci::tools::setup::apply::setup;
use userpci::tools::setup::plan::{Change, GranteeName, HugepageRequest, SetupRequest};
use userpci::tools::setup::reset::reset;
use userpci::tools::setup::state;

fn pages(pages: u64, node: Option<u32>) -> SetupRequest {
    SetupRequest {
        hugepages: Some(HugepageRequest { pages, node }),
        ..SetupRequest::default()
    }
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
    let limits_line = &report.memlock.advice[1];
    assert!(
        limits_line.contains("'alice soft memlock "),
        "{limits_line}"
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

#[test]
fn reset_writes_only_to_pool_files_and_vfio_nodes_whatever_the_state_file_says() {
    let fake = FakeSystem::new("tampered");
    fake.write("/etc/motd", "hello\n");
    fake.write(
        state::STATE_FILE,
        r#"{"schema": 1,
            "hugepages": [{"path": "/etc/motd", "node": null, "previous_pages": 0, "set_pages": 5}],
            "nodes": [{"path": "/etc/motd",
                       "previous": {"uid": 0, "gid": 0, "mode": "0777"},
                       "set": {"uid": 0, "gid": 0, "mode": "0644"}}]}"#,
    );
    let report = reset(&fake.root(), &mut RecordingHost::new(&fake)).unwrap();
    assert!(report.restored.is_empty(), "{:?}", report.restored);
    assert_eq!(report.left.len(), 2, "{:?}", report.left);
    assert!(
        report.left.iter().all(|l| l.contains("not touched")),
        "{:?}",
        report.left
    );
    assert_eq!(fake.read("/etc/motd"), "hello\n");
}

//! The `userpci` tool as a user runs it.

use std::process::Command;

fn userpci(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("the userpci binary runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn demo_json_reports_every_copy_verified_and_the_iommu_fault() {
    let (ok, stdout, stderr) = userpci(&["demo", "--json", "--copies", "64"]);
    assert!(ok, "{stderr}");
    let summary: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(summary["copies"], 3 * 64 * 2);
    assert_eq!(summary["verified"], 3 * 64 * 2);
    assert_eq!(summary["mismatches"], 0);
    assert_eq!(summary["iommu_faults"], 1);
    assert_eq!(summary["canary_intact"], true);
    assert_eq!(summary["function_resets"], 1);
    assert_eq!(summary["bus_reset_functions"], 2);
    assert_eq!(
        summary["virtual_time_ns"], 202_000_000,
        "100 ms FLR + 2 + 100 ms bus reset"
    );
}

#[test]
fn demo_refuses_bad_arguments_naming_them() {
    let (ok, _, stderr) = userpci(&["demo", "--size", "0"]);
    assert!(!ok);
    assert!(
        stderr.contains("invalid argument --size = 0: expected 1..=1048576 bytes"),
        "{stderr}"
    );
}

#[test]
fn topology_shows_the_demo_reset_group() {
    let (ok, stdout, stderr) = userpci(&["topology", "topologies/demo.toml", "--json"]);
    assert!(ok, "{stderr}");
    let topology: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let groups = topology["reset_groups"].as_array().unwrap();
    let first = &groups[0];
    assert_eq!(first["scope"], "bus");
    assert_eq!(first["members"].as_array().unwrap().len(), 3);
}

#[test]
fn list_names_a_missing_sysfs_tree() {
    let (ok, _, stderr) = userpci(&["list", "--sysfs", "/nonexistent-sysfs"]);
    assert!(!ok);
    assert!(
        stderr.contains("/nonexistent-sysfs/bus/pci/devices"),
        "{stderr}"
    );
}

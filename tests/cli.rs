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
fn copy_demo_json_reports_every_copy_verified_and_the_iommu_fault() {
    let (ok, stdout, stderr) = userpci(&["copy-demo", "--json", "--copies", "64"]);
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
fn copy_demo_refuses_bad_arguments_naming_them() {
    let (ok, _, stderr) = userpci(&["copy-demo", "--size", "0"]);
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

fn demo_json(scenario: &str) -> (bool, serde_json::Value, String) {
    let (ok, stdout, stderr) =
        userpci(&["demo", "--json", "--scenario", scenario, "--writes", "300"]);
    let summary = serde_json::from_str(stdout.trim()).unwrap_or(serde_json::Value::Null);
    (ok, summary, stderr)
}

#[test]
fn demo_bus_scenario_resets_the_three_member_group_and_loses_nothing() {
    let (ok, s, stderr) = demo_json("bus");
    assert!(ok, "{stderr}");
    assert_eq!(s["reset_kind"], "bus");
    assert_eq!(s["members"].as_array().unwrap().len(), 3);
    assert_eq!(s["writes_lost"], 0);
    assert_eq!(s["writes_duplicated"], 0);
    // Two rounds of 300 on four controllers, plus what was in flight when the rounds ended.
    assert!(s["writes_acknowledged"].as_u64().unwrap() >= 4 * 600);
    assert_eq!(s["writes_failed"], 0, "every write survived the reset");
    assert!(s["blocks_verified"].as_u64().unwrap() > 0);
    assert_eq!(
        s["total_ns"], 102_000_000,
        "2 ms SBR + 100 ms settle, nothing else on the device clock"
    );
    let overhead = s["framework_overhead_ns"].as_u64().unwrap();
    assert!(overhead > 0 && overhead < 1_000_000_000, "{overhead}");
    let phases = s["phases"].as_array().unwrap();
    for member in ["nvme0 01:00.0", "nvme1 01:00.1", "nvme2 01:00.2"] {
        let names: Vec<&str> = phases
            .iter()
            .filter(|p| p["name"] == member)
            .map(|p| p["phase"].as_str().unwrap())
            .collect();
        assert_eq!(
            names,
            ["quiesce", "disable", "reset", "wait-ready", "recover"],
            "{member}"
        );
    }
    assert!(phases.iter().all(|p| p["outcome"]["result"] == "ok"));
}

#[test]
fn demo_flr_scenario_resets_one_function() {
    let (ok, s, stderr) = demo_json("flr");
    assert!(ok, "{stderr}");
    assert_eq!(s["reset_kind"], "flr");
    assert_eq!(s["members"][0]["address"], "0000:01:00.1");
    assert_eq!(s["writes_lost"], 0);
    assert_eq!(s["writes_duplicated"], 0);
    assert!(s["blocks_verified"].as_u64().unwrap() > 0);
}

#[test]
fn demo_refused_scenario_exits_non_zero_naming_the_blocker() {
    let (ok, s, stderr) = demo_json("refused");
    assert!(!ok);
    assert!(
        stderr.contains("0000:01:00.2 is owned by pid 4242"),
        "{stderr}"
    );
    assert!(s["refusal"].as_str().unwrap().contains("0000:01:00.2"));
    assert_eq!(s["writes_lost"], 0);
    assert_eq!(s["writes_duplicated"], 0);
}

#[test]
fn demo_writes_an_svg_timeline() {
    let path = std::env::temp_dir().join(format!("userpci-demo-{}.svg", std::process::id()));
    let (ok, _, stderr) = userpci(&["demo", "--writes", "100", "--svg", path.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).ok();
    assert!(svg.starts_with("<svg"));
    for lane in ["nvme0 01:00.0", "nvme1 01:00.1", "nvme2 01:00.2"] {
        assert!(svg.contains(lane), "{lane}");
    }
    assert!(svg.contains("deadline"));
}

#[test]
fn reset_groups_without_an_iommu_says_how_to_turn_it_on() {
    let (ok, _, stderr) = userpci(&["reset-groups", "01:00.0"]);
    assert!(!ok);
    if std::path::Path::new("/sys/kernel/iommu_groups")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        // A machine with an IOMMU: the error is about the function instead.
        assert!(stderr.contains("0000:01:00.0"), "{stderr}");
    } else {
        assert!(stderr.contains("intel_iommu=on"), "{stderr}");
    }
}

#[test]
fn bad_addresses_are_quoted_in_the_error() {
    let (ok, _, stderr) = userpci(&["bind", "01:00.9"]);
    assert!(!ok);
    assert!(stderr.contains("01:00.9"), "{stderr}");
}

#[test]
fn demo_with_a_nic_in_the_group_recovers_it_and_packets_flow_again() {
    let (ok, stdout, stderr) = userpci(&["demo", "--nic", "--json", "--writes", "300"]);
    assert!(ok, "{stderr}");
    let s: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(s["reset_kind"], "bus");
    let nic = &s["nic"];
    assert_eq!(nic["address"], "0000:01:00.2");
    assert_eq!(nic["resets"], 1);
    assert_eq!(nic["link_within_budget"], true);
    assert!(nic["received_before_reset"].as_u64().unwrap() > 0);
    assert!(nic["received_after_reset"].as_u64().unwrap() > 0, "{nic}");
    assert_eq!(s["writes_lost"], 0);
    assert_eq!(s["writes_duplicated"], 0);
    let lanes: Vec<&str> = s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["phase"] == "recover")
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        lanes.last(),
        Some(&"ixgbe 01:00.2"),
        "the NIC recovers after the NVMe controllers: {lanes:?}"
    );
}

#[test]
fn logs_to_a_pipe_are_plain_text() {
    // stderr is a pipe here: the log lines must carry no ANSI colour codes.
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(["demo", "--writes", "100"])
        .env("RUST_LOG", "info")
        .output()
        .expect("the userpci binary runs");
    assert!(out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("INFO"), "the demo logs at info: {stderr}");
    assert!(
        !stderr.contains('\u{1b}'),
        "colour codes in a pipe: {stderr}"
    );
}

#[test]
fn demo_checks_an_unwritable_svg_path_before_the_run() {
    let (ok, stdout, stderr) = userpci(&["demo", "--svg", "/nonexistent-dir/timeline.svg"]);
    assert!(!ok);
    assert!(
        stderr.contains("--svg /nonexistent-dir/timeline.svg: cannot create the file"),
        "{stderr}"
    );
    assert!(stdout.is_empty(), "no run before the check: {stdout}");
}

#[test]
fn demo_refused_with_svg_says_that_no_file_was_written() {
    let path = std::env::temp_dir().join(format!("userpci-refused-{}.svg", std::process::id()));
    let (ok, _, stderr) = userpci(&[
        "demo",
        "--scenario",
        "refused",
        "--svg",
        path.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains(&format!("no SVG written to {}", path.display())),
        "{stderr}"
    );
    assert!(!path.exists(), "the empty file is removed");
}

#[test]
fn a_passing_demo_logs_no_error_for_the_faults_it_injects() {
    // The default filter shows errors only: a fault that was injected and recovered from is
    // not one (the flr scenario's CSTS.CFS was logged at ERROR).
    for scenario in ["bus", "flr"] {
        let (ok, _stdout, stderr) = userpci(&["demo", "--scenario", scenario, "--writes", "200"]);
        assert!(ok, "{scenario}: {stderr}");
        assert_eq!(stderr, "", "{scenario}: nothing logged at ERROR");
    }
}

#[test]
fn the_hugepage_warning_is_given_once_per_process_not_per_port() {
    // pktgen's default is two ports, each allocating DMA memory.
    let out = Command::new(env!("CARGO_BIN_EXE_userpci"))
        .args(["net", "pktgen", "--seconds", "0.02"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("the userpci binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let warnings = stderr.matches("no 2 MiB hugepages available").count();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let no_free_hugepages = meminfo
        .lines()
        .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["HugePages_Free:", "0"]);
    if no_free_hugepages {
        assert_eq!(warnings, 1, "{stderr}");
    } else {
        assert!(warnings <= 1, "{stderr}");
    }
}

#[test]
fn broker_without_an_iommu_says_how_to_turn_it_on_and_bad_modes_are_named() {
    let (ok, _stdout, stderr) = userpci(&[
        "broker",
        "0000:01:00.0",
        "--socket",
        "/tmp/userpci-cli-broker.sock",
    ]);
    assert!(!ok);
    if !std::path::Path::new("/sys/kernel/iommu_groups")
        .read_dir()
        .is_ok_and(|mut d| d.next().is_some())
    {
        assert!(
            stderr.contains("no IOMMU") && stderr.contains("intel_iommu=on"),
            "{stderr}"
        );
    }
    let (ok, _stdout, stderr) = userpci(&["broker", "01:00.0", "--mode", "999"]);
    assert!(!ok);
    assert!(
        stderr.contains(
            "invalid value '999' for '--mode <MODE>': '999': expected octal permission bits"
        ),
        "{stderr}"
    );
}
